"""``smokegate serve``: the smoke spec as a health endpoint for monitors and load balancers.

- ``GET /healthz``: 200 when every critical check passes, 503 otherwise; the human report, or
  the JSON report with ``Accept: application/json``.
- ``GET /metrics``: the Prometheus text format (report.render_prometheus), with each
  check's count of flaky runs since the server started (smokegate_check_flaky_total).
- ``GET /``, and ``/healthz`` asked for ``text/html``: the status page, one HTML document
  that loads nothing else: the checks of the last run, the last HISTORY runs, and with a
  deploy root the releases its ledger records. Its status is /healthz's.

A run's results are reused for ``cache`` seconds, counted from when the run finished, and
requests that arrive while a run is under way wait for that run instead of starting their
own: a monitor polling hard, or twenty of them at once, costs one run per cache period.
Every answer is built from the report, which never holds a secret; the access log names
only the method, path (without its query) and status, never a header, with every control or
non-ASCII character escaped.

Clients cannot hold the server up: one loop owns every connection and reads request heads
without blocking, each head bounded in size (MAX_HEAD) and in time (READ_TIMEOUT, counted
from the connection's arrival, so a client trickling bytes is closed as an idle one is), and
only complete requests reach the few threads that answer (WORKERS), each answer sent within
WRITE_TIMEOUT. At most MAX_CONNECTIONS are open, and no more than half the descriptor limit;
past that, the connection that has waited longest for its head is closed.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import os
import queue
import re
import resource
import selectors
import signal
import socket
import stat
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple

from smokegate.engine import protocol, releases, report, runner, spec

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
LEDGER_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # releases.utc_now()
# The page runs nothing and loads nothing: even markup that got past the escaping could not.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
PATHS = ("/", "/healthz", "/metrics")

READ_TIMEOUT = 10.0  # seconds for a whole request head, from the connection's arrival
WRITE_TIMEOUT = 10.0  # seconds for a whole answer
MAX_HEAD = 8192  # bytes of request line and headers
WORKERS = 4
MAX_CONNECTIONS = 512
BACKLOG = 128
LOGGED_FIELD = 200  # characters of a method or path written to the log
HISTORY = 20  # runs the status page shows
PAGE_REFRESH = 10  # seconds between the status page's reloads

# Visible ASCII only: a control byte, a space or a non-ASCII byte in a path is malformed.
REQUEST_LINE = re.compile(rb"[A-Z]{1,20} [\x21-\x7e]+ HTTP/1\.[01]\r?\n")
HEAD_END = re.compile(rb"\r?\n\r?\n")


class ServeError(Exception):
    """The server cannot start (bad option, token file, port in use); nothing is served."""


class Run(NamedTuple):
    """One finished run, as the status page's history shows it."""

    finished: float  # time.time()
    ok: bool
    passed: int
    total: int


class SharedRun:
    """The last run's report, reused for ``cache`` seconds; one run at a time, shared.

    The last HISTORY runs are kept, in order, for the status page.
    """

    def __init__(self, checks: list[spec.Check], cache: float) -> None:
        self.checks = checks
        self.cache = cache
        self._report: dict[str, Any] | None = None
        self._finished = 0.0  # time.time() of the report, for /metrics
        self._finished_at = 0.0  # time.monotonic() of the same moment
        self._running = False
        self._condition = threading.Condition()
        # Per check, the runs since the server started that passed only after a retry.
        self.flaky_totals = {check.name: 0 for check in checks}
        self._history: deque[Run] = deque(maxlen=HISTORY)

    def get(self, arrived: float) -> tuple[dict[str, Any], float]:
        """The current report and when it finished, running the checks if it is stale.

        ``arrived`` (a time.monotonic() value) is when the request came in. A request takes
        the report of any run that finished after that, even with a cache of 0: the run was
        under way or started since, so it is as fresh as the request can ask.
        """
        with self._condition:
            while True:
                fresh = time.monotonic() < self._finished_at + self.cache
                if self._report is not None and (fresh or self._finished_at >= arrived):
                    return self._report, self._finished
                if not self._running:
                    self._running = True
                    break
                self._condition.wait()
        try:
            result = runner.run_checks(self.checks)
        except BaseException:
            with self._condition:
                self._running = False
                self._condition.notify_all()  # a waiting request runs them instead
            raise
        with self._condition:
            for flaky in report.flaky_checks(result):
                self.flaky_totals[flaky["name"]] += 1
            self._report, self._finished = result, time.time()
            self._finished_at = time.monotonic()
            summary = result["summary"]
            run = Run(self._finished, protocol.host_ok(result), summary["passed"], summary["total"])
            self._history.append(run)
            self._running = False
            self._condition.notify_all()
            return result, self._finished

    def history(self) -> list[Run]:
        """The last runs, oldest first."""
        with self._condition:
            return list(self._history)


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(moment))


