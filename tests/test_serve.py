"""`smokegate serve` as a monitor sees it: a real server process polled over loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from conftest import (
    ENV_SECRET,
    SECRET_ENV_NAME,
    SECRET_STATUSES,
    leaked_secrets,
    run_cli,
    secret_checks,
    smokegate_executable,
    trickling_upstream,
)
from formats import parse_prometheus


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log
        self.address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))

    def threads(self) -> int:
        return len(os.listdir("/proc/%d/task" % self.process.pid))

    def descriptors(self) -> int:
        return len(os.listdir("/proc/%d/fd" % self.process.pid))

    def exchange(self, data: bytes) -> bytes:
        """Send raw bytes and read the answer until the server closes the connection."""
        with socket.create_connection(self.address, timeout=10) as sock:
            sock.sendall(data)
            answer = b""
            while True:
                chunk = sock.recv(65536)  # a timeout here: the server left it open
                if not chunk:
                    return answer
                answer += chunk

    def get(self, path: str, **headers: str) -> tuple[int, str, str]:
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers["Content-Type"], answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()


# The command with serve.READ_TIMEOUT set first (its first argument), so that a test need
# not wait the default ten seconds for the server to give up on a request head.
WITH_READ_TIMEOUT = (
    "import sys, smokegate.serve, smokegate.cli; "
    "smokegate.serve.READ_TIMEOUT = float(sys.argv.pop(1)); "
    "sys.exit(smokegate.cli.main())"
)


@contextmanager
def serving(
    tmp_path: Path,
    spec: Path,
    *options: str,
    read_timeout: float | None = None,
    descriptor_limit: int | None = None,
) -> Iterator[Server]:
    log = tmp_path / "serve.log"
    command = [smokegate_executable()]
    if read_timeout is not None:
        command = [sys.executable, "-c", WITH_READ_TIMEOUT, str(read_timeout)]
    if descriptor_limit is not None:
        command = ["sh", "-c", 'ulimit -Sn %d && exec "$@"' % descriptor_limit, "sh", *command]
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [*command, "serve", "-f", str(spec), "--port", "0", *options],
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


def test_secrets_are_in_no_answer_and_no_log(
    tmp_path: Path, write_spec, http_server: str, closed_port: int, monkeypatch
):
    spec = write_spec(secret_checks(tmp_path, http_server, closed_port))
    monkeypatch.setenv(SECRET_ENV_NAME, ENV_SECRET)  # the server's environment
    with serving(tmp_path, spec) as server:
        answers = [
            server.get("/healthz"),
            server.get("/healthz", Accept="application/json"),
            server.get("/metrics"),
        ]
        log = server.log.read_text()
    assert answers[0][0] == 503
    report = json.loads(answers[1][2])
    assert {result["name"]: result["status"] for result in report["results"]} == SECRET_STATUSES
    for _status, _content_type, body in answers:
        assert leaked_secrets(body) == []
    assert leaked_secrets(log) == []


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


@contextmanager
def trickling(sockets: list[socket.socket]) -> Iterator[None]:
    """Slowloris: send each socket a request head one byte every half second, never ending it."""
    stop = threading.Event()

    def trickle() -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
        for byte in head:
            for sock in sockets:
                with contextlib.suppress(OSError):  # the server closed it
                    sock.send(bytes([byte]))
            if stop.wait(0.5):
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(max(0.01, within))
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_a_poll_answers_promptly_while_300_idle_and_5_slowloris_connections_are_open(
    tmp_path: Path, write_spec
):
    env_file = tmp_path / "app.env"
    env_file.write_text("MODE=live\n")
    # The env file is read on every run (--cache 0): the checks still get descriptors.
    spec = write_spec([{"name": "mode", "env": {"name": "MODE", "file": str(env_file)}}])
    with serving(tmp_path, spec, "--cache", "0", descriptor_limit=256) as server:
        assert server.get("/healthz")[0] == 200
        idle = [socket.create_connection(server.address, timeout=5) for _index in range(300)]
        slow = [socket.create_connection(server.address, timeout=5) for _index in range(5)]
        try:
            with trickling(slow):
                slowest = 0.0
                for _index in range(20):
                    started = time.monotonic()
                    assert server.get("/healthz")[0] == 200
                    slowest = max(slowest, time.monotonic() - started)
                threads, descriptors = server.threads(), server.descriptors()
        finally:
            for sock in idle + slow:
                sock.close()
    assert slowest < 2.0, slowest
    assert threads <= 12, threads
    # Connections may take half the descriptor limit; the rest stay for the checks.
    assert descriptors <= 256 // 2 + 16, descriptors


def test_idle_and_slowloris_connections_are_closed_after_the_read_timeout(
    tmp_path: Path, write_spec
):
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec, read_timeout=1.0) as server:
        idle = [socket.create_connection(server.address, timeout=5) for _index in range(20)]
        slow = [socket.create_connection(server.address, timeout=5) for _index in range(3)]
        opened = time.monotonic()
        try:
            with trickling(slow):
                # A head sent in two halves within the timeout is answered.
                with socket.create_connection(server.address, timeout=5) as late:
                    late.sendall(b"GET /healthz HTTP/1.0\r\n")
                    time.sleep(0.5)
                    late.sendall(b"\r\n")
                    assert late.recv(12) == b"HTTP/1.0 200"
                assert not closed_by_server(idle[0], within=0.01)
                assert not closed_by_server(slow[0], within=0.01)
                still_open = [
                    sock
                    for sock in idle + slow
                    if not closed_by_server(sock, within=opened + 3.0 - time.monotonic())
                ]
                waited = time.monotonic() - opened
        finally:
            for sock in idle + slow:
                sock.close()
        assert still_open == [] and waited >= 0.9, (len(still_open), waited)
        assert server.get("/healthz")[0] == 200


MALFORMED = [
    b"garbage\r\n\r\n",
    b"\xff\xfeGET /healthz HTTP/1.0\r\n\r\n",  # not ASCII
    b"GET /h\xc3\xa9althz HTTP/1.0\r\n\r\n",
    b"GET /healthz\r\n\r\n",  # no version: not HTTP/0.9 either
    b"GET /healthz HTTP/1.0 extra\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"get /healthz HTTP/1.0\r\n\r\n",
    b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",  # TLS spoken to plain HTTP
    b"GET /" + b"a" * 20000,  # a request line longer than any head may be
]


def test_malformed_request_lines_get_400_and_the_server_keeps_serving(tmp_path: Path, write_spec):
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec) as server:
        for line in MALFORMED:
            answer = server.exchange(line)
            assert answer.startswith(b"HTTP/1.0 400 "), (line[:40], answer[:80])
        too_big = b"GET /healthz HTTP/1.0\r\n" + b"X-Filler: %s\r\n" % (b"f" * 100) * 100
        assert server.exchange(too_big + b"\r\n").startswith(b"HTTP/1.0 431 ")
        assert server.get("/healthz")[0] == 200
        log = server.log.read_text()
    assert "Traceback" not in log and "Error" not in log, log
    assert log.count('" 400') == len(MALFORMED), log
    assert '127.0.0.1 "GET /healthz" 431' in log


def test_control_bytes_are_escaped_in_the_log_and_headers_and_query_never_logged(
    tmp_path: Path, write_spec
):
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec) as server:
        red = server.exchange(b"GET /\x1b[31mred\x1b[0m\x07 HTTP/1.0\r\n\r\n")
        forged = server.exchange(b"GET /a\rforged\x00 HTTP/1.0\r\n\r\n")
        cut = server.exchange(b'GET /b"\\ HTTP/1.0\r\n\r\n')
        secret = server.exchange(
            b"GET /healthz?token=q-s3cret HTTP/1.0\r\nX-Evil: \x1b[2Jh-s3cret\r\n\r\n"
        )
        log = server.log.read_bytes()
    assert red.startswith(b"HTTP/1.0 400 ") and forged.startswith(b"HTTP/1.0 400 ")
    assert cut.startswith(b"HTTP/1.0 404 ") and secret.startswith(b"HTTP/1.0 200 ")
    assert b'127.0.0.1 "GET /\\x1b[31mred\\x1b[0m\\x07" 400\n' in log, log
    assert b'127.0.0.1 "GET /a\\rforged\\x00" 400\n' in log, log
    assert b'127.0.0.1 "GET /b\\"\\\\" 404\n' in log, log
    assert b'127.0.0.1 "GET /healthz" 200\n' in log, log
    assert b"s3cret" not in log
    assert not any((byte < 0x20 and byte != 0x0A) or byte >= 0x7F for byte in log), log


def test_a_check_on_a_trickling_upstream_ends_at_its_deadline_and_piles_up_nothing(
    tmp_path: Path, write_spec
):
    with trickling_upstream() as port:
        spec = write_spec(
            [{"name": "api", "http": {"url": "http://127.0.0.1:%d/" % port}, "timeout": 0.3}]
        )
        with serving(tmp_path, spec, "--cache", "0") as server:
            reports = []
            for _index in range(12):
                status, _content_type, body = server.get("/healthz", Accept="application/json")
                assert status == 503
                reports.append(json.loads(body)["results"][0])
            threads = server.threads()
    # Each attempt's connection is cut at its deadline: none is left waiting for the next.
    assert {report["message"] for report in reports} == {"no result within 0.3 s"}
    assert all(report["duration_ms"] < 1000 for report in reports), reports
    assert threads <= 8, threads
