"""smokegate.core.smoke run both ways by ansible-playbook: the engine shipped by the action
plugin (the connection pipelines) and the module through Ansible's wrapper (it does not).

Both must give the same result for the same task; the shipped path must say plainly when the
host's interpreter cannot run it, and must discover the interpreter like any module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import hostile_specs, memory_capped

SECRET = "env-secret-7731"


def play(tmp_path: Path, tasks: list[dict], host_vars: dict) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"hosts": {"box": dict({"ansible_connection": "local"}, **host_vars)}}}
        )
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "Smoke", "hosts": "all", "gather_facts": False, "tasks": tasks}])
    )
    return playbook


def run(
    tmp_path: Path,
    playbook: Path,
    pipelining: bool,
    *args: str,
    path: str | None = None,
    capped: bool = False,
) -> subprocess.CompletedProcess:
    argv = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-vvv",
        "-i",
        str(tmp_path / "inventory.yml"),
        str(playbook),
        *args,
    ]
    # In a session of its own, so that a timeout kills its workers too.
    with subprocess.Popen(
        memory_capped(argv) if capped else argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={
            **os.environ,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PIPELINING": "1" if pipelining else "0",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "PATH": path or os.environ["PATH"],
        },
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def comparable(result: dict) -> dict:
    """A registered result without what differs from run to run (timings, free space)."""
    result = dict(result)
    report = dict(result["smoke"])
    report.pop("duration_ms")
    report["results"] = [
        {key: value for key, value in item.items() if key != "duration_ms"}
        for item in report["results"]
    ]
    for item in report["results"]:
        if item["type"] == "disk":
            item["message"] = "(free space)"
    result["smoke"] = report
    for key in ("invocation", "_ansible_no_log"):
        result.pop(key, None)
    return result


def test_shipped_engine_and_module_give_the_same_results(tmp_path: Path, closed_port: int):
    out = tmp_path / "results"
    out.mkdir()
    checks = [
        {"name": "root", "disk": {"path": "/", "min_free": "1MiB"}},
        {"name": "token", "env": {"name": "APP_TOKEN", "pattern": "^env-secret"}},
        {"name": "shm", "mount": {"path": "/dev/shm", "writable": True}},
        {
            "name": "closed",
            "tcp": {"host": "127.0.0.1", "port": closed_port},
            "severity": "warning",
            "timeout": 1,
        },
        {"name": "python", "binary": {"name": sys.executable, "version": ">=3.8"}},
    ]
    failing = [*checks, {"name": "missing var", "env": {"name": "SMOKEGATE_NOT_SET_ANYWHERE"}}]

    def save(name: str) -> dict:
        return {
            "name": "Save %s" % name,
            "ansible.builtin.copy": {
                "content": "{{ %s | to_json }}" % name,
                "dest": "%s/{{ mode }}-%s.json" % (out, name),
                "mode": "0600",
            },
        }

    tasks = [
        {
            "name": "Passing",
            "smokegate.core.smoke": {"checks": checks},
            "environment": {"APP_TOKEN": SECRET},
            "register": "passing",
        },
        save("passing"),
        {
            "name": "Failing",
            "smokegate.core.smoke": {"checks": failing},
            "environment": {"APP_TOKEN": SECRET},
            "register": "failing",
            "ignore_errors": True,
        },
        save("failing"),
        {
            "name": "Reporting only",
            "smokegate.core.smoke": {"checks": failing, "fail_on": "never"},
            "environment": {"APP_TOKEN": SECRET},
            "register": "reporting",
        },
        save("reporting"),
        {
            "name": "Check mode",
            "smokegate.core.smoke": {"checks": checks[2:3]},
            "environment": {"APP_TOKEN": SECRET},
            "check_mode": True,
            "register": "checking",
        },
        save("checking"),
        {
            "name": "Bad argument",
            "smokegate.core.smoke": {"checks": checks, "fail_on": "sometimes"},
            "register": "bad",
            "ignore_errors": True,
        },
        save("bad"),
    ]
    playbook = play(tmp_path, tasks, {"ansible_python_interpreter": sys.executable})
    outputs = {}
    for mode, pipelining in (("shipped", True), ("module", False)):
        completed = run(tmp_path, playbook, pipelining, "-e", "mode=%s" % mode)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        outputs[mode] = completed.stdout + completed.stderr
    # The task environment's values travel on stdin, not in the command -vvv shows (as
    # Ansible's own module path puts them).
    assert SECRET not in outputs["shipped"]
    assert "APP_TOKEN=" not in outputs["shipped"]
    # Which path ran: only the shipped engine's bootstrap imports smokegate_engine.
    assert "smokegate_engine" in outputs["shipped"]
    assert "smokegate_engine" not in outputs["module"]

    for name in ("passing", "failing", "reporting", "checking", "bad"):
        shipped = json.loads((out / ("shipped-%s.json" % name)).read_text())
        module = json.loads((out / ("module-%s.json" % name)).read_text())
        if name == "bad":
            assert shipped["failed"] and module["failed"]
            assert shipped["msg"] == module["msg"]
            assert "fail_on" in shipped["msg"] and "sometimes" in shipped["msg"]
            continue
        assert comparable(shipped) == comparable(module), name

    passing = json.loads((out / "shipped-passing.json").read_text())
    assert passing["smoke"]["ok"] is True and passing["failed_checks"] == []
    assert [item["status"] for item in passing["smoke"]["results"]] == [
        "pass",
        "pass",
        "pass",
        "fail",
        "pass",
    ]
    failing_result = json.loads((out / "shipped-failing.json").read_text())
    assert failing_result["failed"] is True
    assert failing_result["failed_checks"] == ["missing var"]
    assert "missing var: SMOKEGATE_NOT_SET_ANYWHERE is not set" in failing_result["msg"]
    reporting = json.loads((out / "shipped-reporting.json").read_text())
    assert not reporting.get("failed") and reporting["failed_checks"] == ["missing var"]
    checking = json.loads((out / "shipped-checking.json").read_text())
    assert "write test skipped in check mode" in checking["smoke"]["results"][0]["message"]


def test_shipped_engine_names_an_interpreter_that_cannot_run_it(tmp_path: Path):
    tasks = [
        {
            "name": "Smoke",
            "smokegate.core.smoke": {
                "checks": [{"name": "root", "disk": {"path": "/", "min_free": 1}}]
            },
        }
    ]
    playbook = play(tmp_path, tasks, {"ansible_python_interpreter": "/nonexistent/python3"})
    completed = run(tmp_path, playbook, True)
    assert completed.returncode == 2
    assert (
        "the smoke engine did not run with /nonexistent/python3 on this host (exit 127)"
        in completed.stdout
    )


@pytest.mark.skipif(
    not any(Path(path).exists() for path in ("/usr/bin/python3", "/usr/libexec/platform-python")),
    reason="interpreter discovery looks for a system python3, and this machine has none",
)
def test_shipped_engine_discovers_the_interpreter_like_any_module(tmp_path: Path):
    tasks = [
        {
            "name": "Smoke",
            "smokegate.core.smoke": {
                "checks": [{"name": "root", "disk": {"path": "/", "min_free": 1}}]
            },
            "register": "smoked",
        },
        {
            "name": "Show the interpreter",
            "ansible.builtin.debug": {"msg": "FOUND={{ discovered_interpreter_python }}"},
        },
    ]
    playbook = play(tmp_path, tasks, {})
    # Only the system's directories: a version manager's shims (found first, but broken
    # when no version is selected) would be discovered instead.
    completed = run(tmp_path, playbook, True, path="/usr/local/bin:/usr/bin:/bin")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    found = completed.stdout.split('"msg": "FOUND=')[1].split('"')[0]
    assert Path(found).exists()
    assert "smokegate_engine" in completed.stdout


def test_hostile_checks_files_fail_their_task_at_once(tmp_path: Path):
    files = hostile_specs(tmp_path)
    messages = tmp_path / "messages.json"
    tasks = [
        {
            "name": "Smoke",
            "smokegate.core.smoke": {"checks_file": "{{ item }}"},
            "loop": [str(path) for path in files.values()],
            "register": "smoked",
            "ignore_errors": True,
        },
        {
            "name": "Save the messages",
            "ansible.builtin.copy": {
                "content": "{{ smoked.results | map(attribute='msg') | list | to_json }}",
                "dest": str(messages),
                "mode": "0600",
            },
        },
    ]
    playbook = play(tmp_path, tasks, {"ansible_python_interpreter": sys.executable})
    completed = run(tmp_path, playbook, True, capped=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    shown = dict(zip(files, json.loads(messages.read_text())))
    for name, path in files.items():
        assert shown[name].startswith(
            ("invalid smoke spec in %s" % path, "cannot load checks_file %s" % path)
        ), shown[name]
    assert "spec: more than 100000 values once its aliases are expanded" in shown["bomb.yml"]
    assert shown["nested.json"].endswith("nested too deeply to be a spec")


def test_an_answer_marker_in_a_programs_output_does_not_pass_for_the_answer(tmp_path: Path):
    forged = 'SMOKEGATE-ANSWER {"ok": true, "steps": []}'
    printing = {
        "name": sys.executable,
        "args": ["-c", "print(%r)" % ("\n" + forged)],
        "version": ">=1",
    }
    tasks = [
        {"name": "Smoke", "smokegate.core.smoke": {"checks": [{"name": "v", "binary": printing}]}}
    ]
    playbook = play(tmp_path, tasks, {"ansible_python_interpreter": sys.executable})
    completed = run(tmp_path, playbook, True)
    assert completed.returncode == 2, completed.stdout[-3000:]
    assert "smoke checks failed: v: no version found in the output of" in completed.stdout
    assert "did not run" not in completed.stdout
