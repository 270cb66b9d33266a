"""Time a rollback on 8 lab hosts: from the failing smoke check to every host back on the
previous release, for `ansible-playbook smokegate.core.rolling_deploy` and `fab deploy`.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/rollback.py [--rounds 3] [--fab-from CHECKOUT] [--write bench/RESULTS.md]

About 2 minutes. With --fab-from, the `fab deploy` of another checkout (with its own .venv,
e.g. an earlier commit in a worktree of its own) runs too, in the same rounds, on a deploy
root of its own: the same deploy before and after a change.

Each tool has its own deploy root (/srv/app-ansible, /srv/app-fab) holding a good release.
Each round, alternating, each tool deploys a release that fails its smoke checks on web8
only, the last host of the last batch (batches 1, 50%, 100%: web1 | web2-web5 | web6-web8),
so every host has switched when the failure is seen and every host must switch back.

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
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from compare import ANSIBLE_PLAYBOOK, ansible_env, close_masters
from fab_smoke import FAB, LAB, REPO, spec
from results import machine, write_section

HOSTS = 8
FAILING_HOST = "web8"
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
GOAL_BACK = 0.6  # seconds, the playbook's failing check -> all 8 back


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

    def __init__(self, lab: Path, work: Path, other: Path | None = None) -> None:
        self.lab = lab
        self.work = work
        self.other = other  # the checkout whose fab the "fab-other" tool runs
        self.hosts = json.loads((lab / "hosts.json").read_text())
        self.names = [host["name"] for host in self.hosts]
        for host in self.hosts:
            Path(host["root"], "srv", "app.env").write_text(
                "DATABASE_URL=postgres://db/app\nAPP_MODE=production\n"
            )

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
        path = self.work / ("smoke-%s.json" % tool)
        path.write_text(json.dumps({"checks": checks}))
        return path

    def checkout(self, tool: str) -> Path:
        """Where the tool's command runs (fab finds its fabfile there)."""
        return self.other if tool == "fab-other" and self.other else REPO

    def argv(self, tool: str, release: str, healthy_on: list[str]) -> list[str]:
        archive = artifact(self.work / ("%s-%s.tar.gz" % (tool, release)), release, healthy_on)
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
            ]
        settings = {
            "smokegate_deploy_root": self.root(tool),
            "smokegate_artifact": archive,
            "smokegate_release": release,
            "smokegate_checks_file": self.spec_file(tool),
            "smokegate_restart_command": "bin/restart",
        }
        return [
            ANSIBLE_PLAYBOOK,
            "smokegate.core.rolling_deploy",
            "-i",
            str(self.lab / "inventory.ini"),
            *(item for name, value in settings.items() for item in ("-e", "%s=%s" % (name, value))),
        ]

    def deploy(self, tool: str, release: str, healthy_on: list[str]) -> tuple[int, float, str]:
        """Exit status, wall-clock time at exit, and output of one deploy."""
        with tempfile.TemporaryDirectory(prefix="cp-", dir=self.work) as control:
            env = ansible_env(HOSTS, True, Path(control)) if tool == "ansible" else None
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
            tool, release, [name for name in self.names if name != FAILING_HOST]
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
        stamp = self.host_path(FAILING_HOST, tool, "releases", release, "health-checked")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fab-from", type=Path, help="also time the fab deploy of this checkout (its .venv)"
    )
    parser.add_argument("--write", type=Path, help="update this results file's rollback section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    tools = dict(TOOLS)
    if args.fab_from:
        tools["fab-other"] = "`fab deploy` at %s" % commit_of(args.fab_from)
        tools["fab"] = "`fab deploy` at %s" % commit_of(REPO)
    figures: dict[str, dict[str, list[float]]] = {
        tool: {"back": [], "exit": [], "wall": []} for tool in tools
    }
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as directory:
        work = Path(directory)
        lab = work / "lab"
        subprocess.run([str(LAB), "up", str(HOSTS), str(lab)], check=True, capture_output=True)
        try:
            deploys = Deploys(lab, work, args.fab_from)
            for tool in tools:
                status, _finished, output = deploys.deploy(tool, GOOD, deploys.names)
                if status != 0:
                    raise SystemExit("bench: %s deploy of %s failed:\n%s" % (tool, GOOD, output))
            commands = {tool: deploys.argv(tool, "v2", deploys.names) for tool in tools}
            for number in range(args.rounds):
                shift = number % len(tools)  # each tool goes first in turn
                for tool in [*tools][shift:] + [*tools][:shift]:
                    timing = deploys.timed_rollback(tool, "v2-%d" % (number + 1))
                    for key, value in timing.items():
                        figures[tool][key].append(value)
                    print(
                        "round %d, %-9s failing check -> all back %6.0f ms, -> exit %6.0f ms"
                        % (number + 1, tool, 1000 * timing["back"], 1000 * timing["exit"]),
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)

    def shown(argv: list[str]) -> str:
        text = " ".join([Path(argv[0]).name, *argv[1:]])
        return text.replace(str(work) + "/", "").replace(str(REPO) + "/", "")

    def median(tool: str, key: str) -> float:
        return statistics.median(figures[tool][key])

    lines = [
        "## Rollback: 8 hosts, a release failing on the last host of the last batch",
        "",
        "%s, %d rounds alternating (each tool goes first in turn). Regenerated by `sudo "
        ".venv/bin/python bench/rollback.py --rounds %d%s --write bench/RESULTS.md`."
        % (
            machine(),
            args.rounds,
            args.rounds,
            " --fab-from <a checkout of %s>" % commit_of(args.fab_from) if args.fab_from else "",
        ),
        "",
        "Batches 1, 50%, 100% (web1 | web2-web5 | web6-web8); the spec is bench/fab_smoke.py's "
        "20 checks with the last one replaced by the release's health probe (a `binary` check), "
        "which fails on web8 only; restart command `bin/restart`. Ansible: forks 8, pipelining "
        "on, fresh SSH connections per run. Timed on the machine's one clock: from the moment "
        "web8's failing check ran (the probe writes its time into the release) to the newest "
        "mtime of the 8 `current` symlinks once all point at the previous release again (every "
        "switch creates the link afresh and renames it into place), and to the command's exit "
        "(restart, verifying smoke run and summary included).",
        "",
        "Commands:",
        "",
    ]
    for tool, argv in commands.items():
        lines.append("- %s: `%s`" % (tools[tool], shown(argv).replace("v2", "v2-<round>")))
    lines += [
        "",
        "| tool | failing check -> all 8 back, ms | failing check -> exit, ms | whole deploy, ms |",
        "|---|---:|---:|---:|",
    ]
    for tool, values in figures.items():
        lines.append(
            "| %s | %s | %s | %s |"
            % (tools[tool], cell(values["back"]), cell(values["exit"]), cell(values["wall"]))
        )
    back = median("ansible", "back")
    lines += [
        "",
        "Median (min-max).",
        "",
        "Goal: the playbook's failing check -> all 8 back <= %.0f ms: **%s** (%.0f ms)."
        % (1000 * GOAL_BACK, "met" if back <= GOAL_BACK else "NOT met", 1000 * back),
    ]
    if args.fab_from:
        ratio = median("fab", "wall") / median("fab-other", "wall")
        lines.append(
            "- `fab deploy` no slower than at %s: **%s** (whole deploy %.2fx of it)."
            % (commit_of(args.fab_from), "met" if ratio <= 1.0 else "NOT met", ratio)
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "rollback", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
