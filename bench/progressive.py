"""What a baseline and a bake cost a rolling deploy on 8 lab hosts: wall time, and the SSH
commands each host serves, from its sshd log, for `fab deploy` and the playbook.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/progressive.py [--rounds 5] [--write bench/RESULTS.md]

About 3 minutes. Three variants per tool, each deploying a new passing release every round
(batches 1, 50%, 100%; bench/fab_smoke.py's 20 checks; restart `bin/restart`), the order
rotating each round:
- baseline off: the gate as it was before baselines;
- baseline refuse (the default): the checks also run on every host's current release, in
  the request that takes the lock;
- refuse + bake: as the default, and each batch is checked again every second for 3 s.

Each host's sshd (LogLevel VERBOSE) logs one `Starting session: command` per exec: the
difference between variants is what the baseline and the bake add per host. Ansible gets
compare.py's settings (forks 8, pipelining on, every run cold).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import ansible_env, close_masters
from fab_smoke import LAB
from results import machine, write_section
from rollback import Deploys

HOSTS = 8
BAKE = 3
VARIANTS = {
    "off": ("baseline off", {"fab": ["--baseline", "off"], "ansible": ["smokegate_baseline=off"]}),
    "refuse": ("baseline refuse (default)", {"fab": [], "ansible": []}),
    "bake": (
        "refuse + bake %d s, every 1 s" % BAKE,
        {
            "fab": ["--bake", str(BAKE), "--bake-interval", "1"],
            "ansible": ["smokegate_bake=%d" % BAKE, "smokegate_bake_interval=1"],
        },
    ),
}
TOOLS = {"fab": "`fab deploy`", "ansible": "`ansible-playbook smokegate.core.rolling_deploy`"}


class Runs:
    def __init__(self, deploys: Deploys) -> None:
        self.deploys = deploys
        self.logs = [Path(host["root"], "sshd.log") for host in deploys.hosts]

    def execs(self) -> list[int]:
        return [log.read_text().count("Starting session: command") for log in self.logs]

    def argv(self, tool: str, variant: str, release: str) -> list[str]:
        argv = self.deploys.argv(tool, release, self.deploys.names)
        extra = VARIANTS[variant][1][tool]
        if tool == "fab":
            return argv + extra
        return argv + [item for setting in extra for item in ("-e", setting)]

    def run(self, tool: str, variant: str, release: str) -> tuple[float, list[int]]:
        """Seconds of one deploy, and the execs it cost each host."""
        before = self.execs()
        with tempfile.TemporaryDirectory(prefix="cp-", dir=self.deploys.work) as control:
            env = ansible_env(HOSTS, True, Path(control)) if tool == "ansible" else None
            try:
                started = time.perf_counter()
                completed = subprocess.run(
                    self.argv(tool, variant, release),
                    cwd=self.deploys.checkout(tool),
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                elapsed = time.perf_counter() - started
            finally:
                close_masters(Path(control))
        if completed.returncode != 0:
            raise SystemExit(
                "bench: %s %s deploy of %s failed:\n%s"
                % (tool, variant, release, (completed.stdout + completed.stderr)[-4000:])
            )
        return elapsed, [after - was for after, was in zip(self.execs(), before)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="update this results file's section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    keys = [(tool, variant) for tool in TOOLS for variant in VARIANTS]
    walls: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    execs: dict[tuple[str, str], list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as directory:
        work = Path(directory)
        lab = work / "lab"
        subprocess.run([str(LAB), "up", str(HOSTS), str(lab)], check=True, capture_output=True)
        try:
            runs = Runs(Deploys(lab, work, HOSTS, "1,50%,100%"))
            for tool in TOOLS:  # a current release for the baseline to check
                runs.run(tool, "refuse", "v1")
            for number in range(args.rounds):
                shift = number % len(keys)
                for tool, variant in keys[shift:] + keys[:shift]:
                    release = "v2-%s-%d" % (variant, number + 1)
                    elapsed, cost = runs.run(tool, variant, release)
                    walls[tool, variant].append(elapsed)
                    execs[tool, variant] = cost
                    print(
                        "round %d, %-7s %-7s %6.0f ms, execs per host %s"
                        % (number + 1, tool, variant, 1000 * elapsed, sorted(set(cost))),
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)

    def median(key: tuple[str, str]) -> float:
        return 1000 * statistics.median(walls[key])

    def per_host(key: tuple[str, str]) -> str:
        low, high = min(execs[key]), max(execs[key])
        return str(low) if low == high else "%d-%d" % (low, high)

    lines = [
        "## Progressive delivery: what a baseline and a bake cost, 8 lab hosts",
        "",
        "%s, %d rounds (the order rotates each round). Regenerated by `sudo .venv/bin/python "
        "bench/progressive.py --rounds %d --write bench/RESULTS.md`."
        % (machine(), args.rounds, args.rounds),
        "",
        "Batches 1, 50%, 100%; bench/fab_smoke.py's 20 checks; restart `bin/restart`; every "
        "round deploys a new passing release. SSH commands per host: `Starting session: "
        "command` lines in each host's sshd log during the run (the same on every host unless "
        "a range is shown).",
        "",
        "| tool | variant | median wall ms | min-max | vs baseline off | SSH commands per host |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for tool, variant in keys:
        values = [1000 * value for value in walls[tool, variant]]
        lines.append(
            "| %s | %s | %.0f | %.0f-%.0f | %+.0f ms | %s |"
            % (
                TOOLS[tool],
                VARIANTS[variant][0],
                median((tool, variant)),
                min(values),
                max(values),
                median((tool, variant)) - median((tool, "off")),
                per_host((tool, variant)),
            )
        )

    def added(tool: str, more: str, fewer: str) -> int:
        """The most SSH commands one host served in variant ``more`` beyond ``fewer``."""
        return max(a - b for a, b in zip(execs[tool, more], execs[tool, fewer]))

    def verdict(more: str, fewer: str, most: int) -> str:
        met = all(added(tool, more, fewer) <= most for tool in TOOLS)
        return "**%s** (%s)" % (
            "met" if met else "NOT met",
            ", ".join("%s +%d" % (tool, added(tool, more, fewer)) for tool in TOOLS),
        )

    lines += [
        "",
        "- The baseline adds at most one SSH command per host (it rides in the lock's "
        "request): %s." % verdict("refuse", "off", 1),
        "- A bake adds no SSH command (each batch's rounds loop on the host, in its one "
        "request): %s." % verdict("bake", "refuse", 0),
        "- Added wall time of the default baseline (refuse) on 8 hosts: %s."
        % ", ".join(
            "%s %+.0f ms (%.2fx)"
            % (
                tool,
                median((tool, "refuse")) - median((tool, "off")),
                median((tool, "refuse")) / median((tool, "off")),
            )
            for tool in TOOLS
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "progressive", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
