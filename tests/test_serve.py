"""`smokegate serve` as a monitor sees it: a real server process polled over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from conftest import SECRET_HEADER, run_cli, smokegate_executable
from formats import parse_prometheus

ENV_SECRET = "serve-s3cret-41d0"


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def get(self, path: str, **headers: str) -> tuple[int, str, str]:
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers["Content-Type"], answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()


@contextmanager
def serving(tmp_path: Path, spec: Path, *options: str) -> Iterator[Server]:
    log = tmp_path / "serve.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [smokegate_executable(), "serve", "-f", str(spec), "--port", "0", *options],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on " not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = log.read_text().split("listening on ")[1].split()[0].rsplit("/", 1)[0]
        yield Server(process, url, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_healthz_goes_503_when_a_check_starts_failing_once_the_cache_expires(
    tmp_path: Path, write_spec
):
    env_file = tmp_path / "app.env"
    env_file.write_text("MODE=live\n")
    spec = write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": "mode", "env": {"name": "MODE", "file": str(env_file), "pattern": "^live$"}},
        ]
    )
    with serving(tmp_path, spec, "--cache", "1") as server:
        status, content_type, body = server.get("/healthz")
        assert (status, content_type) == (200, "text/plain; charset=utf-8")
        assert "OK, 2 of 2 checks passed" in body
        env_file.write_text("MODE=maintenance\n")
        assert server.get("/healthz")[0] == 200  # still the cached run
        time.sleep(1.2)
        status, _content_type, body = server.get("/healthz")
        assert status == 503
        assert "FAIL" in body and "gate stopped by: mode" in body
        status, content_type, body = server.get("/healthz", Accept="application/json")
        assert (status, content_type) == (503, "application/json")
        report = json.loads(body)
        assert report["ok"] is False
        assert [item["status"] for item in report["results"]] == ["pass", "fail"]
        env_file.write_text("MODE=live\n")
        time.sleep(1.2)
        assert server.get("/healthz")[0] == 200
        assert server.get("/nothing-here")[0] == 404


def test_metrics_parse_as_prometheus_text(tmp_path: Path, write_spec, closed_port: int):
    spec = write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {
                "name": "db port",
                "tcp": {"host": "127.0.0.1", "port": closed_port},
                "severity": "warning",
            },
        ]
    )
    with serving(tmp_path, spec) as server:
        status, content_type, body = server.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    metrics = parse_prometheus(body)
    ok = {labels["name"]: (labels, value) for labels, value in metrics["smokegate_check_ok"]}
    assert ok["root"][1] == 1 and ok["db port"][1] == 0
    assert ok["db port"][0]["type"] == "tcp" and ok["db port"][0]["severity"] == "warning"
    assert {labels["name"] for labels, _value in metrics["smokegate_check_duration_seconds"]} == {
        "root",
        "db port",
    }
    assert [value for _labels, value in metrics["smokegate_up"]] == [1]
    assert [value for _labels, value in metrics["smokegate_ok"]] == [1]  # a warning does not fail
    (stamp,) = metrics["smokegate_last_run_timestamp_seconds"]
    assert abs(stamp[1] - time.time()) < 60


def test_concurrent_polls_on_a_cold_cache_share_one_run(tmp_path: Path, write_spec):
    runs = tmp_path / "runs.log"
    spec = write_spec(
        [
            {
                "name": "slow",
                "binary": {
                    "name": "/bin/sh",
                    "args": ["-c", "echo run >> %s; sleep 1; echo 1.0" % runs],
                    "version": ">=1",
                },
            }
        ]
    )
    with serving(tmp_path, spec, "--cache", "30") as server:
        statuses: list[int] = []

        def poll() -> None:
            statuses.append(server.get("/healthz")[0])

        threads = [threading.Thread(target=poll) for _poller in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 20
        assert runs.read_text().count("run") == 1

        slowest = 0.0
        for _request in range(50):
            started = time.monotonic()
            assert server.get("/healthz")[0] == 200
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5, slowest
        assert runs.read_text().count("run") == 1

    # With no cache, polls that arrive during a run still share it.
    runs.write_text("")
    with serving(tmp_path, spec, "--cache", "0") as server:
        threads = [threading.Thread(target=server.get, args=("/healthz",)) for _client in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 <= runs.read_text().count("run") <= 2


def test_token_is_required_when_configured_and_never_logged(tmp_path: Path, write_spec):
    token = "tok-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec, "--token-file", str(token_file)) as server:
        for path in ("/healthz", "/metrics"):
            assert server.get(path)[0] == 401
            assert server.get(path, Authorization="Bearer wrong")[0] == 401
            assert server.get(path, Authorization=token)[0] == 401
            assert server.get(path, Authorization="Bearer " + token)[0] == 200
        log = server.log.read_text()
    assert token not in log
    assert '"GET /healthz" 401' in log and '"GET /healthz" 200' in log


def test_binds_loopback_by_default_and_stops_cleanly_on_sigterm(tmp_path: Path, write_spec):
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec) as server:
        assert server.url.startswith("http://127.0.0.1:")
        listening = [
            connection.laddr
            for connection in psutil.Process(server.process.pid).net_connections()
            if connection.status == psutil.CONN_LISTEN
        ]
        assert [address.ip for address in listening] == ["127.0.0.1"]
        assert server.get("/healthz")[0] == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
        assert "stopped (SIGTERM)" in server.log.read_text()


def test_secrets_are_in_no_answer_and_no_log(tmp_path: Path, write_spec, http_server: str):
    env_file = tmp_path / "app.env"
    env_file.write_text("DATABASE_URL=%s\n" % ENV_SECRET)
    spec = write_spec(
        [
            {
                "name": "db url",
                "env": {"name": "DATABASE_URL", "file": str(env_file), "pattern": "^mysql://"},
            },
            {
                "name": "api",
                "http": {
                    "url": http_server + "/needs-token",
                    "headers": {"X-Token": SECRET_HEADER},
                    "status": 204,
                },
            },
        ]
    )
    with serving(tmp_path, spec) as server:
        answers = [
            server.get("/healthz"),
            server.get("/healthz", Accept="application/json"),
            server.get("/metrics"),
        ]
        log = server.log.read_text()
    assert answers[0][0] == 503
    for _status, _content_type, body in answers:
        assert ENV_SECRET not in body and SECRET_HEADER not in body
    assert ENV_SECRET not in log and SECRET_HEADER not in log


def test_refuses_to_start_on_a_bad_spec_or_a_taken_port(tmp_path: Path, write_spec):
    bad = write_spec([{"name": "x", "tcp": {"host": "db", "port": 0}}])
    completed = run_cli("serve", "-f", str(bad), "--port", "0")
    assert completed.returncode == 2
    assert "check 'x'" in completed.stderr
    good = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}], name="ok.json")
    with serving(tmp_path, good) as server:
        port = server.url.rsplit(":", 1)[1]
        taken = run_cli("serve", "-f", str(good), "--port", port)
        assert taken.returncode == 2
        assert "cannot listen on 127.0.0.1:%s" % port in taken.stderr
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    completed = run_cli("serve", "-f", str(good), "--port", "0", "--token-file", str(empty))
    assert completed.returncode == 2 and "must hold one token" in completed.stderr
