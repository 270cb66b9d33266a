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
from typing import Any

import psutil
from conftest import (
    ENV_SECRET,
    SECRET_ENV_NAME,
    SECRET_STATUSES,
    leaked_secrets,
    run_cli,
    secret_checks,
    smokegate_executable,
    system_binary,
    trickling_upstream,
)
from formats import parse_html, parse_prometheus, read_png

from ansible_collections.smokegate.core.plugins.module_utils.protocol import DEPLOY_FAILED
from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot


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
        for path in ("/", "/healthz", "/metrics"):
            assert server.get(path)[0] == 401
            assert server.get(path, Authorization="Bearer wrong")[0] == 401
            assert server.get(path, Authorization=token)[0] == 401
            assert server.get(path, Authorization="Bearer " + token)[0] == 200
        head = b"HEAD / HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n" % token.encode()
        assert server.exchange(b"HEAD / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 401 ")
        assert server.exchange(head).startswith(b"HTTP/1.0 200 ")
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
            server.get("/"),
        ]
        log = server.log.read_text()
    assert answers[0][0] == 503 and answers[3][:2] == (503, "text/html; charset=utf-8")
    answers.append(
        (200, "", "".join(element.text for element in parse_html(answers[3][2]).elements))
    )
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
    completed = run_cli("serve", "-f", str(good), "--port", "0", "--root", str(tmp_path / "no"))
    assert completed.returncode == 2
    assert "--root %s is not a directory" % (tmp_path / "no") in completed.stderr
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


HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_REASON = "<img src=x onerror=alert(2)>"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Elements and attributes through which a page would load or run something.
LOADING_TAGS = {"script", "img", "link", "iframe", "object", "embed", "base", "form", "svg"}
LOADING_ATTRIBUTES = {"src", "href", "srcset", "style", "action", "formaction", "background"}


def page_spec(write_spec, closed_port: int) -> Path:
    """A passing check, a failing one named like markup, a failing warning."""
    closed = {"host": "127.0.0.1", "port": closed_port}
    return write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": HOSTILE_NAME, "tcp": closed},
            {"name": "db \"port\" & 'replica'", "tcp": closed, "severity": "warning"},
        ]
    )


PAGE_NAMES = ["root", HOSTILE_NAME, "db \"port\" & 'replica'"]


def deploy_root(tmp_path: Path) -> Path:
    """A tree taken over from Capistrano (two releases, an absolute current link), then two
    deploys by smokegate: v1 passed, v2 failed and was rolled back to v1."""
    root = tmp_path / "app"
    for name in ("cap-1", "cap-2"):
        (root / "releases" / name).mkdir(parents=True)
    (root / "current").symlink_to(root / "releases" / "cap-2")
    build = tmp_path / "build"
    build.mkdir()
    (build / "app.txt").write_text("app\n")
    releases = DeployRoot(str(root))
    releases.create("v1", src=str(build))
    releases.activate("v1")
    releases.mark_good("v1")
    releases.create("v2", src=str(build))
    releases.activate("v2")
    releases.rollback(release="v2", reason=DEPLOY_FAILED)
    return root


def listed(document: Any, kind: str) -> list[tuple[str, str, str, list[str], str, str]]:
    """(tone, badge, name, markers, aside, message) of every check or release on the page."""
    return [
        (
            item.classes[2],
            item.find("span", "badge")[0].text,
            item.find("span", "name")[0].text,
            [marker.text for marker in item.find("span", "marker")],
            item.find("span", "aside")[0].text,
            "".join(message.text for message in item.find("p", "message")),
        )
        for item in document.find("li", kind)
    ]


def shown_checks(document: Any) -> list[tuple[str, str, str]]:
    """(tone, label, name) of every check on the page, in order."""
    return [entry[:3] for entry in listed(document, "check")]


def shown_releases(document: Any) -> list[tuple[str, str, str, list[str], str]]:
    """(tone, state, id, markers, reason) of every release on the page, in order; the time
    must be one."""
    for entry in listed(document, "release"):
        if entry[1] != "unrecorded":
            assert time.strptime(entry[4], "%Y-%m-%d %H:%M:%S UTC"), entry
    return [(*entry[:4], entry[5]) for entry in listed(document, "release")]


RELEASES = [
    ("fail", "failed", "v2", [], DEPLOY_FAILED),
    ("pass", "good", "v1", ["current"], ""),
    ("pass", "adopted", "cap-2", ["rollback target"], ""),
    ("skip", "unrecorded", "cap-1", [], ""),
]


