"""Time `smokegate check` on 40 local checks against `python3 -c pass`, alternating in rounds.

Usage: .venv/bin/python bench/local_check.py [--rounds 30] [--write bench/RESULTS.md]

The 40 checks use every check type and touch no network beyond loopback: mount, disk, env
(process and file), binary, dns (localhost from /etc/hosts), tcp/http against a loopback
server this script runs (one http check reading JSON paths within a max_latency), command,
service (warning severity: where systemd does not run, systemctl's refusal is what is
timed), process, port, file (modes, content, JSON and env syntax) and tls (a loopback TLS
server and a PEM file, with a certificate made by openssl). Each type's own cost is the
median of a spec of only its checks minus that of a spec of one env check.
Goal: median wall time of the whole command <= 200 ms.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from results import machine, write_section

GOAL_MS = 200.0
NEW_TYPES = ("command", "service", "process", "port", "file", "tls")


def tls_server(certificate: Path, key: Path) -> int:
    """A loopback TLS server that completes handshakes; returns its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            sock, _address = listener.accept()
            try:
                with context.wrap_socket(sock, server_side=True):
                    pass
            except OSError:
                sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def new_checks(workdir: Path, port: int, tls_port: int) -> list:
    """20 checks of the types added after the first seven."""
    python = sys.executable
    certificate = str(workdir / "cert.pem")
    return [
        {"name": "true", "command": {"argv": ["true"]}},
        {"name": "sh script", "command": {"argv": ["sh", "-c", "echo ok"], "stdout": "^ok$"}},
        {"name": "python script", "command": {"argv": [python, "-c", "print('all passed')"]}},
        {"name": "nginx", "service": {"name": "nginx"}, "severity": "warning"},
        {"name": "cron", "service": {"name": "cron", "enabled": True}, "severity": "warning"},
        {"name": "this bench", "process": {"cmdline": r"local_check\.py"}},
        {"name": "python", "process": {"name": Path(python).name}},
        {
            "name": "root processes",
            "process": {"name": Path(python).name, "user": "root", "min": 0},
        },
        {"name": "app listens", "port": {"port": port}},
        {"name": "app loopback", "port": {"port": port, "address": "127.0.0.1"}},
        {"name": "passwd", "file": {"path": "/etc/passwd", "max_mode": "0644", "owner": "root"}},
        {"name": "workdir", "file": {"path": str(workdir), "type": "directory"}},
        {"name": "env syntax", "file": {"path": str(workdir / "app.env"), "format": "env"}},
        {"name": "json syntax", "file": {"path": str(workdir / "health.json"), "format": "json"}},
        {
            "name": "env content",
            "file": {"path": str(workdir / "app.env"), "contains": "APP_MODE=production"},
        },
        {
            "name": "tls server",
            "tls": {"host": "127.0.0.1", "port": tls_port, "ca_file": certificate},
        },
        {"name": "tls file", "tls": {"file": certificate, "server_name": "localhost"}},
        {
            "name": "health json",
            "http": {
                "url": "http://127.0.0.1:%d/health.json" % port,
                "json": {"status": "ok", "checks.db.ok": True, "queue": {"max": 100}},
                "max_latency": 1,
            },
        },
        {"name": "python binary", "binary": {"name": python}},
        {"name": "sh binary", "binary": {"name": "sh"}},
    ]


def spec(env_file: Path, port: int) -> dict:
    python = sys.executable
    return {
        "checks": [
            {"name": "root mount", "mount": {"path": "/", "options": ["rw"]}},
            {"name": "proc mount", "mount": {"path": "/proc", "fstype": "proc"}},
            {"name": "sys mount", "mount": {"path": "/sys", "fstype": "sysfs"}},
            {"name": "shm writable", "mount": {"path": "/dev/shm", "writable": True}},
            {"name": "root space", "disk": {"path": "/", "min_free": "100M"}},
            {"name": "tmp space", "disk": {"path": "/tmp", "min_free_percent": 1}},
            {"name": "root inodes", "disk": {"path": "/", "min_free_inodes_percent": 1}},
            {"name": "shm space", "disk": {"path": "/dev/shm", "min_free": "1M"}},
            {"name": "path", "env": {"name": "PATH", "pattern": "/usr/bin"}},
            {"name": "home", "env": {"name": "HOME"}},
            {
                "name": "db url",
                "env": {"name": "DATABASE_URL", "file": str(env_file), "pattern": "^postgres://"},
            },
            {"name": "cache url", "env": {"name": "CACHE_URL", "file": str(env_file)}},
            {
                "name": "mode",
                "env": {"name": "APP_MODE", "file": str(env_file), "pattern": "^production$"},
            },
            {"name": "sh", "binary": {"name": "sh"}},
            {"name": "ls version", "binary": {"name": "ls", "version": ">=8"}},
            {"name": "python version", "binary": {"name": python, "version": ">=3.8"}},
            {"name": "tar", "binary": {"name": "tar"}},
            {"name": "localhost", "dns": {"name": "localhost", "family": "ipv4"}},
            {"name": "app port", "tcp": {"host": "127.0.0.1", "port": port}},
            {"name": "app health", "http": {"url": "http://127.0.0.1:%d/" % port}},
        ]
    }


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = 1000 * (time.perf_counter() - started)
    if completed.returncode != 0:
        raise SystemExit(
            "%s exited %d: %s" % (argv, completed.returncode, completed.stderr.decode())
        )
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", type=Path, help="write the figures as markdown to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="smokegate-bench-local-", dir="/var/tmp") as work:
        return measure(args, Path(work))


