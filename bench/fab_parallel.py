"""Why `fab --parallel` defaults to what it does: `fab smoke` on 64 lab hosts at several bounds.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/fab_parallel.py [--hosts 64] [--parallel 4,8,16,32,64] [--rounds 3]
        [--write bench/RESULTS.md]

About 2 minutes with the defaults. Each round runs every bound once, in an order that rotates,
and the bare-SSH floor (N parallel OpenSSH runs, bench/fab_smoke.py's). For each run: wall
time, and what the controller paid for it, from the process's own rusage (os.wait4): CPU
seconds (user + system) and peak resident memory. The bound is how many hosts one fab works
on at once: SSH handshakes, encryption and answers all run in that one Python process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fab_smoke import FAB, FLOOR_CODE, LAB, REPO, spec, write_app_env
from results import machine, write_section

from smokegate.fleet import PARALLEL as DEFAULT


def measured(argv: list[str]) -> tuple[float, float, float]:
    """Wall ms, CPU s and peak RSS MiB of one fab run, which must succeed."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = (time.perf_counter() - started) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit("bench: %s failed:\n%s" % (" ".join(argv[:8]), log.read()[-4000:]))
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def floor(argv: list[list[str]]) -> float:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for command in argv
    ]
    if any(process.wait() != 0 for process in processes):
        raise SystemExit("bench: the floor's ssh failed")
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--parallel", default="4,8,16,32,64", help="bounds, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this results file's section")
    args = parser.parse_args()
    bounds = sorted({int(bound) for bound in args.parallel.split(",")})
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    figures: dict[int, dict[str, list[float]]] = {
        bound: {"wall": [], "cpu": [], "rss": []} for bound in bounds
    }
    floors: list[float] = []
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as work:
        lab = Path(work) / "lab"
        subprocess.run([str(LAB), "up", str(args.hosts), str(lab)], check=True, capture_output=True)
        try:
            hosts = json.loads((lab / "hosts.json").read_text())
            write_app_env(hosts)
            spec_file = Path(work) / "smoke.json"
            spec_file.write_text(json.dumps(spec(hosts)))
            ssh_config = str(lab / "ssh_config")
            names = ",".join(host["name"] for host in hosts)

            def fab(bound: int) -> list[str]:
                return [
                    *(FAB, "-S", ssh_config, "-H", names, "smoke"),
                    *("--parallel", str(bound), "--checks", str(spec_file)),
                ]

            floor_argv = [
                ["ssh", "-F", ssh_config, host["name"], "python3", "-c", '"%s"' % FLOOR_CODE]
                for host in hosts
            ]
            measured(fab(bounds[-1])), floor(floor_argv)  # warm caches
            for number in range(args.rounds):
                shift = number % len(bounds)
                for bound in bounds[shift:] + bounds[:shift]:
                    wall, cpu, rss = measured(fab(bound))
                    for key, value in (("wall", wall), ("cpu", cpu), ("rss", rss)):
                        figures[bound][key].append(value)
                    print(
                        "round %d, --parallel %2d: %6.0f ms, %.2f CPU s, %.0f MiB"
                        % (number + 1, bound, wall, cpu, rss),
                        file=sys.stderr,
                        flush=True,
                    )
                floors.append(floor(floor_argv))
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)

    def median(bound: int, key: str) -> float:
        return statistics.median(figures[bound][key])

    floor_ms = statistics.median(floors)
    fastest = min(bounds, key=lambda bound: median(bound, "wall"))
    lines = [
        "## Fabric: `fab smoke --parallel N` on %d lab hosts" % args.hosts,
        "",
        "%s, %d rounds (the order rotates each round). Regenerated by `sudo .venv/bin/python "
        "bench/fab_parallel.py --hosts %d --parallel %s --rounds %d --write bench/RESULTS.md`."
        % (machine(), args.rounds, args.hosts, args.parallel, args.rounds),
        "",
        "The spec is bench/fab_smoke.py's 20 checks. CPU and memory are the fab process's own "
        "(rusage): every SSH handshake, cipher and answer of the run is paid there.",
        "",
        "| --parallel | median wall ms | min-max | vs the floor | CPU s | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for bound in bounds:
        lines.append(
            "| %d%s | %.0f | %.0f-%.0f | %.2fx | %.2f | %.0f |"
            % (
                bound,
                " (default)" if bound == DEFAULT else "",
                median(bound, "wall"),
                min(figures[bound]["wall"]),
                max(figures[bound]["wall"]),
                median(bound, "wall") / floor_ms,
                median(bound, "cpu"),
                median(bound, "rss"),
            )
        )
    lines += [
        "",
        "Floor: %d parallel `ssh host python3 -c '<statvfs; getaddrinfo>'`, %.0f ms (median). "
        "Fastest bound here: %d (%.0f ms); the default, %d, takes %.2fx of it."
        % (
            args.hosts,
            floor_ms,
            fastest,
            median(fastest, "wall"),
            DEFAULT,
            median(DEFAULT, "wall") / median(fastest, "wall") if DEFAULT in figures else 0,
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "fab_parallel", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
