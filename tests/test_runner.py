"""The runner: parallel checks, enforced timeouts, retries, the overall deadline, the verdict."""

from __future__ import annotations

import json
import re
import sys
import threading
import time

from conftest import run_cli

from smokegate.engine import probes, runner, spec

SystemProbe = probes.SystemProbe


def parse(*checks: dict) -> list:
    return spec.parse_spec(list(checks))


def test_a_silent_server_times_out_and_two_of_them_take_one_timeout(silent_port: int):
    checks = parse(
        {"name": "silent a", "http": {"url": "http://127.0.0.1:%d/" % silent_port}, "timeout": 1},
        {"name": "silent b", "http": {"url": "http://127.0.0.1:%d/x" % silent_port}, "timeout": 1},
    )
    started = time.monotonic()
    report = runner.run_checks(checks)
    elapsed = time.monotonic() - started
    assert [result["status"] for result in report["results"]] == ["timeout", "timeout"]
    assert report["results"][0]["message"] == "no result within 1 s"
    assert 0.9 <= elapsed < 1.6, elapsed  # in parallel: about one timeout, not two
    assert report["ok"] is False
    assert report["summary"]["timeouts"] == 2


class UncooperativeProbe(SystemProbe):
    """A resolver that blocks and ignores every timeout, as getaddrinfo does in C."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def resolve(self, name: str, family: str = "any") -> list[str]:
        self.calls += 1
        self.release.wait(30)
        return ["127.0.0.1"]

    def released(self) -> None:
        """Let every blocked call return, and wait until their threads have ended."""
        self.release.set()
        deadline = time.monotonic() + 5
        while any(thread.name.startswith("smokegate: stuck") for thread in threading.enumerate()):
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_call_that_cannot_be_interrupted_is_abandoned_at_its_timeout():
    probe = UncooperativeProbe()
    checks = parse({"name": "stuck dns", "dns": {"name": "db.internal"}, "timeout": 0.3})
    started = time.monotonic()
    report = runner.run_checks(checks, probe=probe)
    elapsed = time.monotonic() - started
    probe.released()
    assert report["results"][0]["status"] == "timeout"
    assert elapsed < 1.0, elapsed


def test_a_check_whose_abandoned_attempt_still_hangs_is_not_started_again():
    probe = UncooperativeProbe()
    checks = parse(
        {
            "name": "stuck resolver",
            "dns": {"name": "db.internal"},
            "timeout": 0.2,
            "retries": 1,
            "retry_delay": 0.1,
        }
    )
    try:
        first = runner.run_checks(checks, probe=probe)["results"][0]
        second = runner.run_checks(checks, probe=probe)["results"][0]
        calls = probe.calls
    finally:
        probe.released()
    # The retry and the whole second run wait on the first attempt instead of starting one.
    assert (first["status"], first["attempts"]) == ("timeout", 2)
    assert second["status"] == "timeout"
    assert re.fullmatch(
        r"still waiting on an earlier attempt, started [\d.]+ s ago", second["message"]
    ), second["message"]
    assert calls == 1
    # Once the hung call has returned, the check runs again.
    assert runner.run_checks(checks, probe=probe)["results"][0]["status"] == "pass"
    assert probe.calls == 2


def test_no_attempt_starts_while_the_most_abandoned_attempts_still_hang(monkeypatch):
    monkeypatch.setattr(runner, "MAX_ABANDONED", 2)
    probe = UncooperativeProbe()
    checks = parse(
        *(
            {"name": "stuck %d" % number, "dns": {"name": "db%d.internal" % number}, "timeout": 0.2}
            for number in range(3)
        )
    )
    try:
        results = [
            runner.run_checks(checks, probe=probe, only=[check.name])["results"][index]
            for index, check in enumerate(checks)
        ]
        calls = probe.calls
    finally:
        probe.released()
    assert [result["status"] for result in results] == ["timeout"] * 3
    assert results[2]["message"] == (
        "not started: 2 earlier attempts that timed out have not returned yet"
    )
    assert calls == 2


def test_retries_succeed_on_the_second_attempt(http_server: str):
    checks = parse(
        {
            "name": "warming",
            "http": {"url": http_server + "/flaky"},
            "retries": 2,
            "retry_delay": 0.1,
        }
    )
    result = runner.run_checks(checks)["results"][0]
    assert (result["status"], result["attempts"]) == ("pass", 2)


def test_retries_are_exhausted_then_the_last_status_is_reported(closed_port: int):
    checks = parse(
        {
            "name": "down",
            "tcp": {"host": "127.0.0.1", "port": closed_port},
            "retries": 2,
            "retry_delay": 0.05,
        }
    )
    result = runner.run_checks(checks)["results"][0]
    assert (result["status"], result["attempts"]) == ("fail", 3)


def test_the_overall_deadline_bounds_the_run(silent_port: int):
    checks = parse(
        {
            "name": "slow",
            "http": {"url": "http://127.0.0.1:%d/" % silent_port},
            "timeout": 10,
            "retries": 3,
        },
        {"name": "fast", "disk": {"path": "/", "min_free": 1}},
    )
    started = time.monotonic()
    report = runner.run_checks(checks, deadline=0.5)
    assert time.monotonic() - started < 1.2
    by_name = {result["name"]: result for result in report["results"]}
    assert by_name["slow"]["status"] == "timeout"
    assert by_name["fast"]["status"] == "pass"


def test_results_keep_spec_order_and_only_skips_the_rest():
    checks = parse(
        {"name": "c", "disk": {"path": "/", "min_free": 1}},
        {"name": "a", "disk": {"path": "/", "min_free": 1}},
        {"name": "b", "env": {"name": "SMOKEGATE_UNSET_VARIABLE"}},
    )
    report = runner.run_checks(checks, only=["a"], host="web9")
    assert [result["name"] for result in report["results"]] == ["c", "a", "b"]
    assert [result["status"] for result in report["results"]] == ["skipped", "pass", "skipped"]
    assert report["ok"] is True
    assert report["host"] == "web9"
    assert report["summary"] == {
        "total": 3,
        "passed": 1,
        "failed": 0,
        "errors": 0,
        "timeouts": 0,
        "skipped": 2,
        "flaky": 0,
    }


def test_a_failing_warning_keeps_the_gate_open():
    checks = parse(
        {
            "name": "nice to have",
            "env": {"name": "SMOKEGATE_UNSET_VARIABLE"},
            "severity": "warning",
        },
        {"name": "root", "disk": {"path": "/", "min_free": 1}},
    )
    report = runner.run_checks(checks)
    assert report["ok"] is True
    assert report["results"][0]["status"] == "fail"
    assert report["results"][0]["severity"] == "warning"


def test_an_unexpected_probe_exception_is_an_error_with_its_reason():
    class BrokenProbe(SystemProbe):
        def disk_usage(self, path: str):
            raise RuntimeError("statvfs exploded")

    report = runner.run_checks(
        parse({"name": "root", "disk": {"path": "/", "min_free": 1}}), probe=BrokenProbe()
    )
    result = report["results"][0]
    assert (result["status"], result["message"]) == ("error", "RuntimeError: statvfs exploded")


def test_a_runaway_regex_times_out_its_own_check_and_the_others_finish(
    write_spec, http_server: str, closed_port: int
):
    # ^(a+)+$ on "aaa...a!" backtracks for longer than the universe has left, holding the
    # GIL all the while: only a process can be stopped in the middle of it.
    runaway = "^(a+)+$"
    path = write_spec(
        [
            {"name": "env", "env": {"name": "RUNAWAY_VALUE", "pattern": runaway}, "timeout": 1},
            {
                "name": "body",
                "http": {"url": http_server + "/repeated", "body": runaway},
                "timeout": 1,
            },
            {
                "name": "binary",
                "binary": {
                    "name": sys.executable,
                    "args": ["-c", "print('a' * 64 + '!')"],
                    "version": ">=1",
                    "regex": runaway,
                },
                "timeout": 1,
            },
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": "path", "env": {"name": "PATH", "pattern": r"/usr/\w+"}},
            {"name": "closed", "tcp": {"host": "127.0.0.1", "port": closed_port}},
        ]
    )
    started = time.monotonic()
    completed = run_cli(
        "check",
        "-f",
        str(path),
        "--format",
        "json",
        env={"RUNAWAY_VALUE": "a" * 64 + "!"},
        timeout=20,
    )
    elapsed = time.monotonic() - started
    by_name = {result["name"]: result for result in json.loads(completed.stdout)["results"]}
    for name in ("env", "body", "binary"):
        assert (by_name[name]["status"], by_name[name]["message"]) == (
            "timeout",
            "no result within 1 s",
        ), by_name[name]
        assert by_name[name]["duration_ms"] < 1300, by_name[name]
    assert [by_name[name]["status"] for name in ("root", "path", "closed")] == [
        "pass",
        "pass",
        "fail",
    ]
    assert elapsed < 5, elapsed