def test_the_status_page_is_one_escaped_document_that_loads_nothing(
    tmp_path: Path, write_spec, closed_port: int
):
    spec = page_spec(write_spec, closed_port)
    with serving(tmp_path, spec) as server:
        status, content_type, body = server.get("/")
        for_browser = server.get("/healthz", Accept=BROWSER_ACCEPT)
        for_program = server.get("/healthz", Accept="application/json")
        head = server.exchange(b"HEAD / HTTP/1.0\r\n\r\n")
        get = server.exchange(b"GET / HTTP/1.0\r\n\r\n")
        missing = server.get("/status")
    assert (status, content_type) == (503, "text/html; charset=utf-8")
    assert for_browser[:2] == (503, "text/html; charset=utf-8")
    assert for_program[:2] == (503, "application/json")
    assert missing[0] == 404 and "try /, /healthz, /metrics" in missing[2]

    document = parse_html(body)
    assert document.doctype.lower() == "doctype html"
    assert not {element.tag for element in document.elements} & LOADING_TAGS
    for element in document.elements:
        assert not set(element.attrs) & LOADING_ATTRIBUTES, element
        assert not any(name.startswith("on") for name in element.attrs), element
    assert "url(" not in body and "@import" not in body and "@font-face" not in body
    (viewport,) = [meta for meta in document.find("meta") if meta.attrs.get("name") == "viewport"]
    assert viewport.attrs["content"] == "width=device-width, initial-scale=1"

    assert [heading.text for heading in document.find("h1")] == [socket.gethostname()]
    (verdict,) = document.find("p", "verdict")
    assert verdict.text.startswith("FAILED, 1 of 3 checks passed in ")
    assert shown_checks(document) == [
        ("pass", "PASS", "root"),
        ("fail", "FAIL", HOSTILE_NAME),
        ("warn", "WARN", PAGE_NAMES[2]),
    ]
    assert "gate stopped by: " + HOSTILE_NAME in [note.text for note in document.find("p", "note")]
    assert HOSTILE_NAME not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert (
        "connection to 127.0.0.1:%d refused" % closed_port in document.find("p", "message")[1].text
    )
    assert [name.text for name in parse_html(for_browser[2]).find("span", "name")] == PAGE_NAMES

    headers, _blank, rest = head.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.0 503 ") and rest == b""
    assert b"\r\nContent-Type: text/html; charset=utf-8\r\n" in headers
    assert b"\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'" in headers
    # Within the cache, HEAD and GET describe the same page.
    length = int(headers.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(get.partition(b"\r\n\r\n")[2]) > 0


def test_the_status_page_shows_the_last_20_runs_newest_first(tmp_path: Path, write_spec):
    env_file = tmp_path / "app.env"
    env_file.write_text("MODE=live\n")
    spec = write_spec(
        [
            {"name": "root", "disk": {"path": "/", "min_free": 1}},
            {"name": "mode", "env": {"name": "MODE", "file": str(env_file), "pattern": "^live$"}},
        ]
    )
    with serving(tmp_path, spec, "--cache", "0") as server:
        for _run in range(22):
            assert server.get("/healthz")[0] == 200
        env_file.write_text("MODE=maintenance\n")
        assert server.get("/healthz")[0] == 503
        assert server.get("/healthz")[0] == 503
        status, _content_type, body = server.get("/")  # the 25th run
    assert status == 503
    document = parse_html(body)
    runs = document.find("ol", "strip")[0].find("li")
    assert len(runs) == 20
    assert [item.classes for item in runs] == [["fail"]] * 3 + [["pass"]] * 17
    assert [item.text.split(" ", 1)[1] for item in runs] == ["FAILED 1/2"] * 3 + ["OK 2/2"] * 17
    moments = [moment.attrs["datetime"] for moment in document.find("time")]
    assert len(moments) == 20 and moments == sorted(moments, reverse=True)
    assert (
        abs(
            time.mktime(time.strptime(moments[0], "%Y-%m-%dT%H:%M:%SZ"))
            - time.mktime(time.gmtime())
        )
        < 60
    )


def test_the_status_page_shows_the_release_history_from_the_ledger(tmp_path: Path, write_spec):
    root = deploy_root(tmp_path)
    ledger_path = root / ".smokegate" / "ledger.json"
    ledger = json.loads(ledger_path.read_text())
    ledger["releases"]["v2"]["reason"] += " " + HOSTILE_REASON  # the ledger is input too
    ledger_path.write_text(json.dumps(ledger))
    spec = write_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}])
    with serving(tmp_path, spec, "--root", str(root)) as server:
        status, _content_type, body = server.get("/")
        ledger_path.write_text("{")
        broken = server.get("/")
    assert status == 200
    document = parse_html(body)
    shown = shown_releases(document)
    assert shown[1:] == RELEASES[1:]
    assert shown[0] == (*RELEASES[0][:4], DEPLOY_FAILED + " " + HOSTILE_REASON)
    assert HOSTILE_REASON not in body
    assert "current: v1; rollback target: cap-2" in [line.text for line in document.find("p")]
    assert "Releases in %s" % root in [heading.text for heading in document.find("h2")]

    assert broken[0] == 200  # the gate is the checks' business, not the ledger's
    notes = [note.text for note in parse_html(broken[2]).find("p", "note")]
    assert "cannot read the releases: ledger %s is not valid JSON" % ledger_path in " ".join(notes)


