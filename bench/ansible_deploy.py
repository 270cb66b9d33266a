"""Time `ansible-playbook smokegate.core.rolling_deploy` on 8 lab hosts against a floor built
in the same run, alternating in rounds, and count the SSH commands each host serves.

Usage (root: it brings up its own lab with tests/lab/lab):
    .venv/bin/python bench/ansible_deploy.py [--rounds 7] [--write bench/RESULTS.md]

(r) the rolling deploy: batches 1, 50%, 100% (web1 | web2-web5 | web6-web8), the 20 checks
    of bench/fab_smoke.py, restart command /bin/true;
(f) the floor, bench/floor_deploy.yml: the same batches, and per host one
    ansible.builtin.copy of the artifact and one ansible.builtin.command that unpacks it and
    switches the current symlink.

Both get compare.py's Ansible settings: forks 8, pipelining on, no fact gathering, every run
cold (a fresh ControlPath directory, its masters closed after the run). Every run deploys a
new release of the same artifact. After the rounds, one more run of each with
bench/callback/bench_trace.py gives each play's (each batch's) time and the SSH commands and
transfers (sftp or scp sessions) each host's sshd served in it. Goal: (r) / (f) <= 1.5x.
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

from compare import ANSIBLE_PLAYBOOK, ansible_env, close_masters
from fab_smoke import LAB, REPO, spec, timed, write_app_env
from results import machine, write_section
from rollback import artifact

BENCH = Path(__file__).resolve().parent
HOSTS = 8
GOAL_RATIO = 1.5
TOOLS = {"deploy": "(r) smokegate.core.rolling_deploy", "floor": "(f) floor"}
ROOTS = {"deploy": "/srv/app-deploy", "floor": "/srv/app-floor"}
RESTART = "/bin/true"


class Deploys:
    """Both playbooks against one lab, each on its own deploy root."""

    def __init__(self, lab: Path, work: Path) -> None:
        self.lab = lab
        self.work = work
        self.hosts = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.hosts)
        for host in self.hosts:
            Path(host["root"], ROOTS["floor"].lstrip("/"), "releases").mkdir(parents=True)
        self.spec_file = work / "smoke.json"
        self.spec_file.write_text(json.dumps(spec(self.hosts)))

    def argv(self, tool: str, release: str) -> list[str]:
        archive = artifact(
            self.work / ("%s.tar.gz" % release), release, [host["name"] for host in self.hosts]
        )
        if tool == "floor":
            playbook = str(BENCH / "floor_deploy.yml")
            settings = {"floor_root": ROOTS[tool], "floor_artifact": archive}
            settings["floor_release"] = release
        else:
            playbook = "smokegate.core.rolling_deploy"
            settings = {
                "smokegate_deploy_root": ROOTS[tool],
                "smokegate_artifact": archive,
                "smokegate_release": release,
                "smokegate_checks_file": self.spec_file,
                "smokegate_restart_command": RESTART,
            }
        return [
            ANSIBLE_PLAYBOOK,
            playbook,
            "-i",
            str(self.lab / "inventory.ini"),
            *(item for name, value in settings.items() for item in ("-e", "%s=%s" % (name, value))),
        ]

    def run(self, tool: str, release: str, trace: Path | None = None) -> float:
        """Milliseconds of one cold run (with ``trace``, traced by bench_trace)."""
        with tempfile.TemporaryDirectory(prefix="cp-", dir=self.work) as control:
            env = ansible_env(HOSTS, True, Path(control))
            if trace is not None:
                env.update(
                    ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback"),
                    ANSIBLE_CALLBACKS_ENABLED="bench_trace",
                    BENCH_TRACE=str(trace),
                    BENCH_TRACE_HOSTS=str(self.lab / "hosts.json"),
                )
            try:
                return timed([self.argv(tool, release)], env)
            finally:
                close_masters(Path(control))

    def shown(self, tool: str) -> str:
        """The tool's command as documented, for round N, with paths shortened."""
        argv = self.argv(tool, "r1")
        text = " ".join([Path(argv[0]).name, *argv[1:]])
        text = text.replace(str(self.work) + "/", "").replace(str(BENCH) + "/", "bench/")
        text = text.replace("r1.tar.gz", "r<N>.tar.gz").replace("release=r1", "release=r<N>")
        return text.replace(str(REPO) + "/", "")


def plays(trace: Path) -> list[dict]:
    """Each play (each batch of a serial play) of a traced run: its name, hosts, ms, and the
    SSH commands and transfers each of its hosts served while it ran."""
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    found: list[dict] = []
    for event in events:
        if event["event"] in ("play", "end") and found:
            last = found[-1]
            last["ms"] = 1000 * (event["at"] - last["at"])
            last["cost"] = {
                host: [now - then for now, then in zip(event["sshd"][host], last["sshd"][host])]
                for host in last["hosts"]
            }
        if event["event"] == "play":
            found.append(dict(event, hosts=[]))
        elif event["event"] == "host":
            found[-1]["hosts"].append(event["name"])
    return found


def spread(values: list[int]) -> str:
    return "%d" % values[0] if min(values) == max(values) else "%d-%d" % (min(values), max(values))


