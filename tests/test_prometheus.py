"""The prometheus check against a real Prometheus server (tests/prometheus_server.py), and
against a loopback server that answers what Prometheus never would.

The server scrapes gauges this module sets; every front end puts its own name for the host
in the query's {host}: the runner's host, `smokegate check` the machine's host name,
Ansible the inventory_hostname, a host request (fab) the name it carries.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import yaml
from conftest import (
    BASIC_AUTHORIZATIONS,
    PLAIN_URL_PASSWORD,
    SECRET_HEADER,
    URL_PASSWORD,
    URL_USER,
    leaked_secrets,
    run_cli,
)
from fleet import Fleet
from prometheus_server import Prometheus
from quiet_http import QuietHandler

from ansible_collections.smokegate.core.plugins.module_utils import agent, protocol
from smokegate.engine import runner, spec

LATENCY = "smokegate_test_latency_seconds"
REPLICAS = "smokegate_test_replicas"
ODD = "smokegate_test_odd"
ERRORS = "smokegate_test_error_ratio"
GAUGES = [
    (LATENCY, 0.004, {"host": "web-a"}),
    (LATENCY, 0.031, {"host": "web-b"}),
    (LATENCY, 0.002, {"host": "web-c"}),
    (REPLICAS, 2, {"host": "web-a"}),
    (REPLICAS, 0, {"host": "web-b"}),
    (REPLICAS, 5, {"host": "web-c"}),
    (ODD, float("nan"), {"kind": "nan"}),
    (ODD, float("inf"), {"kind": "inf"}),
    (ODD, 1, {"kind": 'quote" newline\n escape \x1b[31m'}),
    (ERRORS, 0.001, {"host": "web1"}),
    (ERRORS, 0.2, {"host": "web2"}),
    (ERRORS, 0.003, {"host": socket.gethostname()}),
]


@pytest.fixture(scope="module")
def server(prometheus: Prometheus) -> Prometheus:
    """The session's Prometheus, with GAUGES in it."""
    for name, value, labels in GAUGES[:-1]:
        prometheus.exporter.set(name, value, **labels)
    name, value, labels = GAUGES[-1]
    prometheus.set(name, value, **labels)  # scraped with the others: one wait for all
    return prometheus


def series(server: Prometheus, name: str, **labels: str) -> str:
    """A scraped series as the check shows it: the target's instance and job added."""
    labels = dict(labels, instance=server.exporter.address, job=Prometheus.JOB)
    return "%s{%s}" % (name, ", ".join('%s="%s"' % item for item in sorted(labels.items())))


def check(name: str, url: str, query: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "prometheus": dict(url=url, query=query, **fields)}


def outcomes(*checks: dict[str, Any], host: str = "web-a") -> dict[str, tuple[str, str]]:
    report = runner.run_checks(spec.parse_spec(list(checks)), host=host)
    return {result["name"]: (result["status"], result["message"]) for result in report["results"]}


# --- the real server ----------------------------------------------------------------------
def test_passes_with_the_value_its_labels_and_the_bound(server: Prometheus):
    url = server.url
    assert outcomes(
        check("one", url, LATENCY + '{host="web-a"}', max=0.01),
        check("many", url, "max by (host) (%s)" % LATENCY, min=0, max=0.05),
        check("scalar", url, "scalar(sum(%s))" % REPLICAS, min=7),
        check("at the bound", url, LATENCY + '{host="web-b"}', max=0.031),
    ) == {
        "one": ("pass", "0.004 for %s, want <= 0.01" % series(server, LATENCY, host="web-a")),
        "many": ("pass", "3 samples from 0.002 to 0.031, want >= 0 and <= 0.05"),
        "scalar": ("pass", "scalar 7, want >= 7"),
        "at the bound": (
            "pass",
            "0.031 for %s, want <= 0.031" % series(server, LATENCY, host="web-b"),
        ),
    }


