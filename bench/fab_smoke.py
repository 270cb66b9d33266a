"""Time `fab smoke` (20 checks) on lab hosts against the bare-SSH floor, alternating in rounds.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/fab_smoke.py [--hosts 4] [--rounds 15] [--write bench/RESULTS.md]

The floor is N parallel `ssh host python3 -c '<read disk, resolve a name>'` runs: one
OpenSSH connection and one interpreter per host, the least any remote check can cost.
Goal: fab smoke median <= 2x the floor's median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from results import machine, write_section

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "tests" / "lab" / "lab"
FAB = str(Path(sys.executable).with_name("fab"))
GOAL_RATIO = 2.0
FLOOR_CODE = "import os, socket; os.statvfs('/srv'); socket.getaddrinfo('web1.lab.test', 22)"


def spec(hosts: list[dict]) -> dict:
    """20 checks of every local kind plus DNS and TCP to every peer by name."""
    checks: list[dict] = [
        {"name": "srv mount", "mount": {"path": "/srv", "options": ["rw"], "writable": True}},
        {"name": "root mount", "mount": {"path": "/", "options": ["rw"]}},
        {"name": "proc mount", "mount": {"path": "/proc", "fstype": "proc"}},
        {"name": "srv space", "disk": {"path": "/srv", "min_free": "100M"}},
        {"name": "srv percent", "disk": {"path": "/srv", "min_free_percent": 1}},
        {"name": "srv inodes", "disk": {"path": "/srv", "min_free_inodes_percent": 1}},
        {"name": "path", "env": {"name": "PATH", "pattern": "/usr/bin"}},
        {"name": "db url", "env": {"name": "DATABASE_URL", "file": "/srv/app.env"}},
        {"name": "mode", "env": {"name": "APP_MODE", "file": "/srv/app.env", "pattern": "^prod"}},
        {"name": "python", "binary": {"name": "python3", "version": ">=3.8"}},
        {"name": "ls", "binary": {"name": "ls", "version": ">=8"}},
        {"name": "tar", "binary": {"name": "tar"}},
    ]
    for host in hosts[:4]:
        checks.append(
            {"name": "%s resolves" % host["name"], "dns": {"name": host["name"] + ".lab.test"}}
        )
        checks.append(
            {"name": "%s sshd" % host["name"], "tcp": {"host": host["address"], "port": 22}}
        )
    while len(checks) < 20:  # fewer than 4 hosts: more of the same kinds
        checks.append({"name": "space %d" % len(checks), "disk": {"path": "/", "min_free": "1M"}})
    return {"checks": checks[:20]}


def write_app_env(hosts: list[dict]) -> None:
    """The settings file the spec's env checks read, on every host's /srv."""
    for host in hosts:
        Path(host["root"], "srv", "app.env").write_text(
            "DATABASE_URL=postgres://db/app\nAPP_MODE=production\n"
        )


@contextlib.contextmanager
def lab_with_spec(count: int) -> Iterator[tuple[Path, list[dict], Path]]:
    """A lab of ``count`` hosts with the spec's settings file on each, taken down after:
    its directory, its hosts and the spec file."""
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as work:
        lab = Path(work) / "lab"
        subprocess.run([str(LAB), "up", str(count), str(lab)], check=True, capture_output=True)
        try:
            hosts = json.loads((lab / "hosts.json").read_text())
            write_app_env(hosts)
            spec_file = Path(work) / "smoke.json"
            spec_file.write_text(json.dumps(spec(hosts)))
            yield lab, hosts, spec_file
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)


def timed(run: list[list[str]], env: dict[str, str] | None = None) -> float:
    """Wall time of starting every command at once (in the repository, so that fab finds
    its fabfile) and waiting for all; each must succeed."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            for argv in run
        ]
        failed = [process for process in processes if process.wait() != 0]
        elapsed = (time.perf_counter() - started) * 1000
        if failed:
            log.seek(0)
            output = log.read().decode(errors="replace")[-4000:]
            raise SystemExit("bench: %s failed:\n%s" % (" ".join(run[0][:6]), output))
    return elapsed


def row(name: str, values: list[float]) -> str:
    return "| %s | %.0f | %.0f | %.0f |" % (
        name,
        statistics.median(values),
        min(values),
        max(values),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--write", type=Path, help="update this results file's fab section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    with lab_with_spec(args.hosts) as (lab, hosts, spec_file):
        ssh_config = str(lab / "ssh_config")
        names = [host["name"] for host in hosts]
        fab = [[FAB, "-S", ssh_config, "-H", ",".join(names), "smoke", "--checks", str(spec_file)]]
        floor = [
            ["ssh", "-F", ssh_config, name, "python3", "-c", '"%s"' % FLOOR_CODE] for name in names
        ]
        timed(fab), timed(floor)  # warm caches
        figures: dict[str, list[float]] = {"fab": [], "floor": []}
        for _round in range(args.rounds):
            figures["fab"].append(timed(fab))
            figures["floor"].append(timed(floor))
    ratio = statistics.median(figures["fab"]) / statistics.median(figures["floor"])
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    text = "\n".join(
        [
            "## Fabric: `fab smoke`, 20 checks on %d lab hosts, vs the bare-SSH floor" % args.hosts,
            "",
            "%s, %d rounds alternating. Regenerated by "
            "`sudo .venv/bin/python bench/fab_smoke.py --write bench/RESULTS.md`."
            % (machine(), args.rounds),
            "",
            "| command | median ms | min ms | max ms |",
            "|---|---:|---:|---:|",
            row("(d) `fab -H web1..web%d smoke --checks smoke.json`" % args.hosts, figures["fab"]),
            row(
                "(e) %d parallel `ssh host python3 -c '<statvfs; getaddrinfo>'`" % args.hosts,
                figures["floor"],
            ),
            "",
            "Goal: (d) / (e) <= %.0fx: **%s** (%.2fx)." % (GOAL_RATIO, verdict, ratio),
        ]
    )
    print(text)
    if args.write:
        write_section(args.write, "fab_smoke", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
