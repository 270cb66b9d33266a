"""Time `smokegate check` on 20 local checks against `python3 -c pass`, alternating in rounds.

Usage: .venv/bin/python bench/local_check.py [--rounds 30] [--write bench/RESULTS.md]

The 20 checks touch no remote network: mount, disk, env (process and file), binary,
dns (localhost from /etc/hosts) and tcp/http against a loopback server this script runs.
Goal: median wall time of the whole command <= 150 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from results import machine, write_section

GOAL_MS = 150.0


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

    smokegate = str(Path(sys.executable).with_name("smokegate"))
    workdir = Path(tempfile.mkdtemp(prefix="smokegate-bench-"))
    env_file = workdir / "app.env"
    env_file.write_text(
        'DATABASE_URL="postgres://app@db/app"\nCACHE_URL=redis://cache\nAPP_MODE=production\n'
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    document = spec(env_file, server.server_address[1])
    yaml_spec, json_spec = workdir / "smoke.yml", workdir / "smoke.json"
    json_spec.write_text(json.dumps(document))
    import yaml

    yaml_spec.write_text(yaml.safe_dump(document, sort_keys=False))

    commands = {
        "python3 -c pass": [sys.executable, "-c", "pass"],
        "smokegate check (YAML spec)": [
            smokegate,
            "check",
            "-f",
            str(yaml_spec),
            "--format",
            "json",
        ],
        "smokegate check (JSON spec)": [
            smokegate,
            "check",
            "-f",
            str(json_spec),
            "--format",
            "json",
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
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
    for name, values in timings.items():
        median = statistics.median(values)
        lines.append(
            "| %s | %.1f | %.1f | %.1f | %.1f |"
            % (name, median, min(values), max(values), median - floor)
        )
    yaml_median = statistics.median(timings["smokegate check (YAML spec)"])
    verdict = "met" if yaml_median <= GOAL_MS else "NOT met"
    lines.append("")
    lines.append(
        "Goal: 20 local checks <= %.0f ms wall (median, YAML spec): **%s** (%.1f ms)."
        % (GOAL_MS, verdict, yaml_median)
    )
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(
            args.write,
            "local_check",
            "## Local: 20 checks, `smokegate check` vs `python3 -c pass`\n\n"
            "%s, %d rounds alternating. Regenerated by "
            "`.venv/bin/python bench/local_check.py --write bench/RESULTS.md`.\n\n%s"
            % (machine(), args.rounds, table),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