def test_fails_on_max_naming_the_worst_sample_and_how_many_are_outside(server: Prometheus):
    url = server.url
    assert outcomes(
        check("one", url, LATENCY + '{host="web-b"}', max=0.01),
        check("many", url, "max by (host) (%s)" % LATENCY, max=0.003),
    ) == {
        "one": ("fail", "0.031 for %s, want <= 0.01" % series(server, LATENCY, host="web-b")),
        "many": ("fail", '0.031 for {host="web-b"}, want <= 0.003 (2 of 3 samples outside)'),
    }


def test_fails_on_min_naming_the_worst_sample_and_how_many_are_outside(server: Prometheus):
    url = server.url
    assert outcomes(
        check("many", url, "max by (host) (%s)" % REPLICAS, min=3, max=10),
        check("scalar", url, "scalar(sum(%s))" % REPLICAS, min=10),
    ) == {
        "many": ("fail", '0 for {host="web-b"}, want >= 3 and <= 10 (2 of 3 samples outside)'),
        "scalar": ("fail", "scalar 7, want >= 10"),
    }


def test_nan_and_infinite_values_fail_whatever_the_bounds_and_are_shown_as_such(
    server: Prometheus,
):
    url = server.url
    assert outcomes(
        check("nan", url, ODD + '{kind="nan"}', max=1),
        check("inf", url, ODD + '{kind="inf"}', min=0),
        check("scalar inf", url, "1/0", min=0),
        check("scalar -inf", url, "-1/0", max=0),
        check("worst", url, ODD, min=0, max=2),
    ) == {
        "nan": ("fail", "NaN for %s, want <= 1" % series(server, ODD, kind="nan")),
        "inf": ("fail", "+Inf for %s, want >= 0" % series(server, ODD, kind="inf")),
        "scalar inf": ("fail", "scalar +Inf, want >= 0"),
        "scalar -inf": ("fail", "scalar -Inf, want <= 0"),
        "worst": (
            "fail",
            "+Inf for %s, want >= 0 and <= 2 (2 of 3 samples outside)"
            % series(server, ODD, kind="inf"),
        ),
    }


def test_label_values_are_shown_escaped(server: Prometheus):
    [(status, message)] = outcomes(
        check("odd label", server.url, ODD + '{kind!~"nan|inf"}', max=0)
    ).values()
    assert status == "fail"
    assert 'kind="quote\\" newline\\n escape \\x1b[31m"' in message
    assert "\x1b" not in message and "\n" not in message


def test_an_empty_result_fails_unless_on_empty_is_pass(server: Prometheus):
    url = server.url
    assert outcomes(
        check("never exported", url, "smokegate_test_never_exported", max=1),
        check("no such host", url, LATENCY + '{host="web-z"}', max=1, on_empty="pass"),
    ) == {
        "never exported": ("fail", "no samples for smokegate_test_never_exported"),
        "no such host": (
            "pass",
            'no samples for %s{host="web-z"} (on_empty: pass)' % LATENCY,
        ),
    }


def test_a_bad_query_is_an_error_naming_what_prometheus_said(server: Prometheus):
    url = server.url
    results = outcomes(
        check("unclosed", url, "sum(%s" % LATENCY, max=1),
        check("range", url, LATENCY + "[1m]", max=1),
        check("string", url, '"abc"', max=1),
    )
    status, message = results["unclosed"]
    assert status == "error"
    assert message.startswith(
        'Prometheus at %s: refused the query (bad_data): invalid parameter "query": ' % url
    )
    assert message.endswith("parse error: unclosed left parenthesis"), message
    assert results["range"] == (
        "error",
        "Prometheus at %s: the query returns a range vector (matrix); the check compares an"
        " instant vector or a scalar, such as max_over_time(...[5m])" % url,
    )
    assert results["string"] == (
        "error",
        "Prometheus at %s: the query returns a string, not a number" % url,
    )


def test_an_unreachable_server_fails_and_a_silent_one_times_out(closed_port: int, silent_port: int):
    closed = "http://127.0.0.1:%d" % closed_port
    silent = "http://127.0.0.1:%d" % silent_port
    assert outcomes(
        check("closed", closed, "up", max=1),
        dict(check("silent", silent, "up", max=1), timeout=0.5),
    ) == {
        "closed": ("fail", "Prometheus at %s: connection refused" % closed),
        "silent": ("timeout", "no result within 0.5 s"),
    }