def measure(args: argparse.Namespace, workdir: Path) -> int:
    smokegate = str(Path(sys.executable).with_name("smokegate"))
    env_file = workdir / "app.env"
    env_file.write_text(
        'DATABASE_URL="postgres://app@db/app"\nCACHE_URL=redis://cache\nAPP_MODE=production\n'
    )
    (workdir / "health.json").write_text(
        json.dumps({"status": "ok", "checks": {"db": {"ok": True}}, "queue": 3})
    )
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "90", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=workdir, check=True, capture_output=True,
    )  # fmt: skip
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(workdir))
    SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    tls_port = tls_server(workdir / "cert.pem", workdir / "key.pem")
    document = spec(env_file, port)
    added = new_checks(workdir, port, tls_port)
    document["checks"] += added
    assert len(document["checks"]) == 40
    types = {next(key for key in check if key in (*NEW_TYPES, "http", "binary")) for check in added}
    assert set(NEW_TYPES) <= types
    import yaml

    def write(name: str, checks: list) -> Path:
        path = workdir / name
        path.write_text(yaml.safe_dump({"checks": checks}, sort_keys=False))
        return path

    yaml_spec, json_spec = workdir / "smoke.yml", workdir / "smoke.json"
    json_spec.write_text(json.dumps(document))
    yaml_spec.write_text(yaml.safe_dump(document, sort_keys=False))
    baseline = write("baseline.yml", [{"name": "home", "env": {"name": "HOME"}}])
    per_type = {
        name: write(name + ".yml", [check for check in document["checks"] if name in check])
        for name in NEW_TYPES
    }

    def check(path: Path) -> list[str]:
        return [smokegate, "check", "-f", str(path), "--format", "json"]

    commands = {
        "python3 -c pass": [sys.executable, "-c", "pass"],
        "smokegate check (YAML spec)": check(yaml_spec),
        "smokegate check (JSON spec)": check(json_spec),
        "one env check (YAML)": check(baseline),
    }
    for name, path in per_type.items():
        commands["only the %s checks" % name] = check(path)
    timings: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()[0]
    for argv in commands.values():  # warm the page cache once
        timed(argv)
    for _round in range(args.rounds):  # alternate so machine drift hits every command alike
        for name, argv in commands.items():
            timings[name].append(timed(argv))
    server.shutdown()

    floor = statistics.median(timings["python3 -c pass"])
    lines = [
        "| command | median ms | min ms | max ms | median minus python floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in list(commands)[:4]:
        values = timings[name]
        median = statistics.median(values)
        lines.append(
            "| %s | %.1f | %.1f | %.1f | %.1f |"
            % (name, median, min(values), max(values), median - floor)
        )
    one = statistics.median(timings["one env check (YAML)"])
    lines += [
        "",
        "Each new type's own cost: a spec of only its checks, minus the one-env-check spec"
        " (%.1f ms: interpreter, engine and YAML start-up)." % one,
        "",
        "| type | checks | median ms | its cost ms |",
        "|---|---:|---:|---:|",
    ]
    for name in per_type:
        median = statistics.median(timings["only the %s checks" % name])
        count = sum(1 for item in document["checks"] if name in item)
        lines.append("| `%s` | %d | %.1f | %.1f |" % (name, count, median, median - one))
    yaml_median = statistics.median(timings["smokegate check (YAML spec)"])
    verdict = "met" if yaml_median <= GOAL_MS else "NOT met"
    lines.append("")
    lines.append(
        "Goal: 40 local checks of every type <= %.0f ms wall (median, YAML spec): **%s**"
        " (%.1f ms)." % (GOAL_MS, verdict, yaml_median)
    )
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(
            args.write,
            "local_check",
            "## Local: 40 checks of every type, `smokegate check` vs `python3 -c pass`\n\n"
            "%s, %d rounds alternating, load average %.2f before and %.2f after (other"
            " work on the machine slows every figure alike). Regenerated by "
            "`.venv/bin/python bench/local_check.py --write bench/RESULTS.md`.\n\n%s"
            % (machine(), args.rounds, load_before, os.getloadavg()[0], table),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