def batch_names(hosts: list[str], everyone: int) -> str:
    if len(hosts) == everyone:
        return "all %d" % everyone
    return hosts[0] if len(hosts) == 1 else "%s-%s" % (hosts[0], hosts[-1])


def cell(values: list[float]) -> str:
    return "%.0f (%.0f-%.0f)" % (statistics.median(values), min(values), max(values))


def play_rows(tool: str, traced: list[dict]) -> list[str]:
    rows = []
    for play in traced:
        costs = list(play["cost"].values())
        rows.append(
            "| %s | %s, %s | %.0f | %s | %s |"
            % (
                TOOLS[tool],
                play["name"].replace("|", "\\|"),
                batch_names(play["hosts"], HOSTS),
                play["ms"],
                spread([cost[0] for cost in costs]),
                spread([cost[1] for cost in costs]),
            )
        )
    return rows


def per_host_totals(traced: list[dict]) -> tuple[str, str]:
    totals: dict[str, list[int]] = {}
    for play in traced:
        for host, cost in play["cost"].items():
            total = totals.setdefault(host, [0, 0])
            total[0] += cost[0]
            total[1] += cost[1]
    values = list(totals.values())
    return spread([value[0] for value in values]), spread([value[1] for value in values])


def report(
    rounds: int,
    figures: dict[str, list[float]],
    traces: dict[str, list[dict]],
    commands: dict[str, str],
) -> str:
    ratio = statistics.median(figures["deploy"]) / statistics.median(figures["floor"])
    lines = [
        "## Ansible: `smokegate.core.rolling_deploy` on 8 lab hosts vs a copy-and-switch floor",
        "",
        "%s, %d rounds alternating (the order swaps each round), every run cold. Regenerated "
        "by `sudo .venv/bin/python bench/ansible_deploy.py --rounds %d --write bench/RESULTS.md`."
        % (machine(), rounds, rounds),
        "",
        "Batches 1, 50%, 100% (web1 | web2-web5 | web6-web8). (r) gates every batch on "
        "bench/fab_smoke.py's 20 checks, restart command `/bin/true`; (f), "
        "bench/floor_deploy.yml, copies the artifact (`ansible.builtin.copy`) and unpacks it "
        "and switches `current` (`ansible.builtin.command`) on each host of each batch. Both: forks 8, pipelining on, "
        "no fact gathering, `ansible_python_interpreter` set, fresh SSH connections per run "
        "(compare.py's settings); each run deploys a new release.",
        "",
        "Commands:",
        "",
    ]
    lines += ["- %s: `%s`" % (TOOLS[tool], command) for tool, command in commands.items()]
    lines += [
        "",
        "| command | median wall ms (min-max) |",
        "|---|---:|",
    ]
    lines += ["| %s | %s |" % (TOOLS[tool], cell(figures[tool])) for tool in TOOLS]
    lines += [
        "",
        "Goal: (r) / (f) <= %.1fx: **%s** (%.2fx)."
        % (GOAL_RATIO, "met" if ratio <= GOAL_RATIO else "NOT met", ratio),
        "",
        "One more run of each with bench/callback/bench_trace.py: each play's (each batch's) "
        "time, and the SSH commands (`Starting session: command`) and transfers (sftp or scp "
        "sessions) each of its hosts' sshd logged while it ran:",
        "",
        "| | play, hosts | ms | SSH commands per host | transfers per host |",
        "|---|---|---:|---:|---:|",
    ]
    for tool in TOOLS:
        lines += play_rows(tool, traces[tool])
    lines += ["", "Per host, the whole run:", ""]
    for tool in TOOLS:
        commands_per_host, transfers_per_host = per_host_totals(traces[tool])
        lines.append(
            "- %s: SSH commands %s, transfers %s"
            % (TOOLS[tool], commands_per_host, transfers_per_host)
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", type=Path, help="update this results file's section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    figures: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    traces: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="smokegate-bench-") as directory:
        work = Path(directory)
        lab = work / "lab"
        subprocess.run([str(LAB), "up", str(HOSTS), str(lab)], check=True, capture_output=True)
        try:
            deploys = Deploys(lab, work)
            for tool in TOOLS:  # warm caches; the deploy gets a previous release
                deploys.run(tool, "r0")
            for number in range(1, args.rounds + 1):
                order = list(TOOLS) if number % 2 else list(reversed(TOOLS))
                for tool in order:
                    elapsed = deploys.run(tool, "r%d" % number)
                    figures[tool].append(elapsed)
                    print(
                        "round %d, %-36s %8.0f ms" % (number, TOOLS[tool], elapsed),
                        file=sys.stderr,
                        flush=True,
                    )
            for tool in TOOLS:
                trace = work / ("trace-%s.jsonl" % tool)
                deploys.run(tool, "r%d" % (args.rounds + 1), trace=trace)
                traces[tool] = plays(trace)
            commands = {tool: deploys.shown(tool) for tool in TOOLS}
        finally:
            subprocess.run([str(LAB), "down", str(lab)], capture_output=True, check=False)
    text = report(args.rounds, figures, traces, commands)
    print(text)
    if args.write:
        write_section(args.write, "ansible_deploy", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