# --- {host}: the host's name as the front end knows it -------------------------------------
HOST_QUERY = ERRORS + '{host="{host}"}'


def test_the_runner_puts_its_host_in_the_query(server: Prometheus):
    one = check("errors", server.url, HOST_QUERY, max=0.01)
    assert outcomes(one, host="web1")["errors"] == (
        "pass",
        "0.001 for %s, want <= 0.01" % series(server, ERRORS, host="web1"),
    )
    assert outcomes(one, host="web2")["errors"] == (
        "fail",
        "0.2 for %s, want <= 0.01" % series(server, ERRORS, host="web2"),
    )
    assert outcomes(one, host="web9")["errors"] == (
        "fail",
        'no samples for %s{host="web9"}' % ERRORS,
    )


def test_a_host_name_that_would_change_the_query_is_refused():
    one = check("errors", "http://127.0.0.1:1", HOST_QUERY, max=0.01)  # nothing is asked
    assert outcomes(one, host='web1"} or vector(0) or {x="')["errors"] == (
        "error",
        'the host name web1"} or vector(0) or {x=" cannot be put in a query:'
        " only letters, digits and . _ : -",
    )


def test_smokegate_check_puts_the_machine_host_name_in_the_query(server: Prometheus, write_spec):
    path = write_spec([check("errors", server.url, HOST_QUERY, max=0.01)])
    completed = run_cli("check", "-f", str(path), "--format", "json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [result] = json.loads(completed.stdout)["results"]
    assert result["message"] == "0.003 for %s, want <= 0.01" % series(
        server, ERRORS, host=socket.gethostname()
    )


def test_a_host_request_puts_the_name_it_carries_in_the_query(server: Prometheus):
    # What fab sends each host: the -H name travels in the request.
    checks = [check("errors", server.url, HOST_QUERY, max=0.01)]
    answer = agent.handle(protocol.request([protocol.smoke(checks)], host="web2"))
    report = protocol.Answer(answer).report
    assert report["host"] == "web2"
    assert [result["message"] for result in report["results"]] == [
        "0.2 for %s, want <= 0.01" % series(server, ERRORS, host="web2")
    ]


@pytest.mark.parametrize("pipelining", ["1", "0"], ids=["shipped engine", "module"])
def test_ansible_puts_each_inventory_hostname_in_the_query(
    server: Prometheus, tmp_path: Path, pipelining: str
):
    fleet = Fleet(tmp_path, count=2)  # local hosts web1 and web2
    checks = [check("errors", server.url, HOST_QUERY, max=0.01)]
    saved = tmp_path / "saved"
    saved.mkdir()
    tasks = [
        {
            "name": "Smoke",
            "smokegate.core.smoke": {"checks": checks, "fail_on": "never"},
            "register": "smoke",
        },
        {  # a deploy's smoke stage
            "name": "Smoke stage",
            "smokegate.core.stages": {
                "root": "{{ smokegate_deploy_root }}",
                "stages": ["smoke"],
                "checks": checks,
                "fail_on": "never",
            },
            "register": "stage",
        },
        {
            "name": "Save the reports",
            "ansible.builtin.copy": {
                "content": "{{ [smoke.smoke, stage.smoke] | to_json }}",
                "dest": "%s/{{ inventory_hostname }}.json" % saved,
                "mode": "0600",
            },
        },
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "Smoke", "hosts": "all", "gather_facts": False, "tasks": tasks}])
    )
    completed = subprocess.run(
        [
            shutil.which("ansible-playbook") or "ansible-playbook",
            "-i",
            str(fleet.inventory),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **fleet.ansible_env, "ANSIBLE_PIPELINING": pipelining},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for host, value in (("web1", "0.001"), ("web2", "0.2")):
        reports = json.loads((saved / ("%s.json" % host)).read_text())
        assert [(report["host"], report["results"][0]["message"]) for report in reports] == [
            (host, "%s for %s, want <= 0.01" % (value, series(server, ERRORS, host=host)))
        ] * 2


# --- secrets ------------------------------------------------------------------------------
def test_header_values_and_url_credentials_are_never_shown(
    server: Prometheus, write_spec, closed_port: int
):
    address = server.url.split("//", 1)[1]
    encoded = "http://%s:%s@" % (quote(URL_USER, safe=""), quote(URL_PASSWORD, safe=""))
    plain = "http://%s:%s@" % (URL_USER, PLAIN_URL_PASSWORD)
    headers = {"X-Token": SECRET_HEADER}
    checks = [
        check("pass", encoded + address, LATENCY + '{host="web-a"}', max=1, headers=headers),
        check("fail", plain + address, LATENCY + '{host="web-b"}', max=0, headers=headers),
        check("error", encoded + address, "sum(", max=0, headers=headers),
        check("empty", plain + address, "smokegate_test_none", max=0, headers=headers),
        check("down", encoded + "127.0.0.1:%d" % closed_port, "up", max=0, headers=headers),
    ]
    path = write_spec(checks)
    for output in ("human", "json", "junit", "tap", "nagios", "prometheus"):
        completed = run_cli("check", "-f", str(path), "--format", output)
        assert completed.returncode in (1, 2), completed.stderr
        assert leaked_secrets(completed.stdout + completed.stderr) == [], output
    completed = run_cli("check", "-f", str(path), "--format", "json")
    statuses = [result["status"] for result in json.loads(completed.stdout)["results"]]
    assert statuses == ["pass", "fail", "error", "fail", "fail"]


# --- answers Prometheus never gives ---------------------------------------------------------
def vector(*samples: Any) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": list(samples)}}
    ).encode()


