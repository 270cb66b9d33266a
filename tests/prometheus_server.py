"""A real Prometheus server scraping an exporter that the test controls.

The exporter is a loopback HTTP server whose ``/metrics`` shows the gauges set on it;
Prometheus (the Debian package's binary, on another loopback port, its storage in a temporary
directory) scrapes it every second. ``Prometheus.set`` changes a gauge and returns once a
query sees the new value, so a test, or the rounds of a bake, can change what a prometheus
check reads while it runs. tests/conftest.py's ``prometheus`` fixture starts one for the
session.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode
from urllib.request import urlopen

from quiet_http import QuietHandler

# Prometheus hands the first targets to its scrapers on a 5 s tick: the first samples take
# 5 to 10 s after the start.
READY_TIMEOUT = 30.0
POLL = 0.1

Labels = tuple[tuple[str, str], ...]


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def series(name: str, labels: dict[str, str]) -> str:
    """``name{label="value",...}``, as the exposition format and PromQL write a series."""
    inner = ",".join('%s="%s"' % (key, _label_text(value)) for key, value in sorted(labels.items()))
    return "%s{%s}" % (name, inner)


class Exporter:
    """Gauges on a loopback port, in the Prometheus text format at ``/metrics``."""

    def __init__(self) -> None:
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                status = 200 if self.path == "/metrics" else 404
                self.reply(status, body, "text/plain; version=0.0.4")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[name, tuple(sorted(labels.items()))] = value

    def remove(self, name: str, **labels: str) -> None:
        with self._lock:
            self._gauges.pop((name, tuple(sorted(labels.items()))), None)

    def exposition(self) -> str:
        with self._lock:
            gauges = sorted(self._gauges.items())
        lines = []
        for name in sorted({name for (name, _labels), _value in gauges}):
            lines.append("# TYPE %s gauge" % name)
            lines += [
                "%s %s" % (series(name, dict(labels)), _value_text(value))
                for (gauge, labels), value in gauges
                if gauge == name
            ]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    """A Prometheus server on a loopback port scraping ``exporter`` every second."""

    JOB = "exporter"

    def __init__(self, binary: str, directory: Path, exporter: Exporter) -> None:
        self.exporter = exporter
        self.directory = directory
        self.url = "http://127.0.0.1:%d" % free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {"job_name": self.JOB, "static_configs": [{"targets": [exporter.address]}]}
                    ],
                }
            )
        )
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--config.file=%s" % config,
                    "--storage.tsdb.path=%s" % (directory / "data"),
                    "--web.listen-address=%s" % self.url.split("//", 1)[1],
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, promql: str) -> dict[str, Any]:
        """The ``data`` of Prometheus's answer to an instant query."""
        url = "%s/api/v1/query?%s" % (self.url, urlencode({"query": promql}))
        with urlopen(url, timeout=5) as response:
            return json.load(response)["data"]

    def wait_until(self, promql: str, holds: Callable[[list[Any]], bool], what: str) -> None:
        """Return once the query's result holds; fail naming ``what`` after READY_TIMEOUT."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "prometheus exited %d: %s" % (self.process.returncode, self.log.read_text())
                )
            try:
                if holds(self.query(promql)["result"]):
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus: %s not within %g s" % (what, READY_TIMEOUT))
            time.sleep(POLL)

    def wait_ready(self) -> None:
        """Return once the exporter is up and its gauges are in the server."""
        self.wait_until(
            'up{job="%s"}' % self.JOB,
            lambda result: [sample["value"][1] for sample in result] == ["1"],
            "the exporter scraped",
        )

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge and return once Prometheus answers queries with the new value."""
        self.exporter.set(name, value, **labels)

        def arrived(result: list[Any]) -> bool:
            seen = [float(sample["value"][1]) for sample in result]
            both_nan = bool(seen) and math.isnan(seen[0]) and math.isnan(value)
            return len(seen) == 1 and (seen[0] == value or both_nan)

        self.wait_until(series(name, labels), arrived, "%s at %s" % (series(name, labels), value))

    def stop(self) -> None:
        self.process.terminate()  # its own pid only
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