def test_the_status_page_marks_flaky_and_preexisting_checks():
    from smokegate.engine import report

    def result(name: str, status: str, **marks: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": "tcp",
            "severity": "critical",
            "status": status,
            "message": "observed",
            "duration_ms": 1.0,
            "attempts": 1,
            **marks,
        }

    host = {
        "host": "web1",
        "ok": True,
        "duration_ms": 3.0,
        "summary": {"total": 3, "passed": 2, "failed": 1, "errors": 0, "timeouts": 0, "skipped": 0},
        "results": [
            result("api", "pass", flaky=True, attempts=2),
            result("payments", "fail", preexisting=True),
            result("disk", "pass"),
        ],
    }
    document = parse_html(report.html_page("web1", [report.html_report(host)]))
    assert shown_checks(document) == [
        ("pass", "PASS", "api"),
        ("warn", "PREEXISTING", "payments"),
        ("pass", "PASS", "disk"),
    ]
    assert [entry[3] for entry in listed(document, "check")] == [["flaky"], ["preexisting"], []]
    assert document.find("p", "verdict")[0].classes == ["verdict", "pass"]  # one pass rule


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these it keeps trying to reach the vendor's services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PASS_GREEN, FAIL_RED = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)  # the page's pass and fail tones


def chromium(binary: str, tmp_path: Path, url: str, *options: str) -> str:
    profile = tmp_path / ("chromium-%d" % len(list(tmp_path.glob("chromium-*"))))
    completed = subprocess.run(
        [binary, *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile, *options, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_chromium_renders_the_status_page_on_a_phone(tmp_path: Path, write_spec, closed_port: int):
    binary = system_binary("chromium")
    root = deploy_root(tmp_path)
    spec = page_spec(write_spec, closed_port)
    screenshot = tmp_path / "status-page.png"
    with serving(tmp_path, spec, "--cache", "0", "--root", str(root)) as server:
        for _run in range(2):
            server.get("/healthz")
        dom = chromium(binary, tmp_path, server.url + "/", "--dump-dom")
        chromium(
            binary,
            tmp_path,
            server.url + "/",
            "--screenshot=%s" % screenshot,
            "--window-size=412,915",
        )
        log = server.log.read_text()
    assert log.count('"GET /" 503') == 2, log

    document = parse_html(dom)
    assert [heading.text for heading in document.find("h1")] == [socket.gethostname()]
    assert shown_checks(document) == [
        ("pass", "PASS", "root"),
        ("fail", "FAIL", HOSTILE_NAME),
        ("warn", "WARN", PAGE_NAMES[2]),
    ]
    assert "script" not in {element.tag for element in document.elements}
    runs = [item.text.split(" ", 1)[1] for item in document.find("ol", "strip")[0].find("li")]
    assert runs == ["FAILED 1/3"] * 3
    assert shown_releases(document) == RELEASES

    image = read_png(screenshot.read_bytes())
    assert (image.width, image.height) == (412, 915)
    # The failed verdict and the failing check in red, the passing check in green.
    assert image.colours[FAIL_RED] > 5000, image.colours.most_common(10)
    assert image.colours[PASS_GREEN] > 500, image.colours.most_common(10)
    assert len(image.colours) > 50  # text, not flat boxes
