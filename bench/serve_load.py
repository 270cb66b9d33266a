"""Poll `smokegate serve` while idle and slowloris connections hold it open.

Usage: .venv/bin/python bench/serve_load.py [--idle 300] [--slowloris 5] [--polls 50]
       [--write bench/RESULTS.md]

Starts the installed `smokegate serve` on a loopback port, opens the idle connections
(connected, nothing sent) and the slowloris ones (a request head trickled one byte every
half second), then times real polls (`GET /healthz`, a new connection each). Reports the
poll latency and the server's threads (/proc/PID/task) and descriptors (/proc/PID/fd)
before and under that load, and how many of the idle connections the server has closed
once its read timeout has passed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from results import machine, write_section

# The server's read timeout for a whole request head is 10 s: wait a little longer.
AFTER_TIMEOUT = 12.0


def start(smokegate: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    spec = workdir / "smoke.json"
    spec.write_text(
        json.dumps({"checks": [{"name": "root", "disk": {"path": "/", "min_free": 1}}]})
    )
    log = workdir / "serve.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [smokegate, "serve", "-f", str(spec), "--port", "0"], stderr=stderr
        )
    deadline = time.monotonic() + 30
    while "listening on " not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("smokegate serve did not start: %s" % log.read_text())
        time.sleep(0.05)
    port = int(log.read_text().split("listening on ")[1].split()[0].split(":")[2].split("/")[0])
    return process, port


def counts(pid: int) -> tuple[int, int]:
    return len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid))


def poll(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    connection.close()
    if answer.status != 200:
        raise SystemExit("GET /healthz answered %d" % answer.status)
    return 1000 * (time.perf_counter() - started)


def trickle(port: int, clients: int, stop: threading.Event) -> None:
    sockets = [
        socket.create_connection(("127.0.0.1", port), timeout=5) for _index in range(clients)
    ]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
    for byte in head:
        if stop.wait(0.5):
            break
        for sock in sockets:
            with contextlib.suppress(OSError):  # closed by the server, as it should be
                sock.send(bytes([byte]))
    for sock in sockets:
        sock.close()


def closed_by_server(sockets: list[socket.socket]) -> int:
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def measure(smokegate: str, idle: int, slowloris: int, polls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as workdir:
        return measure_in(Path(workdir), smokegate, idle, slowloris, polls)


def measure_in(
    workdir: Path, smokegate: str, idle: int, slowloris: int, polls: int
) -> dict[str, float]:
    process, port = start(smokegate, workdir)
    try:
        poll(port)  # the first run fills the cache
        figures: dict[str, float] = {}
        figures["threads before"], figures["fds before"] = counts(process.pid)
        quiet = [poll(port) for _index in range(polls)]
        started = time.perf_counter()
        opened = [
            socket.create_connection(("127.0.0.1", port), timeout=60) for _index in range(idle)
        ]
        figures["open ms"] = 1000 * (time.perf_counter() - started)
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(port, slowloris, stop))
        trickler.start()
        time.sleep(1.0)  # every connection accepted, every slowloris client a few bytes in
        loaded = [poll(port) for _index in range(polls)]
        figures["threads loaded"], figures["fds loaded"] = counts(process.pid)
        time.sleep(max(0.0, AFTER_TIMEOUT - 1.0))
        figures["idle closed"] = closed_by_server(opened)
        figures["threads after"], figures["fds after"] = counts(process.pid)
        stop.set()
        trickler.join()
        for sock in opened:
            sock.close()
        figures["quiet median"], figures["quiet max"] = statistics.median(quiet), max(quiet)
        figures["loaded median"], figures["loaded max"] = statistics.median(loaded), max(loaded)
        return figures
    finally:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--slowloris", type=int, default=5)
    parser.add_argument("--polls", type=int, default=50)
    parser.add_argument("--write", type=Path, help="write the figures as markdown to this file")
    args = parser.parse_args()

    smokegate = str(Path(sys.executable).with_name("smokegate"))
    figures = measure(smokegate, args.idle, args.slowloris, args.polls)
    load = "%d idle + %d slowloris connections" % (args.idle, args.slowloris)
    lines = [
        "| | no other connections | %s | %.0f s later |" % (load, AFTER_TIMEOUT),
        "|---|---:|---:|---:|",
        "| poll median ms | %.1f | %.1f | |" % (figures["quiet median"], figures["loaded median"]),
        "| poll max ms | %.1f | %.1f | |" % (figures["quiet max"], figures["loaded max"]),
        "| server threads | %d | %d | %d |"
        % (figures["threads before"], figures["threads loaded"], figures["threads after"]),
        "| server descriptors | %d | %d | %d |"
        % (figures["fds before"], figures["fds loaded"], figures["fds after"]),
        "| ms to open the idle connections | | %.0f | |" % figures["open ms"],
        "| idle connections closed by the server | | | %d of %d |"
        % (figures["idle closed"], args.idle),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(
            args.write,
            "serve_load",
            "## `smokegate serve` under idle and slowloris connections\n\n"
            "%s, %d polls per column, each a new connection. Regenerated by "
            "`.venv/bin/python bench/serve_load.py --write bench/RESULTS.md`.\n\n%s"
            % (machine(), args.polls, text),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
