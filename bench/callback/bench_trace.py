"""A callback for bench/: when each play, batch and task starts (and the run ends), and how
many SSH commands and transfers each lab host's sshd has served by then.

    ANSIBLE_CALLBACK_PLUGINS=bench/callback ANSIBLE_CALLBACKS_ENABLED=bench_trace \
    BENCH_TRACE=trace.jsonl BENCH_TRACE_HOSTS=lab/hosts.json ansible-playbook ...

One JSON line per event: {"at": seconds since the epoch, "event": "play" | "task" | "end",
"name": ..., "sshd": {host: [commands, transfers]}}, and {"at", "event": "host", "name"} for
each host the play (batch) runs a task on, the first time it does. The linear strategy starts a task only
once every host has answered the one before, so the counts at a task's start are what the
tasks before it cost. Without BENCH_TRACE_HOSTS no log is read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ansible.plugins.callback import CallbackBase

COMMAND = "Starting session: command"
TRANSFER = "Starting session: subsystem"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_trace"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.trace = Path(os.environ["BENCH_TRACE"])
        hosts_file = os.environ.get("BENCH_TRACE_HOSTS")
        hosts = json.loads(Path(hosts_file).read_text()) if hosts_file else []
        self.logs = {host["name"]: Path(host["root"], "sshd.log") for host in hosts}
        self.batch: set[str] = set()

    def sshd_counts(self) -> dict[str, list[int]]:
        counts = {}
        for name, log in self.logs.items():
            text = log.read_text(errors="replace")
            counts[name] = [text.count(COMMAND), text.count(TRANSFER)]
        return counts

    def record(self, event: str, name: str, counts: bool = True) -> None:
        line = {"at": time.time(), "event": event, "name": name}
        if counts:
            line["sshd"] = self.sshd_counts()
        with self.trace.open("a") as trace:
            trace.write(json.dumps(line) + "\n")

    def v2_playbook_on_play_start(self, play) -> None:  # type: ignore[no-untyped-def]
        self.batch = set()  # called once per batch of a serial play
        self.record("play", play.get_name())

    def v2_runner_on_start(self, host, task) -> None:  # type: ignore[no-untyped-def]
        if host.name not in self.batch:
            self.batch.add(host.name)
            self.record("host", host.name, counts=False)

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:  # type: ignore[no-untyped-def]
        self.record("task", task.get_name())

    def v2_playbook_on_stats(self, stats) -> None:  # type: ignore[no-untyped-def]
        self.record("end", "")
