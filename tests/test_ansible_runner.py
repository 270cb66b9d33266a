"""smokegate.core.rolling_deploy as AWX runs it: `ansible-runner run` on a private data dir.

The job is the README's: its project playbook (deploy.yml) and its env/envvars, a spec in
the project whose secrets come from the job's extra variables (as a credential injects
them), and the fleet's local-connection hosts as the inventory.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from conftest import (
    AWX_SECTION,
    PLAIN_URL_PASSWORD,
    SECRET_HEADER,
    SECRET_STATUSES,
    URL_PASSWORD,
    URL_USER,
    leaked_secrets,
    readme_files,
    secret_checks,
)
from fleet import HEALTH_SPEC, Fleet

BIN = Path(sys.executable).parent
SMOKE_ACTIONS = {"smokegate.core.smoke", "smokegate.core.stages"}
# The spec's secrets as the job's extra variables hold them: the spec names the variables.
SECRET_VARIABLES = {
    "app_token": SECRET_HEADER,
    "probe_encoded": "%s:%s" % (quote(URL_USER, safe=""), quote(URL_PASSWORD, safe="")),
    "probe_plain": "%s:%s" % (URL_USER, PLAIN_URL_PASSWORD),
}
# The process environment is ansible-runner's to record (artifacts/<ident>/command).
NOT_FROM_A_JOB = "env process ok"


class Job:
    """An ansible-runner private data directory laid out as AWX lays out a job's."""

    def __init__(self, directory: Path, fleet: Fleet, spec: list[dict[str, Any]]) -> None:
        self.dir = directory
        self.project = directory / "project"
        files = readme_files(AWX_SECTION)
        for part in ("project/releases", "inventory", "env"):
            (directory / part).mkdir(parents=True)
        (self.project / "deploy.yml").write_text(files["deploy.yml"])
        (self.project / "smoke.yml").write_text(yaml.safe_dump({"checks": spec}, sort_keys=False))
        (directory / "env" / "envvars").write_text(files["env/envvars"])
        shutil.copy(fleet.inventory, directory / "inventory" / "hosts.yml")

    def run(self, ident: str, extravars: dict[str, Any]) -> Path:
        """``ansible-runner run`` of deploy.yml; the job's artifacts directory."""
        (self.dir / "env" / "extravars").write_text(yaml.safe_dump(extravars))
        subprocess.run(
            [BIN / "ansible-runner", "run", self.dir, "-p", "deploy.yml", "--ident", ident],
            env={**os.environ, "PATH": "%s:%s" % (BIN, os.environ["PATH"])},
            capture_output=True,
            timeout=300,
            check=False,
        )
        return self.dir / "artifacts" / ident


def events(artifacts: Path) -> list[dict[str, Any]]:
    """The job's events, in the order they happened."""
    found = [json.loads(path.read_text()) for path in (artifacts / "job_events").glob("*.json")]
    return sorted(found, key=lambda event: event["counter"])


def carried_report(result: dict[str, Any]) -> dict[str, Any] | None:
    """A task result's smoke report, or the report of its baseline step (a lock request)."""
    if "smoke" in result:
        return result["smoke"]
    baselines = [step for step in result.get("steps", []) if step.get("stage") == "baseline"]
    return baselines[0].get("report") if baselines else None


def smoke_reports(artifacts: Path) -> list[dict[str, Any]]:
    """The smoke report of every smoke and stages task, as its event carries it."""
    found = []
    for event in events(artifacts):
        data = event.get("event_data", {})
        if event["event"] in ("runner_on_ok", "runner_on_failed") and (
            data["task_action"] in SMOKE_ACTIONS
        ):
            report = carried_report(data["res"])
            if report is not None:
                found.append(dict(report, task=data["task"]))
    return found


def without(report: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in keys}


def outcome(artifacts: Path) -> tuple[str, str]:
    return (artifacts / "status").read_text(), (artifacts / "rc").read_text()


def the_callback_reported_the_events(artifacts: Path) -> list[dict[str, Any]]:
    """The callback's JSON and JUnit files, written where the job's environment said, hold
    the reports the job's events carry; returns the events' reports."""
    written = json.loads((artifacts / "smoke-report.json").read_text())["reports"]
    carried = smoke_reports(artifacts)
    assert [without(report, "play", "task") for report in written] == [
        without(report, "task") for report in carried
    ]
    for report, event_report in zip(written, carried):  # the callback's names carry the role
        assert report["task"].endswith(event_report["task"])
    cases = list(ET.parse(artifacts / "smoke-report.xml").iter("testcase"))
    assert len(cases) == sum(len(report["results"]) for report in written)
    return carried


