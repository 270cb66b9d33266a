"""HTTP JSON paths and max_latency against a real server; flaky results and the spec's
budget in every format and in `smokegate serve`."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from conftest import run_cli
from formats import parse_nagios, parse_prometheus, parse_tap
from quiet_http import QuietHandler
from test_serve import serving

from smokegate.engine import runner, spec

HEALTH = {
    "status": "degraded",
    "version": "2.4.1",
    "checks": {"db": {"ok": True, "latency_ms": 12.5}, "cache": {"ok": False}},
    "items": [{"id": 7}, {"id": 8}],
    "queue": 120,
}


class Handler(QuietHandler):
    calls: dict[str, int] = {}

    def do_GET(self) -> None:
        calls = type(self).calls
        calls[self.path] = calls.get(self.path, 0) + 1
        if self.path == "/health":
            self.reply(200, json.dumps(HEALTH).encode())
        elif self.path == "/slow":
            time.sleep(0.4)
            self.reply(200, b'{"status": "ok"}')
        elif self.path == "/not-json":
            self.reply(200, b"<html>ok</html>")
        elif self.path == "/deep":
            self.reply(200, b"[" * 100_000 + b"]" * 100_000)
        elif self.path.startswith("/fails-first"):  # each path fails its first request
            self.reply(503 if calls[self.path] == 1 else 200, b"warming up\n")
        else:
            self.reply(404, b"not found\n")


@pytest.fixture
def server() -> Iterator[str]:
    handler = type("Handler", (Handler,), {"calls": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def run(*checks: dict, **document: Any) -> dict:
    return runner.run_checks(spec.parse_spec(dict(document, checks=list(checks))))


def by_name(report: dict) -> dict[str, dict]:
    return {result["name"]: result for result in report["results"]}


def test_json_paths_values_and_tests(server: str):
    url = server + "/health"
    results = by_name(
        run(
            {
                "name": "healthy",
                "http": {
                    "url": url,
                    "json": {
                        "checks.db.ok": True,
                        "items.1.id": 8,
                        "version": {"regex": r"^2\."},
                        "checks.db.latency_ms": {"max": 50, "type": "number"},
                        "debug": {"exists": False},
                        "items": {"type": "array"},
                    },
                },
            },
            {"name": "degraded", "http": {"url": url, "json": {"status": "ok"}}},
            {
                "name": "several",
                "http": {
                    "url": url,
                    "json": {
                        "checks.cache.ok": True,
                        "queue": {"max": 100},
                        "items.5.id": 1,
                        "version": {"type": "integer"},
                        "checks": {"exists": False},
                    },
                },
            },
            {"name": "true is not 1", "http": {"url": url, "json": {"checks.db.ok": 1}}},
            {"name": "not json", "http": {"url": server + "/not-json", "json": {"status": "ok"}}},
            {"name": "deep", "http": {"url": server + "/deep", "json": {"0": []}}},
        )
    )
    assert results["healthy"]["status"] == "pass", results["healthy"]
    assert results["healthy"]["message"] == (
        "GET %s returned 200 with JSON checks.db.ok, items.1.id, version,"
        " checks.db.latency_ms, debug, items as expected" % url
    )
    assert results["degraded"]["message"] == (
        'GET %s returned 200 but status is "degraded", expected "ok"' % url
    )
    assert results["several"]["message"] == (
        "GET %s returned 200 but checks.cache.ok is false, expected true; queue is 120,"
        ' expected at most 100; items.5.id is missing, expected 1; version is "2.4.1"'
        " (string), expected integer; checks is"
        ' {"db": {"ok": true, "latency_ms": 12.5}, "cache": {"ok": ..., expected no such'
        " path" % url
    )
    assert results["true is not 1"]["status"] == "fail"
    assert results["not json"]["message"] == (
        "GET %s/not-json returned 200 but the body (15 bytes) is not JSON"
        " (line 1: Expecting value)" % server
    )
    assert results["deep"]["status"] == "fail"
    assert "is not JSON" in results["deep"]["message"]


def test_a_slow_endpoint_fails_its_max_latency_with_the_right_status(server: str):
    results = by_name(
        run(
            {"name": "slow", "http": {"url": server + "/slow", "max_latency": 0.2}},
            {"name": "patient", "http": {"url": server + "/slow", "max_latency": 2}},
        )
    )
    assert results["slow"]["status"] == "fail"
    assert re.fullmatch(
        r"GET %s/slow returned 200 in \d\.\d+ s, over its max_latency of 0.2 s" % re.escape(server),
        results["slow"]["message"],
    ), results["slow"]["message"]
    assert results["patient"]["status"] == "pass"
    assert re.fullmatch(
        r"GET %s/slow returned 200 in \d\.\d+ s" % re.escape(server), results["patient"]["message"]
    ), results["patient"]["message"]


def test_bad_json_expectations_are_spec_errors():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(
            [
                {"name": "a", "http": {"url": "http://x/", "json": {"status": {"equals": "ok"}}}},
                {"name": "b", "http": {"url": "http://x/", "json": {"a..b": 1}}},
                {"name": "c", "http": {"url": "http://x/", "json": {"n": {"min": "low"}}}},
                {
                    "name": "d",
                    "http": {"url": "http://x/", "json": {"n": {"exists": False, "min": 1}}},
                },
                {"name": "e", "http": {"url": "http://x/", "json": {"n": {"type": "float"}}}},
            ]
        )
    assert caught.value.errors == [
        "check 'a': http.json: status: equals is not a test; use regex, min, max, type, exists",
        "check 'b': http.json: 'a..b' is not a JSON path such as checks.db.ok",
        "check 'c': http.json: n: min: expected a number",
        "check 'd': http.json: n: exists: false takes no other test",
        "check 'e': http.json: n: type: 'float' is not one of string, number, integer,"
        " boolean, null, object, array",
    ]


def flaky_spec(write_spec, server: str, warming: str) -> str:
    document: dict[str, Any] = {
        "checks": [
            {
                "name": "warming",
                "http": {"url": server + warming},
                "retries": 2,
                "retry_delay": 0.05,
            },
            {"name": "steady", "http": {"url": server + "/health"}},
        ]
    }
    return str(write_spec(document))


def test_a_check_that_passed_only_after_a_retry_is_flaky_in_every_format(write_spec, server: str):
    outputs = {}
    for format in ("json", "human", "junit", "tap", "nagios", "prometheus"):
        # A fresh path for each run: every one fails its first request.
        path = flaky_spec(write_spec, server, "/fails-first/" + format)
        completed = run_cli("check", "-f", path, "--format", format)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        outputs[format] = completed.stdout
    report = json.loads(outputs["json"])
    warming, steady = report["results"]
    assert (warming["status"], warming["attempts"], warming["flaky"]) == ("pass", 2, True)
    assert "flaky" not in steady
    assert report["summary"]["flaky"] == 1
    assert "(flaky: passed on attempt 2)" in outputs["human"].splitlines()[1]
    assert outputs["human"].splitlines()[-1] == "  1 flaky (passed only after a retry): warming"
    case = ET.fromstring(outputs["junit"]).find(".//testcase[@name='warming']")
    assert {item.get("name"): item.get("value") for item in case.iter("property")} == {
        "flaky": "true",
        "attempts": "2",
    }
    assert "# flaky: passed on attempt 2" in outputs["tap"].splitlines()
    assert parse_tap(outputs["tap"])[0].ok
    nagios = parse_nagios(outputs["nagios"])
    assert nagios.status == "OK" and nagios.summary.endswith("; 1 flaky")
    assert nagios.perfdata["flaky"][0] == 1
    assert "FLAKY warming: flaky: passed on attempt 2" in nagios.long_output
    attempts = dict(
        (labels["name"], value)
        for labels, value in parse_prometheus(outputs["prometheus"])["smokegate_check_attempts"]
    )
    assert attempts == {"warming": 2, "steady": 1}


def test_a_run_over_its_budget_warns_in_every_format_and_still_passes(write_spec, server: str):
    document = {
        "budget": 0.2,
        "checks": [
            {"name": "slow", "http": {"url": server + "/slow"}},
            {"name": "quick", "http": {"url": server + "/health"}},
            {"name": "sleeper", "command": {"argv": ["sleep", "0.3"]}},
            {"name": "also quick", "file": {"path": "/etc/hostname"}},
        ],
    }
    path = str(write_spec(document))
    outputs = {}
    for format in ("json", "human", "junit", "tap", "nagios", "prometheus"):
        completed = run_cli("check", "-f", path, "--format", format)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        outputs[format] = completed.stdout
    report = json.loads(outputs["json"])
    assert report["ok"] is True
    assert report["budget"]["seconds"] == 0.2 and report["budget"]["exceeded"] is True
    slowest = [check["name"] for check in report["budget"]["slowest"]]
    assert set(slowest[:2]) == {"slow", "sleeper"} and len(slowest) == 3
    warning = outputs["human"].splitlines()[-1]
    assert warning.startswith("  warning: the run took ")
    assert ", over its budget of 0.2 s; slowest: " in warning
    assert "slow (" in warning and "sleeper (" in warning
    junit = ET.fromstring(outputs["junit"])
    suite = junit.find("testsuite")
    assert suite[0].tag == "properties"
    assert suite[0][0].get("name") == "budget_warning"
    assert suite[0][0].get("value").startswith("the run took ")
    assert (
        outputs["tap"].splitlines()[-1].startswith("# %s: warning: the run took " % report["host"])
    )
    assert len(parse_tap(outputs["tap"])) == 4
    nagios = parse_nagios(outputs["nagios"])
    assert nagios.status == "OK" and nagios.summary.endswith("; over its budget")
    assert nagios.long_output[-1].startswith("BUDGET the run took ")
    metrics = parse_prometheus(outputs["prometheus"])
    assert metrics["smokegate_over_budget"][0][1] == 1
    assert metrics["smokegate_budget_seconds"][0][1] == 0.2

    document["budget"] = 30
    report = json.loads(
        run_cli("check", "-f", str(write_spec(document)), "--format", "json").stdout
    )
    assert report["budget"]["exceeded"] is False
    human = run_cli("check", "-f", str(write_spec(document))).stdout
    assert "budget" not in human


def test_a_bad_budget_is_a_spec_error(write_spec):
    completed = run_cli("check", "-f", str(write_spec({"budget": "soon", "checks": [
        {"name": "root", "disk": {"path": "/", "min_free": 1}}]})))  # fmt: skip
    assert completed.returncode == 2
    assert "spec: budget: expected a number of seconds greater than 0" in completed.stderr


def test_serve_counts_flaky_runs_per_check_since_it_started(tmp_path, write_spec, server: str):
    path = write_spec(
        {
            "checks": [
                {
                    "name": "warming",
                    "http": {"url": server + "/fails-first/serve"},
                    "retries": 1,
                    "retry_delay": 0.05,
                },
                {"name": "steady", "http": {"url": server + "/health"}},
            ]
        }
    )
    with serving(tmp_path, path, "--cache", "0") as served:
        readings = []
        for _run in range(2):
            with urllib.request.urlopen(served.url + "/metrics", timeout=10) as response:
                metrics = parse_prometheus(response.read().decode())
            readings.append(
                {labels["name"]: value for labels, value in metrics["smokegate_check_flaky"]}
            )
    # The first run retried the first request; the second passed at once: still one.
    assert readings == [{"warming": 1, "steady": 0}, {"warming": 1, "steady": 0}]


def test_the_smoke_playbook_carries_the_budget_of_its_spec_file_both_ways(tmp_path, server: str):
    from fleet import Fleet

    fleet = Fleet(tmp_path, count=1)
    spec_path = tmp_path / "budgeted.yml"
    for pipelining in ("1", "0"):  # the shipped engine, then the module
        spec_path.write_text(
            "budget: 0.1  # seconds\nchecks:\n"
            "  - {name: slow, http: {url: '%s/slow'}}\n"
            "  - {name: warming, http: {url: '%s/fails-first/ansible-%s'}, retries: 2,"
            " retry_delay: 0.05}\n" % (server, server, pipelining)
        )
        report_file = tmp_path / ("report-%s.json" % pipelining)
        run = fleet.playbook(
            "smoke",
            env={
                "ANSIBLE_PIPELINING": pipelining,
                "ANSIBLE_CALLBACKS_ENABLED": "smokegate.core.smoke_report",
                "SMOKEGATE_REPORT_JSON": str(report_file),
            },
            smokegate_checks_file=str(spec_path),
        )
        assert run.returncode == 0, run.output
        assert "1 flaky: warming" in run.output  # the end-of-play table
        assert "  warning: the run took " in run.output
        (report,) = json.loads(report_file.read_text())["reports"]
        assert report["budget"]["seconds"] == 0.1 and report["budget"]["exceeded"], pipelining
        assert report["budget"]["slowest"][0]["name"] == "slow"
        assert report["summary"]["flaky"] == 1, pipelining


def test_a_rolling_deploy_takes_the_budget_of_its_spec_file(tmp_path):
    from fleet import Fleet

    fleet = Fleet(tmp_path, count=1)
    document = yaml.safe_load(fleet.spec_file.read_text())
    document["budget"] = 0.001  # every run is slower: warned, never failed
    fleet.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    report_file = tmp_path / "report.json"
    run = fleet.deploy(
        "v1",
        env={
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_CALLBACKS_ENABLED": "smokegate.core.smoke_report",
            "SMOKEGATE_REPORT_JSON": str(report_file),
        },
    )
    assert run.returncode == 0, run.output
    assert fleet.current("web1") == "v1"
    reports = json.loads(report_file.read_text())["reports"]
    assert reports and all(report["budget"]["exceeded"] for report in reports)
    assert "  warning: the run took " in run.output
