"""`smokegate check` as users run it: exit codes, formats, colour, secrets."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import (
    ENV_SECRET,
    REPO,
    SECRET_ENV_NAME,
    SECRET_HEADER,
    SECRET_STATUSES,
    leaked_secrets,
    run_cli,
    secret_checks,
    smokegate_executable,
)
from formats import parse_nagios, parse_prometheus, parse_tap

from smokegate import __version__
from smokegate.cli import FORMATS


def test_version_and_help_show_an_example_spec():
    completed = run_cli("--version")
    assert (completed.returncode, completed.stdout.strip()) == (0, "smokegate %s" % __version__)
    completed = run_cli("check", "--help")
    assert completed.returncode == 0
    assert "example spec (smoke.yml):" in completed.stdout
    assert "disk: {path: /srv, min_free: 2GiB" in completed.stdout
    assert run_cli().returncode == 2  # no command: usage


def test_the_example_spec_passes_on_this_machine():
    completed = run_cli("check", "-f", str(REPO / "examples" / "smoke.yml"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "PASS  python" in completed.stdout


def test_exit_0_when_ok_1_when_a_critical_check_fails(write_spec, closed_port: int):
    ok = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    completed = run_cli("check", "-f", str(ok))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[1].startswith("  PASS  root  ")

    failing = write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": "db port", "tcp": {"host": "127.0.0.1", "port": closed_port}},
        ],
        name="failing.json",
    )
    completed = run_cli("check", "-f", str(failing))
    assert completed.returncode == 1
    assert "FAIL  db port  connection to 127.0.0.1:%d refused" % closed_port in completed.stdout
    assert "gate stopped by: db port" in completed.stdout


def test_a_warning_only_failure_exits_0(write_spec, closed_port: int):
    path = write_spec(
        [
            {
                "name": "optional",
                "tcp": {"host": "127.0.0.1", "port": closed_port},
                "severity": "warning",
            }
        ]
    )
    completed = run_cli("check", "-f", str(path))
    assert completed.returncode == 0
    assert "WARN  optional" in completed.stdout


def test_only_runs_the_named_checks_and_rejects_unknown_names(write_spec, closed_port: int):
    path = write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": "db port", "tcp": {"host": "127.0.0.1", "port": closed_port}},
        ]
    )
    completed = run_cli("check", "-f", str(path), "--only", "root", "--format", "json")
    assert completed.returncode == 0
    statuses = {
        result["name"]: result["status"] for result in json.loads(completed.stdout)["results"]
    }
    assert statuses == {"root": "pass", "db port": "skipped"}
    completed = run_cli("check", "-f", str(path), "--only", "db prot")
    assert completed.returncode == 2
    assert (
        "no check named 'db prot'" in completed.stderr
        and "did you mean 'db port'?" in completed.stderr
    )


def test_spec_from_stdin_and_default_file_name(tmp_path: Path):
    document = json.dumps({"checks": [{"name": "root", "disk": {"path": "/", "min_free": 1}}]})
    completed = run_cli("check", "-f", "-", "--format", "json", input=document)
    assert completed.returncode == 0, completed.stderr
    (tmp_path / "smoke.yml").write_text("checks:\n  - name: root\n    mount: {path: /}\n")
    completed = run_cli("check", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr


def secret_spec(write_spec, tmp_path: Path, http_server: str) -> Path:
    env_file = tmp_path / "app.env"
    env_file.write_text("DATABASE_URL=postgres://app:%s@db/app\n" % ENV_SECRET)
    return write_spec(
        [
            {
                "name": "db url ok",
                "env": {"name": "DATABASE_URL", "file": str(env_file), "pattern": "^postgres://"},
            },
            {
                "name": "db url bad",
                "env": {"name": "DATABASE_URL", "file": str(env_file), "pattern": "^mysql://"},
            },
            {
                "name": "api ok",
                "http": {"url": http_server + "/private", "headers": {"X-Token": SECRET_HEADER}},
            },
            {
                "name": "api bad",
                "http": {
                    "url": http_server + "/private",
                    "headers": {"X-Token": SECRET_HEADER},
                    "status": 204,
                },
            },
        ]
    )


def test_json_report_matches_the_contract(write_spec, tmp_path: Path, http_server: str):
    completed = run_cli(
        "check", "-f", str(secret_spec(write_spec, tmp_path, http_server)), "--format", "json"
    )
    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    assert set(report) == {"host", "ok", "duration_ms", "summary", "results"}
    assert report["ok"] is False
    assert report["summary"] == {
        "total": 4,
        "passed": 2,
        "failed": 2,
        "errors": 0,
        "timeouts": 0,
        "skipped": 0,
        "flaky": 0,
    }
    for result in report["results"]:
        assert set(result) == {
            "name",
            "type",
            "severity",
            "status",
            "message",
            "duration_ms",
            "attempts",
        }
    assert [result["status"] for result in report["results"]] == ["pass", "fail", "pass", "fail"]


def test_junit_report_parses_with_one_testcase_per_check(
    write_spec, tmp_path: Path, http_server: str
):
    completed = run_cli(
        "check", "-f", str(secret_spec(write_spec, tmp_path, http_server)), "--format", "junit"
    )
    assert completed.returncode == 1
    root = ET.fromstring(completed.stdout)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == ["db url ok", "db url bad", "api ok", "api bad"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "0")
    failure = cases[1].find("failure")
    assert failure is not None and "does not match ^mysql://" in failure.get("message", "")


def test_control_bytes_from_a_program_leave_the_junit_report_well_formed(write_spec):
    noisy = "import sys; sys.stdout.buffer.write(b'\\x00\\x1b(Bbanner\\x07 \\xef\\xbf\\xbe\\n')"
    path = write_spec(
        [
            {
                "name": "form\x0cfeed",
                "binary": {"name": sys.executable, "args": ["-c", noisy], "version": ">=1"},
            }
        ]
    )
    completed = run_cli("check", "-f", str(path), "--format", "junit")
    assert completed.returncode == 1, completed.stderr
    parser = ET.XMLParser()  # expat: a character XML 1.0 forbids is a fatal error
    parser.feed(completed.stdout.encode())
    (case,) = parser.close().iter("testcase")
    assert case.get("name") == "form\\x0cfeed"
    error = case.find("error")
    assert error is not None
    assert error.get("message", "").endswith("\\x00\\x1b(Bbanner\\x07 \\ufffe")
    assert error.text == error.get("message")


def test_secrets_appear_in_no_format_and_url_credentials_authenticate(
    write_spec, tmp_path: Path, http_server: str, closed_port: int
):
    path = write_spec(secret_checks(tmp_path, http_server, closed_port))
    for fmt in FORMATS:
        completed = run_cli(
            "check", "-f", str(path), "--format", fmt, env={SECRET_ENV_NAME: ENV_SECRET}
        )
        assert completed.returncode == (2 if fmt == "nagios" else 1)
        assert leaked_secrets(completed.stdout + completed.stderr) == [], fmt
        if fmt == "json":
            report = json.loads(completed.stdout)
            statuses = {result["name"]: result["status"] for result in report["results"]}
            assert statuses == SECRET_STATUSES
            messages = {result["name"]: result["message"] for result in report["results"]}
            assert (
                "GET http://***@127.0.0.1:%d/basic" % closed_port
                in messages["encoded credentials bad"]
            )


def test_colour_on_a_terminal_only_and_never_with_no_color(write_spec):
    path = str(write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}]))
    piped = run_cli("check", "-f", path)
    assert "\033[" not in piped.stdout

    def on_a_tty(extra_env: dict[str, str]) -> str:
        primary, secondary = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env.update(TERM="xterm", **extra_env)
        process = subprocess.Popen(
            [smokegate_executable(), "check", "-f", path], stdout=secondary, env=env
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=30)
        os.close(primary)
        return b"".join(chunks).decode()

    assert "\033[32mPASS" in on_a_tty({})
    assert "\033[" not in on_a_tty({"NO_COLOR": "1"})


def monitoring_spec(write_spec, closed_port: int, critical_fails: bool = True):
    return write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {
                "name": "db | port",
                "tcp": {"host": "127.0.0.1", "port": closed_port},
                "severity": "critical" if critical_fails else "warning",
                "timeout": 1,
            },
            {
                "name": "cache's port",
                "tcp": {"host": "127.0.0.1", "port": closed_port},
                "severity": "warning",
                "timeout": 1,
            },
            {"name": "not chosen", "env": {"name": "PATH"}},
        ]
    )


def test_tap_report_parses_with_directives_and_diagnostics(write_spec, closed_port: int):
    path = monitoring_spec(write_spec, closed_port)
    chosen = ("root", "db | port", "cache's port")
    completed = run_cli("check", "-f", str(path), "--format", "tap", "--only", *chosen)
    assert completed.returncode == 1
    points = parse_tap(completed.stdout)
    assert [(point.ok, point.directive) for point in points] == [
        (True, None),
        (False, None),
        (False, "TODO"),
        (True, "SKIP"),
    ]
    assert points[0].description == "%s: root" % points[0].description.split(":")[0]
    assert points[1].diagnostics["status"] == "fail"
    assert points[1].diagnostics["message"] == "connection to 127.0.0.1:%d refused" % closed_port
    assert points[2].diagnostics["severity"] == "warning"
    assert points[3].description.endswith(": not chosen")


def test_nagios_status_line_perfdata_and_exit_codes(write_spec, closed_port: int):
    critical = run_cli(
        "check", "-f", str(monitoring_spec(write_spec, closed_port)), "--format", "nagios"
    )
    assert critical.returncode == 2
    output = parse_nagios(critical.stdout)
    assert output.status == "CRITICAL"
    assert "1 critical failed: db / port" in output.summary
    assert "1 warning: cache's port" in output.summary
    assert output.perfdata["passed"][0] == 2 and output.perfdata["failed"][0] == 2
    assert output.perfdata["passed"][-1] == "4"  # max: the number of checks
    assert output.perfdata["cache's port"][1] == "s"
    assert output.long_output == [
        "FAIL db / port: connection to 127.0.0.1:%d refused" % closed_port,
        "WARN cache's port: connection to 127.0.0.1:%d refused" % closed_port,
    ]

    warning_spec = monitoring_spec(write_spec, closed_port, critical_fails=False)
    warning = run_cli("check", "-f", str(warning_spec), "--format", "nagios")
    assert warning.returncode == 1
    assert parse_nagios(warning.stdout).status == "WARNING"

    ok = run_cli("check", "-f", str(warning_spec), "--format", "nagios", "--only", "root")
    assert ok.returncode == 0
    assert parse_nagios(ok.stdout).status == "OK"

    bad = write_spec([{"name": "x", "tcp": {"host": "db", "port": 0}}], name="bad.json")
    for args in (
        ["-f", str(bad)],
        ["-f", str(warning_spec), "--only", "nope"],
        ["-f", str(tmp_missing := bad.with_name("missing.yml"))],
        ["-f", str(warning_spec), "--deadline", "soon"],
    ):
        unknown = run_cli("check", *args, "--format", "nagios")
        assert unknown.returncode == 3, (args, unknown.stdout, unknown.stderr)
        assert parse_nagios(unknown.stdout).status == "UNKNOWN"
    assert not tmp_missing.exists()
    unknown = run_cli("check", "-f", str(bad), "--format", "nagios")
    assert "check 'x'" in unknown.stdout and "port" in unknown.stdout


def test_prometheus_textfile_parses(write_spec, closed_port: int):
    path = monitoring_spec(write_spec, closed_port)
    completed = run_cli("check", "-f", str(path), "--format", "prometheus")
    assert completed.returncode == 1
    metrics = parse_prometheus(completed.stdout)
    ok = {labels["name"]: (labels, value) for labels, value in metrics["smokegate_check_ok"]}
    assert {name: value for name, (_labels, value) in ok.items()} == {
        "root": 1,
        "db | port": 0,
        "cache's port": 0,
        "not chosen": 1,
    }
    assert ok["db | port"][0]["type"] == "tcp" and ok["db | port"][0]["severity"] == "critical"
    assert len(metrics["smokegate_check_duration_seconds"]) == 4
    assert [value for _labels, value in metrics["smokegate_up"]] == [1]
    assert [value for _labels, value in metrics["smokegate_ok"]] == [0]
    (stamp,) = metrics["smokegate_last_run_timestamp_seconds"]
    assert abs(stamp[1] - time.time()) < 60
