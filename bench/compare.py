"""Time the same 20 smoke checks on N lab hosts five ways, alternating in rounds.

Usage (root: it brings up its own lab with tests/lab/lab; pip installs pytest-testinfra
into this interpreter's environment when it is missing):
    .venv/bin/python bench/compare.py [--hosts 1,4,8,16] [--rounds 3] [--ansible-defaults]
        [--write bench/RESULTS.md]

About 10 minutes with the defaults on 2 CPUs, most of it (a) and (c) at 8 and 16 hosts.
With `--hosts 16,32,64 --rounds 2` (about 25 minutes) it writes the section compare_scale,
whose goals are at 64 hosts: a/b >= 20x and d/e <= 1.3x.

(a) bench/per_check_tasks.yml: one ansible.builtin task per check, plus asserts
(b) ansible-playbook smokegate.core.smoke with the spec file
(c) testinfra over paramiko (bench/testinfra_checks.py), one test per check
(d) fab smoke
(e) the floor: N parallel bare `ssh host python3 -c '<statvfs; getaddrinfo>'`

The spec and the floor are bench/fab_smoke.py's. One lab of max(N) hosts; a run with N hosts
targets web1..webN. Every run starts cold: Ansible keeps its ControlPersist masters within
a run (its normal behaviour) in a fresh ControlPath directory, and the runner closes them
before the next command, so no run reuses another's SSH connection; fab, testinfra and the
floor open their connections per run anyway. Both Ansible columns get the same settings:
forks = N, pipelining on, no fact gathering, ansible_python_interpreter set (no discovery).
At 4 hosts, bench/one_task.yml (one ansible.builtin.ping per host) shows the least any
one-module playbook costs; with --ansible-defaults, (a) and (b) also run there with Ansible's
defaults (no pipelining, implicit fact gathering), as most playbooks run (about a minute more).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fab_smoke import FAB, FLOOR_CODE, LAB, REPO, spec, timed, write_app_env
from results import machine, write_section

BENCH = Path(__file__).resolve().parent
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
DEFAULTS_AT = 4  # hosts at which (p) runs, and (a) and (b) with Ansible's defaults if asked
GOALS = {"a/b": 8.0, "c/d": 4.0, "d/e": 2.0}
SCALE_AT, SCALE_GOALS = 64, {"a/b": 20.0, "d/e": 1.3}  # hosts, and the goals there
SHOWN = ["a", "b", "c", "d", "e"]
COLUMNS = {
    "a": "(a) per-check tasks",
    "b": "(b) smokegate.core.smoke",
    "c": "(c) testinfra",
    "d": "(d) fab smoke",
    "e": "(e) floor",
    "a0": "(a) Ansible defaults",
    "b0": "(b) Ansible defaults",
    "p": "(p) one ping task",
}


def ensure_testinfra() -> None:
    try:
        import testinfra  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "pytest-testinfra"], check=True
        )


def ansible_env(hosts: int, tuned: bool, control_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ANSIBLE_PIPELINING", "ANSIBLE_GATHERING", "ANSIBLE_CONFIG")
    }
    env.update(
        ANSIBLE_FORKS=str(hosts),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    if tuned:
        env.update(ANSIBLE_PIPELINING="1", ANSIBLE_GATHERING="explicit")
    return env


def close_masters(control_dir: Path) -> None:
    """End the ControlPersist masters one Ansible run left, each through its own socket."""
    for socket in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-o", "ControlPath=%s" % socket, "-O", "exit", "master"],
            capture_output=True,
            check=False,
        )


class Fleet:
    """The commands of every column for web1..webN of one lab."""

    def __init__(self, lab: Path, work: Path, count: int) -> None:
        self.count = count
        self.work = work
        hosts = json.loads((lab / "hosts.json").read_text())[:count]
        self.names = [host["name"] for host in hosts]
        self.first_root = Path(hosts[0]["root"])
        lines = (lab / "inventory.ini").read_text().splitlines()
        self.inventory = work / ("inventory-%d.ini" % count)
        self.inventory.write_text("\n".join(lines[: count + 1]) + "\n")
        document = spec(hosts)
        self.spec_file = work / ("smoke-%d.json" % count)
        self.spec_file.write_text(json.dumps(document))
        peers = [{"name": host["name"], "address": host["address"]} for host in hosts[:4]]
        self.peers_file = work / ("peers-%d.json" % count)
        self.peers_file.write_text(
            json.dumps({"bench_peers": peers, "bench_padding": 20 - 12 - 2 * len(peers)})
        )
        self.ssh_config = str(lab / "ssh_config")

    def argv(self, column: str) -> list[list[str]]:
        if column in ("a", "a0"):
            return [
                [
                    ANSIBLE_PLAYBOOK,
                    str(BENCH / "per_check_tasks.yml"),
                    "-i",
                    str(self.inventory),
                    "-e",
                    "@%s" % self.peers_file,
                ]
            ]
        if column == "p":
            return [[ANSIBLE_PLAYBOOK, str(BENCH / "one_task.yml"), "-i", str(self.inventory)]]
        if column in ("b", "b0"):
            return [
                [
                    ANSIBLE_PLAYBOOK,
                    "smokegate.core.smoke",
                    "-i",
                    str(self.inventory),
                    "-e",
                    "smokegate_checks_file=%s" % self.spec_file,
                ]
            ]
        if column == "c":
            return [
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    str(BENCH / "testinfra_checks.py"),
                    "--hosts=%s" % ",".join("paramiko://root@%s" % name for name in self.names),
                    "--ssh-config=%s" % self.ssh_config,
                ]
            ]
        if column == "d":
            return [
                [
                    FAB,
                    "-S",
                    self.ssh_config,
                    "-H",
                    ",".join(self.names),
                    "smoke",
                    "--checks",
                    str(self.spec_file),
                ]
            ]
        return [
            ["ssh", "-F", self.ssh_config, name, "python3", "-c", '"%s"' % FLOOR_CODE]
            for name in self.names
        ]

    def command_line(self, column: str) -> str:
        """The column's command as documented: the first host's, with paths shortened."""
        argv = self.argv(column)[0]
        text = " ".join([Path(argv[0]).name, *argv[1:]])
        text = text.replace(str(self.work) + "/", "").replace(str(BENCH) + "/", "bench/")
        return text.replace(str(REPO) + "/", "")

    def sshd_counts(self) -> tuple[int, int]:
        """SSH sessions and commands web1 accepted so far (its sshd log, LogLevel VERBOSE)."""
        log = (self.first_root / "sshd.log").read_text()
        return log.count("Accepted publickey"), log.count("Starting session: command")

    def run(self, column: str) -> tuple[float, tuple[int, int]]:
        """Milliseconds of one cold run, and the sessions and commands it cost web1."""
        before = self.sshd_counts()
        if column in ("a", "b", "p", "a0", "b0"):
            with tempfile.TemporaryDirectory(prefix="cp-", dir=self.work) as control:
                env = ansible_env(self.count, column in ("a", "b", "p"), Path(control))
                try:
                    elapsed = timed(self.argv(column), env)
                finally:
                    close_masters(Path(control))
        elif column == "c":
            elapsed = timed(
                self.argv(column), dict(os.environ, SMOKEGATE_BENCH_SPEC=str(self.spec_file))
            )
        else:
            elapsed = timed(self.argv(column))
        after = self.sshd_counts()
        return elapsed, (after[0] - before[0], after[1] - before[1])


def columns_at(count: int, ansible_defaults: bool) -> list[str]:
    if count != DEFAULTS_AT:
        return SHOWN
    return [*SHOWN, "p", *(["a0", "b0"] if ansible_defaults else [])]


def cell(values: list[float]) -> str:
    return "%.0f (%.0f-%.0f)" % (statistics.median(values), min(values), max(values))


def ratio(figures: dict[str, list[float]], top: str, bottom: str) -> float:
    return statistics.median(figures[top]) / statistics.median(figures[bottom])


def slope(figures: dict[int, dict[str, list[float]]], counts: list[int], column: str) -> float:
    """Median milliseconds added per host, from the fewest hosts to the most."""
    first, last = counts[0], counts[-1]
    return (
        statistics.median(figures[last][column]) - statistics.median(figures[first][column])
    ) / (last - first)


def report(
    counts: list[int],
    figures: dict[int, dict[str, list[float]]],
    sessions: dict[int, dict[str, tuple[int, int]]],
    fleets: dict[int, Fleet],
    command: str,
) -> str:
    example = fleets[DEFAULTS_AT] if DEFAULTS_AT in fleets else fleets[counts[-1]]
    lines = [
        "## Remote: 20 checks on N lab hosts, five ways",
        "",
        "%s, %d rounds alternating (the order rotates each round), every run cold. "
        "Regenerated by `sudo .venv/bin/python bench/compare.py %s`."
        % (machine(), len(figures[counts[0]]["a"]), command),
        "",
        "Ansible (a) and (b): forks = N, pipelining on (`ANSIBLE_PIPELINING=1`), no fact "
        "gathering (`ANSIBLE_GATHERING=explicit`; smokegate's playbooks set `gather_facts: "
        "false`), `ansible_python_interpreter=/usr/bin/python3`, Ansible's own SSH settings "
        "(ControlPersist within a run, masters closed after it). testinfra: its normal "
        "sequential run over paramiko, no xdist. The spec is bench/fab_smoke.py's: 12 local "
        "checks (mount, disk, env, binary) plus DNS and TCP to 4 peers.",
        "",
        "Commands (N = %d):" % example.count,
        "",
    ]
    for column in SHOWN:
        lines.append("- %s: `%s`" % (COLUMNS[column], example.command_line(column)))
    lines += [
        "",
        "Median wall ms (min-max):",
        "",
        "| N | %s | a/b | c/d | d/e |" % " | ".join(COLUMNS[column] for column in SHOWN),
        "|---:|" + "---:|" * len(SHOWN) + "---:|---:|---:|",
    ]
    for count in counts:
        row = figures[count]
        lines.append(
            "| %d | %s | %.1fx | %.1fx | %.2fx |"
            % (
                count,
                " | ".join(cell(row[column]) for column in SHOWN),
                ratio(row, "a", "b"),
                ratio(row, "c", "d"),
                ratio(row, "d", "e"),
            )
        )
    if DEFAULTS_AT in figures:
        row = figures[DEFAULTS_AT]
        lines += [
            "",
            "At %d hosts, for reference: %s, `%s`, %s ms, a/p %.1fx: (b) takes %.0f%% of a "
            "playbook that runs one module per host (with pipelining, smokegate.core.smoke "
            "runs the engine without Ansible's module wrapper)."
            % (
                DEFAULTS_AT,
                COLUMNS["p"],
                example.command_line("p"),
                cell(row["p"]),
                ratio(row, "a", "p"),
                100 * statistics.median(row["b"]) / statistics.median(row["p"]),
            ),
        ]
        if "a0" in row:
            lines[-1] += (
                " With Ansible's defaults (no pipelining, facts gathered by (a)): (a) %s ms, "
                "(b) %s ms, a/b %.1fx." % (cell(row["a0"]), cell(row["b0"]), ratio(row, "a0", "b0"))
            )
    commands = {column: max(sessions[count][column][1] for count in counts) for column in SHOWN}
    lines += [
        "",
        "Growth, and the SSH sessions / commands one run costs each host (web1's sshd log, "
        "the most over all N):",
        "",
        "| | %s |" % " | ".join(COLUMNS[column] for column in SHOWN),
        "|---|" + "---:|" * len(SHOWN),
        "| sessions / commands per host | %s |"
        % " | ".join(
            "%d / %d" % (max(sessions[count][column][0] for count in counts), commands[column])
            for column in SHOWN
        ),
    ]
    if len(counts) > 1:
        lines.append(
            "| ms per added host, N = %d to %d | %s |"
            % (
                counts[0],
                counts[-1],
                " | ".join("%.0f" % slope(figures, counts, column) for column in SHOWN),
            )
        )
    at = DEFAULTS_AT if DEFAULTS_AT in figures else counts[0]
    goals = [
        (
            "a/b >= %.0fx at %d hosts" % (GOALS["a/b"], at),
            ratio(figures[at], "a", "b") >= GOALS["a/b"],
            "a/b",
        ),
        (
            "c/d >= %.0fx at every N" % GOALS["c/d"],
            all(ratio(figures[count], "c", "d") >= GOALS["c/d"] for count in counts),
            "c/d",
        ),
        (
            "d/e <= %.0fx at every N" % GOALS["d/e"],
            all(ratio(figures[count], "d", "e") <= GOALS["d/e"] for count in counts),
            "d/e",
        ),
    ]
    if SCALE_AT in figures:
        goals += [
            (
                "a/b >= %.0fx at %d hosts" % (SCALE_GOALS["a/b"], SCALE_AT),
                ratio(figures[SCALE_AT], "a", "b") >= SCALE_GOALS["a/b"],
                "a/b",
            ),
            (
                "d/e <= %.1fx at %d hosts" % (SCALE_GOALS["d/e"], SCALE_AT),
                ratio(figures[SCALE_AT], "d", "e") <= SCALE_GOALS["d/e"],
                "d/e",
            ),
        ]
    lines += ["", "Goals:", ""]
    for goal, met, pair in goals:
        top, bottom = pair.split("/")
        lines.append(
            "- %s: **%s** (%s)"
            % (
                goal,
                "met" if met else "NOT met",
                ", ".join(
                    "%.2fx at %d" % (ratio(figures[count], top, bottom), count) for count in counts
                ),
            )
        )
    if len(counts) > 1:
        linear = commands["b"] == 1 and commands["d"] == 1
        linear = linear and slope(figures, counts, "d") <= 2 * slope(figures, counts, "e")
        lines.append(
            "- no per-check SSH term, growth like the floor's: **%s** ((b) runs %d and (d) %d "
            "SSH commands per host, (a) %d, (c) %d; (d) adds %.0f ms per host, the floor %.0f)"
            % (
                "met" if linear else "NOT met",
                commands["b"],
                commands["d"],
                commands["a"],
                commands["c"],
                slope(figures, counts, "d"),
                slope(figures, counts, "e"),
            )
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,4,8,16", help="host counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ansible-defaults",
        action="store_true",
        help="also run (a) and (b) with Ansible's defaults at %d hosts" % DEFAULTS_AT,
    )
    parser.add_argument("--write", type=Path, help="update this results file's compare section")
    args = parser.parse_args()
    counts = sorted({int(count) for count in args.hosts.split(",")})
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    ensure_testinfra()
    figures: dict[int, dict[str, list[float]]] = {
        count: {column: [] for column in columns_at(count, args.ansible_defaults)}
        for count in counts
    }
    sessions: dict[int, dict[str, tuple[int, int]]] = {count: {} for count in counts}
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as directory:
        work = Path(directory)
        lab = work / "lab"
        subprocess.run([str(LAB), "up", str(counts[-1]), str(lab)], check=True, capture_output=True)
        try:
            write_app_env(json.loads((lab / "hosts.json").read_text()))
            fleets = {count: Fleet(lab, work, count) for count in counts}
            for column in ("b", "c", "d", "e"):  # warm caches (bytecode, page cache)
                fleets[counts[0]].run(column)
            for number in range(args.rounds):
                for count in counts:
                    order = columns_at(count, args.ansible_defaults)
                    shift = number % len(order)
                    for column in order[shift:] + order[:shift]:
                        elapsed, cost = fleets[count].run(column)
                        figures[count][column].append(elapsed)
                        sessions[count][column] = cost
                        print(
                            "round %d, %2d hosts, %-26s %8.0f ms"
                            % (number + 1, count, COLUMNS[column], elapsed),
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)
    command = "--hosts %s --rounds %d%s --write bench/RESULTS.md" % (
        ",".join(map(str, counts)),
        args.rounds,
        " --ansible-defaults" if args.ansible_defaults else "",
    )
    text = report(counts, figures, sessions, fleets, command)
    print(text)
    if args.write:
        write_section(args.write, "compare" if counts[-1] <= 16 else "compare_scale", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