HOSTILE = {
    # path prefix: (status, body, the message after "Prometheus at <url>: ")
    "not-found": (
        404,
        b"404 page not found\n",
        "/api/v1/query returned 404, not a Prometheus answer",
    ),
    "html": (200, b"<html>login</html>", "/api/v1/query returned 200, not a Prometheus answer"),
    "latin1": (
        200,
        b'{"status": "success", "data": "\xe9"}',
        "/api/v1/query returned 200, not a Prometheus answer",
    ),
    "deep": (
        200,
        b"[" * 200_000 + b"]" * 200_000,
        "/api/v1/query returned 200, not a Prometheus answer",
    ),
    "huge": (200, b" " * (2 << 20), "/api/v1/query answered more than 1 MiB"),
    "no-status": (200, b'{"data": {}}', "/api/v1/query returned 200, not a Prometheus answer"),
    "no-data": (200, b'{"status": "success"}', "its answer has no resultType vector or scalar"),
    "histogram": (
        200,
        b'{"status": "success", "data": {"resultType": "histogram", "result": []}}',
        "its answer has no resultType vector or scalar",
    ),
    "result-not-list": (
        200,
        b'{"status": "success", "data": {"resultType": "vector", "result": {}}}',
        "its vector is not a list of samples",
    ),
    "sample-not-mapping": (200, vector(1), "sample 1 is not a mapping of metric and value"),
    "no-labels": (200, vector({"value": [1, "1"]}), "sample 1 has no mapping of labels to strings"),
    "label-not-string": (
        200,
        vector({"metric": {"a": "b"}, "value": [1, "1"]}, {"metric": {"a": 1}, "value": [1, "1"]}),
        "sample 2 has no mapping of labels to strings",
    ),
    "no-value": (200, vector({"metric": {}}), 'sample 1 is not a [time, "value"] pair'),
    "number-value": (
        200,
        vector({"metric": {}, "value": [1, 0.5]}),
        'sample 1 is not a [time, "value"] pair',
    ),
    "hex-value": (
        200,
        vector({"metric": {}, "value": [1, "0x10"]}),
        'sample 1 has the value "0x10", not a number',
    ),
    "long-value": (
        200,
        vector({"metric": {}, "value": [1, "1" * 500]}),
        'sample 1 has the value "%s...", not a number' % ("1" * 40),
    ),
    "scalar-not-pair": (
        200,
        b'{"status": "success", "data": {"resultType": "scalar", "result": "1"}}',
        'the scalar is not a [time, "value"] pair',
    ),
    "error-without-message": (400, b'{"status": "error"}', "refused the query: (no message)"),
    "error-with-escapes": (
        422,
        json.dumps(
            {"status": "error", "errorType": "execution", "error": "\x1b[2Jgone\r\n" + "x" * 1000}
        ).encode(),
        "refused the query (execution): \\x1b[2Jgone\\r\\n%s..." % ("x" * 185),
    ),
}


