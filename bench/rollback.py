"""Time a rollback on N lab hosts: from the failing smoke check to every host back on the
previous release, for `ansible-playbook smokegate.core.rolling_deploy` and `fab deploy`.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/rollback.py [--rounds 3] [--fab-from CHECKOUT] [--write bench/RESULTS.md]
    .venv/bin/python bench/rollback.py --hosts 16,32,64 --serial 1,10%,50%,100% [--rounds 3]
        [--write bench/RESULTS.md]

About 2 minutes at 8 hosts (the default, batches 1, 50%, 100%), 10 at 16, 32 and 64. With
--fab-from, the `fab deploy` of another checkout (with its own .venv, e.g. an earlier commit
in a worktree of its own) runs too, in the same rounds, on a deploy root of its own: the
same deploy before and after a change. Several host counts share one lab of the most
hosts; a run with N hosts targets web1..webN.

Each tool has its own deploy root (/srv/app-ansible, /srv/app-fab) holding a good release.
Each round, alternating, each tool deploys a release that fails its smoke checks on webN
only, the last host of the last batch (at 8 hosts: web1 | web2-web5 | web6-web8), so every
host has switched when the failure is seen and every host must switch back.

How it is timed, on this machine's one clock (the hosts are namespaces of it):
- the failing smoke result: the release's health probe, the spec's last check (a `binary`
  check running `<root>/current/bin/health`), writes the time it ran into the release
  directory; web8's stamp in the failing release is the moment the failure was observed;
- every host back: each switch creates the `current` symlink afresh and renames it into
  place, so the newest lstat mtime of the 8 `current` links, once all point at the previous
  release again, is when the last host got back;
- the command's exit (after the restart, the verifying smoke run and the summary).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from compare import ANSIBLE_PLAYBOOK, ansible_env, close_masters
from fab_smoke import FAB, LAB, REPO, spec, write_app_env
from results import machine, write_section

HOSTS = "8"
SERIAL = "1,50%,100%"
GOOD = "v1"
HEALTH = """#!/bin/sh
# The release's health probe: stamps when the smoke check ran it, then reports health 1.0
# on the hosts this release works on and 0.0 elsewhere.
here=$(dirname "$0")/..
date +%s.%N > "$here/health-checked"
if grep -qx "$(hostname)" "$here/healthy-on"; then echo "health 1.0"; else echo "health 0.0"; fi
"""
RESTART = "#!/bin/sh\ndate +%s.%N > started\n"
TOOLS = {"ansible": "`ansible-playbook smokegate.core.rolling_deploy`", "fab": "`fab deploy`"}
GOAL_BACK = 0.6  # seconds, the playbook's failing check -> all 8 back (batches 1, 50%, 100%)


def artifact(path: Path, release: str, healthy_on: list[str]) -> Path:
    files = {
        "VERSION": (release + "\n", 0o644),
        "healthy-on": ("".join(name + "\n" for name in healthy_on), 0o644),
        "bin/health": (HEALTH, 0o755),
        "bin/restart": (RESTART, 0o755),
    }
    with tarfile.open(path, "w:gz") as archive:
        for member, (content, mode) in files.items():
            data = content.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


class Deploys:
    """Both tools' deploy commands against one lab, each on its own deploy root."""

    def __init__(
        self, lab: Path, work: Path, count: int, serial: str, other: Path | None = None
    ) -> None:
        self.lab = lab
        self.work = work
        self.count = count
        self.serial = serial
        self.other = other  # the checkout whose fab the "fab-other" tool runs
        self.hosts = json.loads((lab / "hosts.json").read_text())[:count]
        self.names = [host["name"] for host in self.hosts]
        self.failing = self.names[-1]
        write_app_env(self.hosts)
        lines = (lab / "inventory.ini").read_text().splitlines()
        self.inventory = work / ("inventory-%d.ini" % count)
        self.inventory.write_text("\n".join(lines[: count + 1]) + "\n")

    def root(self, tool: str) -> str:
        return "/srv/app-%s" % tool

    def spec_file(self, tool: str) -> Path:
        """The 20-check spec with its last check replaced by the release's health probe."""
        checks = spec(self.hosts)["checks"][:19]
        checks.append(
            {
                "name": "release health",
                "binary": {"name": self.root(tool) + "/current/bin/health", "version": ">=1.0"},
            }
        )
        path = self.work / ("smoke-%s-%d.json" % (tool, self.count))
        path.write_text(json.dumps({"checks": checks}))
        return path

    def checkout(self, tool: str) -> Path:
        """Where the tool's command runs (fab finds its fabfile there)."""
        return self.other if tool == "fab-other" and self.other else REPO

    def argv(self, tool: str, release: str, healthy_on: list[str]) -> list[str]:
        archive = artifact(self.work / ("%s-%s.tar.gz" % (tool, release)), release, healthy_on)
        serial = [] if self.serial == SERIAL else ["--serial", self.serial]
        if tool.startswith("fab"):
            return [
                str(self.checkout(tool) / ".venv" / "bin" / "fab") if tool == "fab-other" else FAB,
                "-S",
                str(self.lab / "ssh_config"),
                "-H",
                ",".join(self.names),
                "deploy",
                "--artifact",
                str(archive),
                "--root",
                self.root(tool),
                "--checks",
                str(self.spec_file(tool)),
                "--release",
                release,
                "--restart",
                "bin/restart",
                *serial,
            ]
        settings = {
            "smokegate_deploy_root": self.root(tool),
            "smokegate_artifact": archive,
            "smokegate_release": release,
            "smokegate_checks_file": self.spec_file(tool),
            "smokegate_restart_command": "bin/restart",
        }
        batches = [int(size) if size.isdigit() else size for size in self.serial.split(",")]
        return [
            ANSIBLE_PLAYBOOK,
            "smokegate.core.rolling_deploy",
            "-i",
            str(self.inventory),
            *(item for name, value in settings.items() for item in ("-e", "%s=%s" % (name, value))),
            *(["-e", json.dumps({"smokegate_serial": batches})] if serial else []),
        ]

    def deploy(self, tool: str, release: str, healthy_on: list[str]) -> tuple[int, float, str]:
        """Exit status, wall-clock time at exit, and output of one deploy."""
        with tempfile.TemporaryDirectory(prefix="cp-", dir=self.work) as control:
            env = ansible_env(self.count, True, Path(control)) if tool == "ansible" else None
            try:
                completed = subprocess.run(
                    self.argv(tool, release, healthy_on),
                    cwd=self.checkout(tool),
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                finished = time.time()
            finally:
                close_masters(Path(control))
        return completed.returncode, finished, completed.stdout + completed.stderr

    def host_path(self, name: str, tool: str, *parts: str) -> Path:
        host = next(host for host in self.hosts if host["name"] == name)
        return Path(host["root"], self.root(tool).lstrip("/"), *parts)

    def timed_rollback(self, tool: str, release: str) -> dict[str, float]:
        """Deploy ``release`` failing on the last host; seconds from its failing check."""
        started = time.time()
        status, finished, output = self.deploy(
            tool, release, [name for name in self.names if name != self.failing]
        )
        if status == 0:
            raise SystemExit("bench: %s deploy of %s did not fail:\n%s" % (tool, release, output))
        switched_back = []
        for name in self.names:
            link = self.host_path(name, tool, "current")
            if os.readlink(link) != "releases/%s" % GOOD:
                raise SystemExit(
                    "bench: %s: %s is on %s, not %s:\n%s"
                    % (tool, name, os.readlink(link), GOOD, output[-4000:])
                )
            switched_back.append(os.lstat(link).st_mtime)
        stamp = self.host_path(self.failing, tool, "releases", release, "health-checked")
        failed_at = float(stamp.read_text())
        return {
            "back": max(switched_back) - failed_at,
            "exit": finished - failed_at,
            "wall": finished - started,
        }


def cell(values: list[float]) -> str:
    return "%.0f (%.0f-%.0f)" % tuple(
        1000 * value for value in (statistics.median(values), min(values), max(values))
    )


def commit_of(checkout: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def batches_of(count: int, serial: str) -> str:
    """The batches as host ranges: 'web1 | web2-web5 | web6-web8'."""
    sizes = []
    for size in serial.split(","):
        sizes.append(
            max(1, int(count * float(size[:-1]) / 100)) if size.endswith("%") else int(size)
        )
    ranges, start = [], 1
    while start <= count:
        size = sizes[min(len(ranges), len(sizes) - 1)]
        end = min(count, start + size - 1)
        ranges.append("web%d" % start if start == end else "web%d-web%d" % (start, end))
        start = end + 1
    return " | ".join(ranges)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default=HOSTS, help="host counts, comma-separated")
    parser.add_argument("--serial", default=SERIAL, help="batch sizes, as fab --serial takes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fab-from", type=Path, help="also time the fab deploy of this checkout (its .venv)"
    )
    parser.add_argument("--write", type=Path, help="update this results file's rollback section")
    args = parser.parse_args()
    counts = sorted({int(count) for count in args.hosts.split(",")})
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    tools = dict(TOOLS)
    if args.fab_from:
        tools["fab-other"] = "`fab deploy` at %s" % commit_of(args.fab_from)
        tools["fab"] = "`fab deploy` at %s" % commit_of(REPO)
    figures: dict[int, dict[str, dict[str, list[float]]]] = {
        count: {tool: {"back": [], "exit": [], "wall": []} for tool in tools} for count in counts
    }
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as directory:
        work = Path(directory)
        lab = work / "lab"
        subprocess.run([str(LAB), "up", str(counts[-1]), str(lab)], check=True, capture_output=True)
        try:
            fleets = {
                count: Deploys(lab, work, count, args.serial, args.fab_from) for count in counts
            }
            everyone = fleets[counts[-1]]
            for tool in tools:
                status, _finished, output = everyone.deploy(tool, GOOD, everyone.names)
                if status != 0:
                    raise SystemExit("bench: %s deploy of %s failed:\n%s" % (tool, GOOD, output))
            commands = {tool: everyone.argv(tool, "v2", everyone.names) for tool in tools}
            for number in range(args.rounds):
                shift = number % len(tools)  # each tool goes first in turn
                for count in counts:
                    for tool in [*tools][shift:] + [*tools][:shift]:
                        release = "v2-%d-%d" % (count, number + 1)
                        timing = fleets[count].timed_rollback(tool, release)
                        for key, value in timing.items():
                            figures[count][tool][key].append(value)
                        print(
                            "round %d, %2d hosts, %-9s failing check -> all back %6.0f ms, "
                            "-> exit %6.0f ms"
                            % (
                                number + 1,
                                count,
                                tool,
                                1000 * timing["back"],
                                1000 * timing["exit"],
                            ),
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)

    def shown(argv: list[str]) -> str:
        text = shlex.join([Path(argv[0]).name, *argv[1:]])
        return text.replace(str(work) + "/", "").replace(str(REPO) + "/", "")

    def median(count: int, tool: str, key: str) -> float:
        return statistics.median(figures[count][tool][key])

    largest = counts[-1]
    options = "" if args.hosts == HOSTS else " --hosts %s" % ",".join(map(str, counts))
    options += "" if args.serial == SERIAL else " --serial %s" % args.serial
    lines = [
        "## Rollback: %s hosts, a release failing on the last host of the last batch"
        % ", ".join(map(str, counts)),
        "",
        "%s, %d rounds alternating (each tool goes first in turn). Regenerated by `sudo "
        ".venv/bin/python bench/rollback.py%s --rounds %d%s --write bench/RESULTS.md`."
        % (
            machine(),
            args.rounds,
            options,
            args.rounds,
            " --fab-from <a checkout of %s>" % commit_of(args.fab_from) if args.fab_from else "",
        ),
        "",
        "Batches %s (at %d hosts: %s); the spec is bench/fab_smoke.py's 20 checks with the "
        "last one replaced by the release's health probe (a `binary` check), which fails on "
        "the last host only; restart command `bin/restart`. Ansible: forks N, pipelining "
        "on, fresh SSH connections per run. Timed on the machine's one clock: from the moment "
        "the last host's failing check ran (the probe writes its time into the release) to the "
        "newest mtime of the N `current` symlinks once all point at the previous release again "
        "(every switch creates the link afresh and renames it into place), and to the "
        "command's exit (restart, verifying smoke run and summary included)."
        % (", ".join(args.serial.split(",")), largest, batches_of(largest, args.serial)),
        "",
        "Commands (N = %d):" % largest,
        "",
    ]
    for tool, argv in commands.items():
        lines.append("- %s: `%s`" % (tools[tool], shown(argv).replace("v2", "v2-<N>-<round>")))
    lines += [
        "",
        "| N | tool | failing check -> all N back, ms | failing check -> exit, ms "
        "| whole deploy, ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for count in counts:
        for tool, values in figures[count].items():
            lines.append(
                "| %d | %s | %s | %s | %s |"
                % (
                    count,
                    tools[tool],
                    cell(values["back"]),
                    cell(values["exit"]),
                    cell(values["wall"]),
                )
            )
    lines += ["", "Median (min-max).", ""]
    if 8 in figures and args.serial == SERIAL:
        back = median(8, "ansible", "back")
        lines.append(
            "Goal: the playbook's failing check -> all 8 back <= %.0f ms: **%s** (%.0f ms)."
            % (1000 * GOAL_BACK, "met" if back <= GOAL_BACK else "NOT met", 1000 * back)
        )
    else:
        lines.append(
            "At %d hosts, from the failing check to all %d back: `fab deploy` %.0f ms, the "
            "playbook %.0f ms."
            % (
                largest,
                largest,
                1000 * median(largest, "fab", "back"),
                1000 * median(largest, "ansible", "back"),
            )
        )
    if args.fab_from:
        ratio = median(largest, "fab", "wall") / median(largest, "fab-other", "wall")
        lines.append(
            "- `fab deploy` no slower than at %s: **%s** (whole deploy %.2fx of it)."
            % (commit_of(args.fab_from), "met" if ratio <= 1.0 else "NOT met", ratio)
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        section = "rollback" if options == "" else "rollback_scale"
        write_section(args.write, section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