def history_html(history: list[Run]) -> str:
    """The last runs, newest first: when each finished (UTC), its verdict, its counts."""
    runs = "".join(
        '<li class="%s"><time datetime="%s">%s</time> %s %d/%d</li>'
        % (
            "pass" if run.ok else "fail",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.finished)),
            _clock(run.finished),
            "OK" if run.ok else "FAILED",
            run.passed,
            run.total,
        )
        for run in reversed(history)
    )
    return (
        '<section><h2>Last runs, newest first (UTC)</h2><ol class="strip">%s</ol></section>' % runs
    )


# A release's state as the page shows it, and its tone; "adopted" is a good release that was
# current before smokegate kept a ledger here.
RELEASE_TONES = {
    "good": "pass",
    "adopted": "pass",
    "failed": "fail",
    "staged": "skip",
    "deployed": "warn",
    "unrecorded": "skip",
}


def _ledger_time(value: Any) -> str:
    """A ledger's UTC timestamp as people read it; anything else as it is."""
    text = str(value)
    if LEDGER_TIME.fullmatch(text):
        return text.replace("T", " ")[:-1] + " UTC"
    return text


def _release_item(entry: dict[str, Any], rollback_target: str | None) -> str:
    state = "adopted" if entry.get("adopted_at") else entry["state"]
    when = next(
        (
            entry[key]
            for key in ("failed_at", "activated_at", "created_at", "adopted_at")
            if entry.get(key)
        ),
        "",
    )
    markers = [
        marker
        for marker, applies in (
            ("current", entry["current"]),
            ("rollback target", entry["id"] == rollback_target),
            ("directory gone", not entry["present"]),
        )
        if applies
    ]
    return report.html_item(
        "release",
        RELEASE_TONES.get(state, "skip"),
        state,
        entry["id"],
        markers,
        _ledger_time(when),
        str(entry.get("reason") or ""),
    )


def releases_html(root: str) -> str:
    """The deploy root's releases as its ledger records them, newest first; unrecorded last."""
    title = "<section><h2>Releases in %s</h2>" % report.html_text(root)
    try:
        info = releases.DeployRoot(root).info()
    except (releases.ReleaseError, OSError) as exc:
        return title + '<p class="note">cannot read the releases: %s</p></section>' % (
            report.html_text(exc)
        )
    recorded = [entry for entry in info["releases"] if entry["state"] != "unrecorded"]
    unrecorded = [entry for entry in info["releases"] if entry["state"] == "unrecorded"]
    items = "".join(
        _release_item(entry, info["rollback_target"]) for entry in [*recorded[::-1], *unrecorded]
    )
    return title + (
        '<p>current: <b>%s</b>; rollback target: <b>%s</b></p><ol class="releases">%s</ol>'
        "</section>"
        % (
            report.html_text(info["current"] or "none"),
            report.html_text(info["rollback_target"] or "none"),
            items,
        )
    )


def status_page(
    result: dict[str, Any], finished: float, history: list[Run], root: str | None
) -> str:
    """The whole status page: the last run, the runs before it, the releases under ``root``."""
    verdict = "OK" if protocol.host_ok(result) else "FAILED"
    sections = [
        report.html_report(result),
        '<p class="note">last run finished at %s UTC; this page reloads every %d s</p>'
        % (_clock(finished), PAGE_REFRESH),
        history_html(history),
    ]
    if root is not None:
        sections.append(releases_html(root))
    return report.html_page(
        "%s %s - smokegate" % (result["host"], verdict), sections, refresh=PAGE_REFRESH
    )


def read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ServeError("cannot read the token file %s: %s" % (path, exc.strerror)) from None
    if not token or any(char.isspace() for char in token):
        raise ServeError("the token file %s must hold one token and nothing else" % path)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            "smokegate serve: warning: %s is readable by others; chmod 600 it" % path,
            file=sys.stderr,
        )
    return token


def printable(text: str) -> str:
    """``text`` for the log: control, non-ASCII, backslash and quote characters escaped.

    >>> print(printable('/\\x1b[31mred\\r\\nGET /forged "é"'))
    /\\x1b[31mred\\r\\nGET /forged \\"\\xe9\\"
    """
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Request(NamedTuple):
    """A connection whose request head the server's loop has read: all of it, or MAX_HEAD."""

    sock: socket.socket
    address: tuple[str, int]
    head: bytes
    complete: bool
    arrived: float  # time.monotonic() when the head was read