def leaks(directory: Path) -> dict[str, list[str]]:
    """Every file under ``directory`` that shows a secret, with the secrets it shows."""
    found = {}
    for path in directory.rglob("*"):
        if path.is_file():
            shown = leaked_secrets(path.read_bytes().decode("utf-8", "replace"))
            if shown:
                found[str(path.relative_to(directory))] = shown
    return found


class QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def artifact_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server of the files in a directory: its base URL and the directory."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietFileHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1], served
    server.shutdown()
    server.server_close()


def job_spec(directory: Path, http_server: str, closed_port: int) -> list[dict[str, Any]]:
    """The fleet's health checks, and every secret check but one (failing ones as
    warnings, so that a healthy release passes), their secrets named as variables."""
    checks = [
        dict(check, severity="warning" if SECRET_STATUSES[check["name"]] == "fail" else "critical")
        for check in secret_checks(directory, http_server, closed_port)
        if check["name"] != NOT_FROM_A_JOB
    ]
    text = json.dumps(checks)
    for name, value in SECRET_VARIABLES.items():
        text = text.replace(value, "{{ %s }}" % name)
    assert leaked_secrets(text) == []
    return HEALTH_SPEC["checks"] + json.loads(text)


def test_a_release_passes_then_one_fails_and_rolls_back_through_ansible_runner(
    tmp_path: Path,
    http_server: str,
    closed_port: int,
    artifact_server: tuple[str, Path],
):
    fleet = Fleet(tmp_path)
    job = Job(tmp_path / "job", fleet, job_spec(tmp_path, http_server, closed_port))
    base_url, served = artifact_server
    shutil.copy(fleet.artifact("v1"), served / "app-v1.tar.gz")
    shutil.copy(fleet.artifact("v2", healthy_on=["web1", "web2"]), job.project / "releases")
    template = {  # the job template's variables, the credential's, and the survey's answers
        "smokegate_checks_file": "smoke.yml",
        "smokegate_restart_command": "bin/restart",
        "smokegate_artifact": "artifact.tar.gz",
        **SECRET_VARIABLES,
        "smokegate_bake": 0,
        "smokegate_max_fail": "0",
        "smokegate_baseline": "refuse",
    }

    # v1 comes from a URL, which deploy.yml downloads into the project first.
    passed = job.run(
        "deploy-v1",
        dict(template, smokegate_release="v1", smokegate_artifact_url=base_url + "/app-v1.tar.gz"),
    )
    assert outcome(passed) == ("successful", "0"), (passed / "stdout").read_text()
    assert [fleet.current(host) for host in fleet.hosts] == ["v1"] * 3
    reports = the_callback_reported_the_events(passed)
    assert {report["host"] for report in reports} == set(fleet.hosts)
    assert all(report["ok"] for report in reports)
    statuses = {result["name"]: result["status"] for result in reports[-1]["results"]}
    assert statuses == {
        "root space": "pass",
        "release healthy here": "pass",
        **{name: status for name, status in SECRET_STATUSES.items() if name != NOT_FROM_A_JOB},
    }

    # v2, a file of the project, fails on web3 in the last batch: every host goes back. The
    # job runs at the job template's Verbosity 3 (Debug).
    (job.dir / "env" / "cmdline").write_text("-vvv")
    failed = job.run(
        "deploy-v2",
        dict(template, smokegate_release="v2", smokegate_artifact="releases/v2.tar.gz"),
    )
    assert outcome(failed) == ("failed", "2"), (failed / "stdout").read_text()
    for host in fleet.hosts:
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host
    reports = the_callback_reported_the_events(failed)
    verdicts = [(report["host"], report["ok"], report["task"]) for report in reports]
    assert ("web3", False, "Deploy the release (create, activate, restart, smoke, bake, good)") in (
        verdicts
    )
    rollbacks = [report for report in reports if report["task"].startswith("Roll back")]
    assert sorted(report["host"] for report in rollbacks) == fleet.hosts
    assert all(report["ok"] for report in rollbacks)  # back on v1, verified
    (summary,) = [
        event["event_data"]["res"]["msg"]
        for event in events(failed)
        if event["event"] == "runner_on_failed"
        and event["event_data"]["task"]
        == "Fail the run with what went wrong and what was rolled back"
    ]
    assert summary[0] == "smokegate: release v2 did not go out; rollback scope: all"
    assert "  FAILED web3: smoke checks failed: release healthy here: WEB3_OK is not set in" in (
        "\n".join(summary)
    )
    for host in fleet.hosts:
        assert "  ROLLED BACK %s: v2 -> v1, restarted, verified" % host in summary
    assert any(
        "SMOKE REPORT (Smokegate | rolling deploy)" in event["stdout"] for event in events(failed)
    )

    assert leaks(job.dir / "artifacts") == {}