Hostile = tuple[str, list[dict[str, Any]]]


# Well formed, but more than a message should hold: 50 labels of 150 characters.
WIDE_LABELS = {"l%02d" % index: "v" * 150 for index in range(50)}
ANSWERS = {
    **{prefix: (status, body) for prefix, (status, body, _message) in HOSTILE.items()},
    "wide": (200, vector({"metric": WIDE_LABELS, "value": [1, "NaN"]})),
}


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[Hostile]:
    """A loopback server answering <prefix>/api/v1/query with HOSTILE[prefix]; yields its
    URL and the requests it received (path, query arguments, headers)."""
    received: list[dict[str, Any]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            received.append(
                {
                    "path": parts.path,
                    "arguments": parse_qs(parts.query),
                    "authorization": self.headers.get("Authorization"),
                    "token": self.headers.get("X-Token"),
                }
            )
            prefix = parts.path.split("/")[1]
            status, body = ANSWERS.get(prefix, (200, vector()))
            self.reply(status, body)

    listener = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % listener.server_address[1], received
    listener.shutdown()
    listener.server_close()


@pytest.fixture
def hostile(hostile_server: Hostile) -> Hostile:
    """The hostile server, with no request received yet."""
    hostile_server[1].clear()
    return hostile_server


@pytest.mark.parametrize("prefix", list(HOSTILE))
def test_an_answer_prometheus_never_gives_is_an_error_naming_what_is_wrong(
    hostile: Hostile, prefix: str
):
    url = "%s/%s" % (hostile[0], prefix)
    [(status, message)] = outcomes(check("hostile", url, "up", max=0)).values()
    assert (status, message) == ("error", "Prometheus at %s: %s" % (url, HOSTILE[prefix][2]))


def test_a_message_shows_at_most_400_characters_of_a_series_labels(hostile: Hostile):
    url = hostile[0] + "/wide"
    [(status, message)] = outcomes(check("wide", url, "up", max=0)).values()
    shown = "".join('l%02d="%s", ' % (index, "v" * 100 + "...") for index in range(50))
    assert (status, message) == ("fail", "NaN for {%s...}, want <= 0" % shown[:400])


def test_the_request_goes_under_the_path_prefix_with_the_query_timeout_and_credentials(
    hostile: Hostile,
):
    url, received = hostile
    base = "%s:%s@%s/prom/" % (
        "http://" + quote(URL_USER, safe=""),
        quote(URL_PASSWORD, safe=""),
        url.split("//", 1)[1],
    )
    headers = {"X-Token": SECRET_HEADER}
    result = outcomes(
        dict(check("prefixed", base, HOST_QUERY, max=0, headers=headers), timeout=2),
        host="web7",
    )["prefixed"]
    assert result == ("fail", 'no samples for %s{host="web7"}' % ERRORS)
    [request] = received
    assert request["path"] == "/prom/api/v1/query"
    assert request["arguments"]["query"] == ['%s{host="web7"}' % ERRORS]
    # Prometheus stops evaluating once the attempt has stopped waiting for it.
    [timeout] = request["arguments"]["timeout"]
    assert 1.5 < float(timeout) <= 2
    assert request["authorization"] in BASIC_AUTHORIZATIONS
    assert request["token"] == SECRET_HEADER