class HealthHandler(BaseHTTPRequestHandler):
    """Answers one request read in full beforehand; the answer is sent in one bounded write."""

    request: Request
    server: HealthServer
    server_version = "smokegate"
    sys_version = ""

    def setup(self) -> None:
        self.rfile = io.BytesIO(self.request.head)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        self.request.sock.sendall(self.wfile.getvalue())

    def parse_request(self) -> bool:
        # http.server answers a line without a version as HTTP/0.9 (no status line, no
        # headers) and may log before it knows the path: refuse such lines itself.
        self.request_version = "HTTP/1.0"
        words = self.raw_requestline.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
        self.command, self.path = words[0], words[1] if len(words) > 1 else ""
        if not REQUEST_LINE.fullmatch(self.raw_requestline):
            self.send_error(400, "malformed request line")
            return False
        if not self.request.complete:
            self.send_error(431, "request head over %d bytes" % MAX_HEAD)
            return False
        return super().parse_request()

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path not in PATHS:
            self._send(404, "text/plain; charset=utf-8", "not found: try %s\n" % ", ".join(PATHS))
            return
        if not self._authorized():
            self._send(
                401,
                "text/plain; charset=utf-8",
                "a bearer token is required\n",
                {"WWW-Authenticate": 'Bearer realm="smokegate"'},
            )
            return
        result, finished = self.server.shared.get(self.request.arrived)
        if path == "/metrics":
            totals = dict(self.server.shared.flaky_totals)
            body = report.render_prometheus([result], timestamp=finished, flaky_totals=totals)
            body += "\n"
            self._send(200, PROMETHEUS_TYPE, body, with_body=with_body)
            return
        status = 200 if protocol.host_ok(result) else 503
        accept = self.headers.get("Accept", "")
        if path == "/healthz" and "application/json" in accept:
            body = json.dumps(result, indent=2) + "\n"
            self._send(status, "application/json", body, with_body=with_body)
        elif path == "/" or "text/html" in accept:
            # Not a run newer than the one shown: the strip starts with the page's own run.
            history = [run for run in self.server.shared.history() if run.finished <= finished]
            body = status_page(result, finished, history, self.server.root)
            self._send(status, HTML_TYPE, body, HTML_HEADERS, with_body=with_body)
        else:
            body = report.render_human([result]) + "\n"
            self._send(status, "text/plain; charset=utf-8", body, with_body=with_body)

    def _authorized(self) -> bool:
        if self.server.token is None:
            return True
        given = self.headers.get("Authorization", "")
        expected = "Bearer " + self.server.token
        return hmac.compare_digest(given.encode(), expected.encode())

    def _send(
        self,
        status: int,
        content_type: str,
        body: str,
        headers: dict[str, str] | None = None,
        with_body: bool = True,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Method and path only: the query string and the headers (the token) stay out.
        method = printable(self.command[:LOGGED_FIELD])
        path = printable(self.path.split("?", 1)[0][:LOGGED_FIELD])
        status = code.value if isinstance(code, HTTPStatus) else code  # "431", not its name
        log('%s "%s %s" %s' % (self.client_address[0], method, path, status))

    def log_message(self, format: str, *args: Any) -> None:
        log("smokegate serve: %s" % printable(format % args))


class Reading:
    """A connection whose request head is still arriving."""

    __slots__ = ("address", "deadline", "head", "sock")

    def __init__(self, sock: socket.socket, address: tuple[str, int], deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.head = bytearray()


def connection_limit() -> int:
    """MAX_CONNECTIONS, or half the descriptor limit if less: the checks need some too."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft // 2))


def close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may be gone already
        sock.shutdown(socket.SHUT_WR)  # what is queued is sent before the close
    sock.close()


class HealthServer:
    """The listening socket, the loop that reads request heads, and the answering workers."""

    def __init__(
        self,
        address: tuple[str, int],
        shared: SharedRun,
        token: str | None,
        root: str | None = None,
    ) -> None:
        self.shared = shared
        self.token = token
        self.root = root  # the deploy root whose releases the status page shows
        self.limit = connection_limit()
        self.listener = socket.create_server(address, backlog=BACKLOG)
        self.listener.setblocking(False)
        self.server_address = self.listener.getsockname()
        self._reading: dict[socket.socket, Reading] = {}  # in order of arrival
        self._answering = 0  # handed to the workers, not closed yet
        self._answering_lock = threading.Lock()
        self._requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self._waker.setblocking(False)
        self._stopping = False

    def serve_forever(self) -> None:
        """Accept, read and hand requests to the workers until stop() is called."""
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(self._wake, selectors.EVENT_READ)
        for number in range(WORKERS):
            threading.Thread(
                target=self._work, name="smokegate-serve-%d" % number, daemon=True
            ).start()
        while not self._stopping:
            for key, _events in self._selector.select(self._until_next_deadline()):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is not self._wake:
                    self._read(key.data)
            self._close_expired()

    def stop(self) -> None:
        """Make serve_forever() return; safe in a signal handler."""
        self._stopping = True
        with contextlib.suppress(OSError):  # woken already
            self._waker.send(b"x")

    def server_close(self) -> None:
        for reading in list(self._reading.values()):
            self._drop(reading)
        self._selector.close()
        self.listener.close()
        self._wake.close()
        self._waker.close()

    def _until_next_deadline(self) -> float | None:
        if not self._reading:
            return None
        oldest = next(iter(self._reading.values()))
        return max(0.0, oldest.deadline - time.monotonic())

    def _accept(self) -> None:
        for _attempt in range(BACKLOG):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionError:
                continue  # reset before it was accepted
            except OSError:
                # Out of descriptors despite the limit (the checks hold some): make room.
                if not self._drop_oldest():
                    time.sleep(0.05)
                return
            sock.setblocking(False)
            with self._answering_lock:
                full = len(self._reading) + self._answering >= self.limit
            if full and not self._drop_oldest():
                sock.close()
                continue
            reading = Reading(sock, address, time.monotonic() + READ_TIMEOUT)
            self._reading[sock] = reading
            self._selector.register(sock, selectors.EVENT_READ, reading)

    def _drop_oldest(self) -> bool:
        """Close the connection that has waited longest for its head; False if there is none."""
        if not self._reading:
            return False
        self._drop(next(iter(self._reading.values())))
        return True

    def _drop(self, reading: Reading) -> None:
        self._selector.unregister(reading.sock)
        del self._reading[reading.sock]
        reading.sock.close()

    def _close_expired(self) -> None:
        now = time.monotonic()
        while self._reading:
            oldest = next(iter(self._reading.values()))
            if oldest.deadline > now:
                return
            self._drop(oldest)

    def _read(self, reading: Reading) -> None:
        try:
            data = reading.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(reading)
            return
        searched_to = max(0, len(reading.head) - 3)  # a blank line may straddle two reads
        reading.head += data
        end = HEAD_END.search(reading.head, searched_to, MAX_HEAD)
        if end is not None:
            self._hand_over(reading, bytes(reading.head[: end.end()]), complete=True)
        elif len(reading.head) >= MAX_HEAD:
            self._hand_over(reading, bytes(reading.head[:MAX_HEAD]), complete=False)

    def _hand_over(self, reading: Reading, head: bytes, complete: bool) -> None:
        self._selector.unregister(reading.sock)
        del self._reading[reading.sock]
        with self._answering_lock:
            self._answering += 1
        request = Request(reading.sock, reading.address, head, complete, time.monotonic())
        self._requests.put(request)

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            try:
                request.sock.settimeout(WRITE_TIMEOUT)
                HealthHandler(request, request.address, self)
            except OSError:
                pass  # the client went away, or did not read the answer in time
            except Exception as exc:
                log(
                    "smokegate serve: cannot answer: %s"
                    % printable("%s: %s" % (type(exc).__name__, exc))
                )
            finally:
                close(request.sock)
                with self._answering_lock:
                    self._answering -= 1


def serve(
    checks: list[spec.Check],
    host: str,
    port: int,
    cache: float,
    token_file: str | None,
    root: str | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code (0 after a clean shutdown)."""
    if cache < 0:
        raise ServeError("--cache must be 0 or more seconds")
    if root is not None and not os.path.isdir(root):
        raise ServeError("--root %s is not a directory" % root)
    token = read_token(token_file) if token_file else None
    try:
        server = HealthServer((host, port), SharedRun(checks, cache), token, root)
    except OSError as exc:
        raise ServeError("cannot listen on %s:%d: %s" % (host, port, exc.strerror)) from None
    stopping: list[str] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    print(
        "smokegate serve: %d checks, cache %g s%s, listening on http://%s:%d/healthz"
        % (len(checks), cache, ", token required" if token else "", bound_host, bound_port),
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("smokegate serve: stopped (%s)" % ", ".join(stopping or ["done"]), file=sys.stderr)
    return 0
