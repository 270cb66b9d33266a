"""The service check.

No systemd runs on the machine these tests run on, and none may be booted for them (its
tmpfiles service would empty the machine's /tmp). So: the real answer of this machine's
systemctl (systemd 252) without a running systemd is tested as it is; and the parsing of
`systemctl show` output, in systemd 252's format, is tested on its own and end to end
through a stand-in `systemctl` on PATH that prints it (the `systemctl` fixture).
"""

from __future__ import annotations

import shutil
import textwrap
import time
from pathlib import Path

import pytest
from systemctl import NOT_FOUND, SHOW

from ansible_collections.smokegate.core.plugins.module_utils.systemd import parse_show
from smokegate.engine import runner, spec


def run(*checks: dict) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)))
    return {result["name"]: result for result in report["results"]}


def test_parse_show_reads_states_uptime_and_restarts():
    entered = 1_000 * 10**6
    state = parse_show(
        textwrap.dedent(SHOW["nginx.service"]).replace("{entered_an_hour_ago}", str(entered)),
        monotonic_now=1_000 + 3600.5,
    )
    assert state == ("nginx.service", "loaded", "active", "running", "enabled", 3600.5, 0)
    assert state.enabled
    failed = parse_show(textwrap.dedent(SHOW["broken.service"]), monotonic_now=50.0)
    assert (failed.active_state, failed.sub_state, failed.uptime) == ("failed", "failed", None)
    loop = parse_show(textwrap.dedent(SHOW["crashing.service"]), monotonic_now=50.0)
    assert (loop.active_state, loop.restarts, loop.enabled) == ("activating", 5, False)
    missing = parse_show(textwrap.dedent(NOT_FOUND).replace("{unit}", "x.service"), 1.0)
    assert (missing.load_state, missing.unit_file_state) == ("not-found", "")
    with pytest.raises(ValueError, match="no unit state"):
        parse_show("Failed to connect to bus: Host is down\n", 1.0)


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_this_machine_does_not_run_systemd_and_the_check_says_so():
    result = run({"name": "nginx", "service": {"name": "nginx"}})["nginx"]
    assert result["status"] == "error"
    assert result["message"].startswith(
        "cannot read the state of nginx.service: this host does not run systemd (systemctl: "
    )


def test_without_systemctl_the_check_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run({"name": "nginx", "service": {"name": "nginx"}})["nginx"]
    assert result == dict(
        result,
        status="error",
        message="cannot read the state of nginx.service:"
        " systemctl is not installed: this host does not run systemd",
    )


def test_service_states_through_systemctl_show(systemctl: Path):
    results = run(
        {"name": "nginx", "service": {"name": "nginx", "enabled": True, "min_uptime": 60}},
        {"name": "loop up", "service": {"name": "worker", "min_uptime": 30}},
        {"name": "loop counted", "service": {"name": "worker.service", "max_restarts": 3}},
        {"name": "loop down", "service": {"name": "crashing"}},
        {"name": "failed", "service": {"name": "broken"}},
        {"name": "masked", "service": {"name": "masked", "active": False}},
        {"name": "not enabled", "service": {"name": "crashing", "active": False, "enabled": True}},
        {"name": "missing", "service": {"name": "nosuch"}},
        {"name": "absent", "service": {"name": "nosuch", "active": False}},
    )
    statuses = {name: result["status"] for name, result in results.items()}
    assert statuses == {
        "nginx": "pass",
        "loop up": "fail",
        "loop counted": "fail",
        "loop down": "fail",
        "failed": "fail",
        "masked": "pass",
        "not enabled": "fail",
        "missing": "fail",
        "absent": "pass",
    }
    assert (
        results["nginx"]["message"]
        == "nginx.service is active (running) for 60 min, enabled, 0 restarts"
    )
    assert results["loop up"]["message"] == (
        "worker.service has been active for 4 s, expected at least 30 s (active (running), 14 restarts)"
    )
    assert (
        results["loop counted"]["message"] == "worker.service restarted 14 times, at most 3 allowed"
    )
    assert results["loop down"]["message"] == (
        "crashing.service is activating (auto-restart), expected active"
    )
    assert results["failed"]["message"] == "broken.service is failed (failed), expected active"
    assert results["not enabled"]["message"] == "crashing.service is disabled, expected enabled"
    assert results["missing"]["message"] == "nosuch.service is not installed on this host"


def test_a_systemctl_that_hangs_is_a_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    program = tmp_path / "systemctl"
    program.write_text("#!/bin/sh\nsleep 30\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % tmp_path)
    started = time.monotonic()
    result = run({"name": "hung", "timeout": 0.5, "service": {"name": "nginx"}})["hung"]
    assert result["status"] == "timeout"
    assert time.monotonic() - started < 2


def test_unit_names_are_validated():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(
            [
                {"name": "option", "service": {"name": "--all"}},
                {"name": "space", "service": {"name": "my app"}},
            ]
        )
    assert caught.value.errors == [
        "check 'option': service.name: '--all' is not a systemd unit name",
        "check 'space': service.name: 'my app' is not a systemd unit name",
    ]
    [check] = spec.parse_spec([{"name": "timer", "service": {"name": "backup.timer"}}])
    assert check.params["name"] == "backup.timer"
