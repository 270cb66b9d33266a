"""The command check on real programs: exit codes and output, a team's own smoke script,
`pytest -m smoke` in a virtual environment, secrets in its environment, and timeouts that
kill what it started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import running

from smokegate.engine import runner, spec

# A smoke script as teams write them: named checks in order, exit 1 on the first failure.
SMOKE_SCRIPT = """\
import json, sys, urllib.request

def config():
    with open(sys.argv[1]) as handle:
        json.load(handle)

def health():
    with urllib.request.urlopen(sys.argv[2], timeout=2) as response:
        assert response.status == 200, response.status

for name, check in [("config", config), ("health", health)]:
    try:
        check()
    except Exception as exc:
        print("FAIL %s: %s" % (name, exc))
        sys.exit(1)
    print("ok %s" % name)
print("all checks passed")
"""

SMOKE_TESTS = """\
import os
import pytest

@pytest.mark.smoke
def test_release_marker():
    assert os.path.exists(os.environ["RELEASE_MARKER"])

def test_slow_integration():
    raise AssertionError("not a smoke test: must not run")
"""


def run(*checks: dict, **kwargs) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)), **kwargs)
    return {result["name"]: result for result in report["results"]}


def test_exit_codes_and_output_are_compared_and_a_failure_shows_the_tail():
    results = run(
        {"name": "true", "command": {"argv": ["true"]}},
        {"name": "exit 3", "command": {"argv": ["sh", "-c", "echo one; echo two >&2; exit 3"]}},
        {"name": "exit 3 expected", "command": {"argv": ["sh", "-c", "exit 3"], "exit": [0, 3]}},
        {
            "name": "output",
            "command": {"argv": ["sh", "-c", "echo ready; echo warn >&2"], "stdout": "^ready$"},
        },
        {"name": "wrong output", "command": {"argv": ["echo", "degraded"], "stdout": "^ok"}},
        {"name": "stderr", "command": {"argv": ["sh", "-c", "echo oops >&2"], "stderr": "fine"}},
        {"name": "quiet", "command": {"argv": ["sh", "-c", "echo s3cret; exit 1"], "quiet": True}},
        {"name": "missing", "command": {"argv": ["smokegate-no-such-program"]}},
        {"name": "killed", "command": {"argv": ["sh", "-c", "kill -9 $$"]}},
    )
    assert results["true"]["status"] == "pass"
    assert results["true"]["message"] == "true exited 0"
    assert results["exit 3"]["status"] == "fail"
    assert results["exit 3"]["message"] == (
        "sh -c echo one; echo two >&2; exit 3 exited 3, expected 0;"
        " stdout ends: one; stderr ends: two"
    )
    assert results["exit 3 expected"]["status"] == "pass"
    assert (
        results["output"]["message"]
        == "sh -c echo ready; echo warn >&2 exited 0 and matches ^ready$"
    )
    assert results["wrong output"]["message"] == (
        "echo degraded exited 0 but its stdout does not match ^ok; stdout ends: degraded"
    )
    assert results["stderr"]["message"].endswith(
        "its stderr does not match fine; stderr ends: oops"
    )
    assert results["quiet"]["message"] == (
        "sh -c echo s3cret; exit 1 exited 1, expected 0; output hidden (quiet)"
    )
    assert "s3cret\n" not in results["quiet"]["message"]
    assert results["missing"]["status"] == "fail"
    assert results["missing"]["message"].startswith(
        "cannot run smokegate-no-such-program: No such file or directory"
    )
    assert results["killed"]["message"].startswith("sh -c kill -9 $$ was killed by signal 9")


def test_a_smoke_script_passes_then_fails_on_its_first_broken_check(
    tmp_path: Path, http_server: str
):
    script, config = tmp_path / "smoke.py", tmp_path / "config.json"
    script.write_text(SMOKE_SCRIPT)
    config.write_text('{"db": "postgres://db/app"}')
    check = {
        "name": "smoke script",
        "command": {
            "argv": [sys.executable, "smoke.py", str(config), http_server + "/healthz"],
            "cwd": str(tmp_path),
            "stdout": "all checks passed",
        },
    }
    assert run(check)["smoke script"]["status"] == "pass"
    config.write_text('{"db": ')  # a deploy that broke the config
    result = run(check)["smoke script"]
    assert result["status"] == "fail"
    assert " exited 1, expected 0" in result["message"]
    assert (
        "stdout ends: FAIL config: Expecting value: line 1 column 8 (char 7)" in result["message"]
    )
    config.write_text("{}")
    check["command"]["argv"][-1] = http_server + "/broken"
    result = run(check)["smoke script"]
    assert result["message"].endswith(
        "stdout ends: ok config | FAIL health: HTTP Error 500: Internal Server Error"
    )


def test_pytest_smoke_marker_in_a_virtual_environment(tmp_path: Path):
    venv = tmp_path / "venv"
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    # The venv gets this suite's own pytest through a .pth file: no download, no pip.
    [site] = venv.glob("lib/python*/site-packages")
    (site / "suite.pth").write_text(str(Path(pytest.__file__).resolve().parent.parent) + "\n")
    (tmp_path / "test_smoke.py").write_text(SMOKE_TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    smoke: quick post-deploy checks\n"
    )
    marker = tmp_path / "RELEASE"
    check = {
        "name": "pytest smoke",
        "timeout": 30,
        "command": {
            "argv": [
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                "-m",
                "smoke",
                "-q",
                "-p",
                "no:cacheprovider",
            ],
            "cwd": str(tmp_path),
            "env": {"RELEASE_MARKER": str(marker)},
            "stdout": "1 passed, 1 deselected",
        },
    }
    result = run(check)["pytest smoke"]
    assert result["status"] == "fail"
    assert "exited 1, expected 0" in result["message"]
    assert "1 failed, 1 deselected" in result["message"]
    marker.write_text("v2\n")
    result = run(check)["pytest smoke"]
    assert result["status"] == "pass", result["message"]


def test_env_values_are_secrets_and_reach_the_command(tmp_path: Path):
    secret = "cmd-s3cret-77d1"
    results = run(
        {
            "name": "sees it",
            "command": {
                "argv": ["sh", "-c", 'test "$TOKEN" = ' + secret],
                "env": {"TOKEN": secret},
            },
        },
        {
            "name": "prints it",
            "command": {
                "argv": ["sh", "-c", 'echo "token=$TOKEN"; exit 2'],
                "env": {"TOKEN": secret},
            },
        },
    )
    assert results["sees it"]["status"] == "pass"
    assert results["prints it"]["status"] == "fail"
    assert secret not in results["prints it"]["message"]
    assert "stdout ends: token=***" in results["prints it"]["message"]


def test_a_timeout_kills_the_command_and_everything_it_started(tmp_path: Path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    results = run(
        {
            "name": "hangs",
            "timeout": 0.5,
            "command": {
                "argv": ["sh", "-c", "sleep 60 & echo $! > %s; echo $$ >> %s; wait" % (pids, pids)]
            },
        }
    )
    assert time.monotonic() - started < 2
    assert results["hangs"]["status"] == "timeout"
    left = [int(pid) for pid in pids.read_text().split()]
    assert len(left) == 2 and running(left) == []


def test_a_command_that_leaves_a_daemon_holding_its_output_ends_when_it_exits(tmp_path: Path):
    pid_file = tmp_path / "daemon.pid"
    started = time.monotonic()
    results = run(
        {
            "name": "starts a daemon",
            "timeout": 5,
            "command": {"argv": ["sh", "-c", "sleep 30 & echo $! > %s; echo started" % pid_file]},
        }
    )
    try:
        assert results["starts a daemon"]["status"] == "pass", results["starts a daemon"]
        assert time.monotonic() - started < 2
    finally:
        os.kill(int(pid_file.read_text()), 9)


def test_check_mode_does_not_run_a_command(tmp_path: Path):
    flag = tmp_path / "ran"
    results = run({"name": "touch", "command": {"argv": ["touch", str(flag)]}}, check_mode=True)
    assert results["touch"]["status"] == "skipped"
    assert (
        results["touch"]["message"]
        == "touch %s not run in check mode: a command may change the host" % flag
    )
    assert not flag.exists()


def test_bad_command_fields_are_spec_errors():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(
            [
                {"name": "a", "command": {"argv": "make smoke"}},
                {"name": "b", "command": {"argv": ["x"], "exit": 256}},
                {
                    "name": "c",
                    "command": {"argv": ["x"], "env": {"BAD NAME": "v", "OK": "hidden-v"}},
                },
                {"name": "d", "command": {"argv": ["x"], "cwd": "relative"}},
            ]
        )
    assert caught.value.errors == [
        "check 'a': command.argv: expected a list of strings",
        "check 'b': command.exit: expected an exit status (0-255) or a list of them",
        "check 'c': command.env: expected a mapping of variable names to string values",
        "check 'd': command.cwd: 'relative' is not an absolute path",
    ]
