"""``smokegate serve``: the smoke spec as a health endpoint for monitors and load balancers.

- ``GET /healthz``: 200 when every critical check passes, 503 otherwise; the human report, or
  the JSON report with ``Accept: application/json``.
- ``GET /metrics``: the Prometheus text format (report.render_prometheus).

A run's results are reused for ``cache`` seconds, counted from when the run finished, and
requests that arrive while a run is under way wait for that run instead of starting their
own: a monitor polling hard, or twenty of them at once, costs one run per cache period.
Every answer is built from the report, which never holds a secret; the access log names
only the method, path, status and time, never a header.
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smokegate.engine import report, runner, spec

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeError(Exception):
    """The server cannot start (bad option, token file, port in use); nothing is served."""


class SharedRun:
    """The last run's report, reused for ``cache`` seconds; one run at a time, shared."""

    def __init__(self, checks: list[spec.Check], cache: float) -> None:
        self.checks = checks
        self.cache = cache
        self.runs = 0
        self._report: dict[str, Any] | None = None
        self._finished = 0.0  # time.time() of the report, for /metrics
        self._fresh_until = 0.0  # time.monotonic()
        self._running = False
        self._condition = threading.Condition()

    def get(self) -> tuple[dict[str, Any], float]:
        """The current report and when it finished, running the checks if it is stale.

        A request that waited for another's run takes that run's report, even with a cache
        of 0: the run started after the request arrived, so it is as fresh as it can ask.
        """
        waited_from = None  # the run count when this request began to wait
        with self._condition:
            while True:
                fresh = time.monotonic() < self._fresh_until
                shared = waited_from is not None and self.runs > waited_from
                if self._report is not None and (fresh or shared):
                    return self._report, self._finished
                if not self._running:
                    self._running = True
                    break
                if waited_from is None:
                    waited_from = self.runs
                self._condition.wait()
        try:
            result = runner.run_checks(self.checks)
        except BaseException:
            with self._condition:
                self._running = False
                self._condition.notify_all()  # a waiting request runs them instead
            raise
        with self._condition:
            self.runs += 1
            self._report, self._finished = result, time.time()
            self._fresh_until = time.monotonic() + self.cache
            self._running = False
            self._condition.notify_all()
            return result, self._finished


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


class HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer
    server_version = "smokegate"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/healthz", "/metrics"):
            self._send(404, "text/plain; charset=utf-8", "not found: try /healthz or /metrics\n")
            return
        if not self._authorized():
            self._send(
                401,
                "text/plain; charset=utf-8",
                "a bearer token is required\n",
                {"WWW-Authenticate": 'Bearer realm="smokegate"'},
            )
            return
        result, finished = self.server.shared.get()
        if path == "/metrics":
            body = report.render_prometheus([result], timestamp=finished) + "\n"
            self._send(200, PROMETHEUS_TYPE, body, with_body=with_body)
            return
        status = 200 if result["ok"] else 503
        if "application/json" in self.headers.get("Accept", ""):
            body = json.dumps(result, indent=2) + "\n"
            self._send(status, "application/json", body, with_body=with_body)
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
        print(
            '%s "%s %s" %s'
            % (self.address_string(), self.command, self.path.split("?", 1)[0], code),
            file=sys.stderr,
            flush=True,
        )

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own error lines would quote the raw request line; keep its gist.
        print("smokegate serve: %s" % (format % args).split('"', 1)[0], file=sys.stderr)


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], shared: SharedRun, token: str | None) -> None:
        self.shared = shared
        self.token = token
        super().__init__(address, HealthHandler)


def serve(
    checks: list[spec.Check], host: str, port: int, cache: float, token_file: str | None
) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code (0 after a clean shutdown)."""
    if cache < 0:
        raise ServeError("--cache must be 0 or more seconds")
    token = read_token(token_file) if token_file else None
    try:
        server = HealthServer((host, port), SharedRun(checks, cache), token)
    except OSError as exc:
        raise ServeError("cannot listen on %s:%d: %s" % (host, port, exc.strerror)) from None
    stopping: list[str] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return: it must run in another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

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
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print("smokegate serve: stopped (%s)" % ", ".join(stopping or ["done"]), file=sys.stderr)
    return 0
