"""Every task of every module's EXAMPLES runs, for real, with ansible-playbook on this machine.

The examples are written for a user's host: a deploy root at /srv/app, a release archive
uploaded to /tmp, an app answering on port 8000, a spec file smoke.yml beside the playbook.
Each module's examples run in order, as one play, against a local host prepared like that in a
temporary directory. The only change made to the examples is replacing these texts:

    /srv/app                           a deploy root with three good releases, the newest
                                       current, and shared/app.env holding DATABASE_URL
    /tmp/app-20261121T120000Z.tar.gz   a release archive
    http://127.0.0.1:8000              a real HTTP server answering /healthz with "status: ok"

smoke.yml beside the playbook is the repository's examples/smoke.yml. A recording callback
lists each task's outcome; every task must run (none skipped) with the outcome in EXPECTED.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot

MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))

# Each example task's outcome, in order: ok, changed, or ignored (a failure the example
# itself expects, under ignore_errors).
EXPECTED = {
    "release": ["changed"] * 7,
    "release_info": ["ok"] * 3,
    "smoke": ["ok"] * 5,
    "stages": ["changed"] * 2,
}

EARLIER_RELEASES = ("20261118T090000Z", "20261119T090000Z", "20261120T090000Z")

RECORDER = """
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "example_outcomes"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, outcome):
        with open(os.environ["EXAMPLE_OUTCOMES"], "a") as handle:
            line = {"task": result._task.get_name(), "outcome": outcome}
            handle.write(json.dumps(line) + "\\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
"""


def examples_of(module: str) -> str:
    """The EXAMPLES string of a module file, read without importing the module."""
    tree = ast.parse((REPO / "plugins" / "modules" / (module + ".py")).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "EXAMPLES" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("%s has no EXAMPLES" % module)


def prepare_host(directory: Path, app_url: str) -> dict[str, str]:
    """Set up what the examples expect under ``directory``; the texts to replace in them."""
    source = directory / "build"
    source.mkdir()
    (source / "index.html").write_text("<h1>app</h1>\n")
    root = DeployRoot(str(directory / "srv" / "app"))
    for release in EARLIER_RELEASES:
        root.create(release, src=str(source))
        root.activate(release)
        root.mark_good(release)
    Path(root.shared_dir, "app.env").write_text("DATABASE_URL=postgres://db.internal/app\n")
    archive = directory / "app-20261121T120000Z.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=".")
    return {
        "/srv/app": root.root,
        "/tmp/app-20261121T120000Z.tar.gz": str(archive),
        "http://127.0.0.1:8000": app_url,
    }


def run_examples(module: str, text: str, directory: Path) -> tuple[list[dict], str]:
    """Run the example tasks as one play on a local host; their outcomes and the output."""
    play = directory / "play"
    play.mkdir()
    shutil.copy(REPO / "examples" / "smoke.yml", play / "smoke.yml")
    (play / "callbacks").mkdir()
    (play / "callbacks" / "example_outcomes.py").write_text(RECORDER)
    (play / "inventory").write_text(
        "example_host ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable
    )
    playbook = [
        {
            "name": "EXAMPLES of smokegate.core.%s" % module,
            "hosts": "example_host",
            "gather_facts": False,
            "tasks": yaml.safe_load(text),
        }
    ]
    (play / "playbook.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    outcomes = play / "outcomes.jsonl"
    completed = subprocess.run(
        [
            Path(sys.executable).with_name("ansible-playbook"),
            "-i",
            "inventory",
            "playbook.yml",
        ],
        cwd=play,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "ANSIBLE_CALLBACK_PLUGINS": str(play / "callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "example_outcomes",
            "ANSIBLE_NOCOLOR": "1",
            "EXAMPLE_OUTCOMES": str(outcomes),
        },
        check=False,
    )
    output = completed.stdout + completed.stderr
    lines = outcomes.read_text().splitlines() if outcomes.exists() else []
    return [json.loads(line) for line in lines], output


def test_every_module_has_expected_outcomes_for_its_examples():
    assert sorted(EXPECTED) == MODULES
    for module in MODULES:
        assert len(yaml.safe_load(examples_of(module))) == len(EXPECTED[module]), module


def test_every_replaced_text_appears_in_the_examples(tmp_path: Path):
    every_example = "".join(examples_of(module) for module in MODULES)
    for text in prepare_host(tmp_path, "http://127.0.0.1:1"):
        assert text in every_example, text


@pytest.mark.parametrize("module", MODULES)
def test_the_examples_run(module: str, tmp_path: Path, http_server: str):
    text = examples_of(module)
    tasks = yaml.safe_load(text)
    assert any("smokegate.core." + module in task for task in tasks), "no task uses the module"
    unprepared = text
    for original, replacement in prepare_host(tmp_path, http_server).items():
        text = text.replace(original, replacement)
        unprepared = unprepared.replace(original, "")
    assert "/srv/" not in unprepared and "/tmp/" not in unprepared, unprepared

    outcomes, output = run_examples(module, text, tmp_path)

    assert [(item["task"], item["outcome"]) for item in outcomes] == [
        (task["name"], outcome) for task, outcome in zip(tasks, EXPECTED[module])
    ], output
