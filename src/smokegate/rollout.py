"""One rolling deploy across many hosts over SSH, as smokegate.core.rolling_deploy does it.

Lock every host; deploy in batches (upload, unpack, switch, restart, smoke); at the first
failure stop, roll back the hosts in scope, smoke them again and summarize.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shlex
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smokegate.engine import extract, runner, spec
from smokegate.fleet import (
    RollbackOutcome,
    parallel,
    request_timeout,
    rollback_steps,
    smoke_step,
    step_error,
    step_of,
)
from smokegate.remote import SLACK_SECONDS, HostError, RemoteHost

# Unpacking an upload: a fixed allowance plus a rate a slow disk still manages.
UNPACK_SECONDS = 30
UNPACK_BYTES_PER_SECOND = 10 * 1024 * 1024
T = TypeVar("T")
Out = Callable[[str], None]


def printer(stream: Any = None) -> Out:
    """A thread-safe line printer: hosts report concurrently."""
    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            print(line, file=stream, flush=True)

    return out


def holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    # The pid makes two runs of the same release from one account two different holders.
    return "%s@%s:%d" % (user, socket.gethostname(), os.getpid())


def parse_serial(text: str | Sequence[Any]) -> list[int | str]:
    """'1,50%,100%' -> [1, '50%', '100%']; each a host count or a percentage."""
    items = text.split(",") if isinstance(text, str) else list(text)
    batches: list[int | str] = []
    for raw in items:
        item = str(raw).strip()
        try:
            if item.endswith("%"):
                if not 0 < float(item[:-1]) <= 100:
                    raise ValueError
                batches.append(item)
            else:
                if int(item) < 1:
                    raise ValueError
                batches.append(int(item))
        except ValueError:
            raise ValueError(
                "serial: %r is not a host count (1, 2, ...) or a percentage (1%%-100%%)" % item
            ) from None
    if not batches:
        raise ValueError("serial: give at least one batch size, such as 1,50%,100%")
    return batches


def batches(hosts: Sequence[T], serial: Sequence[int | str]) -> list[list[T]]:
    """Split hosts into batches like Ansible's ``serial``: the last size repeats."""
    result: list[list[T]] = []
    position, index = 0, 0
    while position < len(hosts):
        size_spec = serial[min(index, len(serial) - 1)]
        if isinstance(size_spec, str):
            size = max(1, int(len(hosts) * float(size_spec[:-1]) / 100))
        else:
            size = size_spec
        result.append(list(hosts[position : position + size]))
        position += size
        index += 1
    return result


@dataclass
class HostRun:
    """One host's part in a rolling deploy."""

    remote: RemoteHost
    locked: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    verified: bool = False
    failure: str | None = None
    unreachable: bool = False
    rollback: RollbackOutcome | None = None
    upload: str | None = None
    lock_kept: bool = False

    @property
    def name(self) -> str:
        return self.remote.name


@dataclass
class Deploy:
    """One rolling deploy across every host: lock all, deploy in batches, roll back on failure."""

    hosts: Sequence[RemoteHost]
    root: str
    artifact: str
    document: Any
    checks: list[spec.Check]
    release: str
    serial: Sequence[int | str] = (1, "50%", "100%")
    restart: str | None = None
    restart_timeout: float = 300
    keep: int = 5
    scope: str = "all"
    shared: Sequence[str] = ()
    max_unpacked: int | str = extract.DEFAULT_MAX_UNPACKED
    out: Out = print
    # The fab options a by-hand rollback of a stranded host needs (--restart, --sudo, ...).
    recovery_options: Sequence[str] = ()
    runs: list[HostRun] = field(init=False)

    def __post_init__(self) -> None:
        self.runs = [HostRun(host) for host in self.hosts]

    def _each(self, runs: list[HostRun], work: Callable[[HostRun], None]) -> None:
        by_host = {id(run.remote): run for run in runs}

        def guarded(host: RemoteHost) -> None:
            run = by_host[id(host)]
            try:
                work(run)
            except Exception as exc:  # a surprise on one host is that host's failure
                error = (
                    exc
                    if isinstance(exc, HostError)
                    else HostError(
                        run.name, "engine", "internal error: %s: %s" % (type(exc).__name__, exc)
                    )
                )
                run.failure = run.failure or error.reason
                run.unreachable = run.unreachable or error.kind == "unreachable"
                self.out("[%s] %s" % (run.name, error.reason))

        parallel([run.remote for run in runs], guarded)

    # -- stages ---------------------------------------------------------------------------
    def _lock(self, run: HostRun) -> None:
        answer = run.remote.call(
            {
                "root": self.root,
                "steps": [
                    {"op": "lock", "release": self.release, "holder": holder(), "pid": os.getpid()}
                ],
            },
            request_timeout(None),
        )
        if not answer["ok"]:
            run.failure = step_error(answer)
            self.out("[%s] not locked: %s" % (run.name, run.failure))
            return
        run.locked = True
        run.info = answer.get("info", {})

    def _deploy_host(self, run: HostRun) -> None:
        run.started = True
        present = {entry["id"] for entry in run.info.get("releases", []) if entry.get("present")}
        steps: list[dict[str, Any]] = []
        done = []
        if self.release not in present:
            # Under sudo the login user uploads to /tmp; an unguessable name keeps another
            # user from planting the file first.
            directory = "/tmp" if run.remote.sudo else self.root + "/.smokegate"
            upload = "%s/upload-%s-%s.tar.gz" % (directory, self.release, secrets.token_hex(8))
            run.upload = upload
            run.remote.put(self.artifact, upload)
            done.append("uploaded")
            steps.append(
                {
                    "op": "create",
                    "release": self.release,
                    "archive": upload,
                    "shared": list(self.shared),
                    "max_unpacked": self.max_unpacked,
                }
            )
        steps.append({"op": "activate", "release": self.release})
        if self.restart:
            steps.append(
                {
                    "op": "restart",
                    "command": self.restart,
                    "timeout": self.restart_timeout,
                    "when": "changed",
                }
            )
        steps.append(smoke_step(self.document))
        steps.append({"op": "good", "release": self.release})
        budget = self._budget(with_upload=run.upload is not None)
        answer = run.remote.call(
            {"root": self.root, "host": run.name, "steps": steps, "budget": budget},
            budget + SLACK_SECONDS,
        )
        for step in answer["steps"]:
            if step["ok"] and step.get("changed"):
                done.append(
                    {"create": "unpacked", "activate": "switched", "restart": "restarted"}.get(
                        step["op"], ""
                    )
                )
        smoke_done = step_of(answer, "smoke")
        if smoke_done and "report" in smoke_done:
            report = smoke_done["report"]
            done.append(
                "smoke %s (%d/%d passed)"
                % (
                    "ok" if report["ok"] else "FAILED",
                    report["summary"]["passed"],
                    report["summary"]["total"],
                )
            )
        self.out("[%s] %s" % (run.name, ", ".join(word for word in done if word)))
        if answer["ok"]:
            run.verified = True
        else:
            run.failure = step_error(answer)
            self.out("[%s] FAILED: %s" % (run.name, run.failure))

    def _budget(self, with_upload: bool) -> float:
        """Seconds a host's deploy request may take: unpack, restart, smoke."""
        unpack = (
            UNPACK_SECONDS + os.path.getsize(self.artifact) / UNPACK_BYTES_PER_SECOND
            if with_upload
            else 0
        )
        restart = self.restart_timeout if self.restart else 0
        # +1: the run's own deadline margin; +5: switching, marking and interpreter start.
        return unpack + restart + runner.worst_case_seconds(self.checks) + 6

    def _roll_back(self, run: HostRun) -> None:
        steps = rollback_steps(
            self.release,
            None,
            "failed the smoke gate of its rolling deploy",
            self.restart,
            self.restart_timeout,
            self.document,
            None,
            self.release,
            holder(),
        )
        if run.upload:  # an upload the failed request may not have unpacked (and removed)
            steps.insert(0, {"op": "discard", "path": run.upload, "continue": True})
        try:
            answer = run.remote.call(
                {"root": self.root, "host": run.name, "steps": steps},
                request_timeout(self.checks, self.restart_timeout if self.restart else 0),
            )
        except HostError as exc:
            run.rollback = RollbackOutcome(run.name, error=exc)
        else:
            run.rollback = RollbackOutcome(run.name, answer=answer)
        self.out("[%s] %s: %s" % (run.name, run.rollback.title().lower(), run.rollback.describe()))

    def _release_lock(self, run: HostRun, steps: list[dict[str, Any]]) -> None:
        """Run the closing steps (ending with unlock); note a lock that stayed held."""
        try:
            answer = run.remote.call({"root": self.root, "steps": steps}, request_timeout(None))
        except HostError as exc:
            run.lock_kept = True
            self.out("[%s] lock not released: %s" % (run.name, exc.reason))
            return
        for step in answer["steps"]:
            if not step["ok"]:
                self.out("[%s] %s failed: %s" % (run.name, step["op"], step.get("error")))
        unlocked = step_of(answer, "unlock")
        if unlocked is None or not unlocked["ok"]:
            run.lock_kept = True

    def _finish(self, run: HostRun) -> None:
        self._release_lock(
            run,
            [
                {"op": "prune", "keep": self.keep, "continue": True},
                {"op": "unlock", "release": self.release, "holder": holder()},
            ],
        )

    def _unlock(self, run: HostRun) -> None:
        self._release_lock(run, [{"op": "unlock", "release": self.release, "holder": holder()}])

    # -- the run --------------------------------------------------------------------------
    def run(self) -> bool:
        """Deploy; on any failure roll back the hosts in scope. True when live everywhere."""
        plan = batches(self.runs, self.serial)
        self.out(
            "smokegate: release %s to %d hosts in %d batches: %s"
            % (
                self.release,
                len(self.runs),
                len(plan),
                " | ".join(" ".join(run.name for run in batch) for batch in plan),
            )
        )
        self._each(self.runs, self._lock)
        halted = any(not run.locked for run in self.runs)
        if halted:
            self.out("smokegate: not every host could be locked; no host was changed")
        else:
            try:
                for number, batch in enumerate(plan, start=1):
                    self.out(
                        "batch %d/%d: %s" % (number, len(plan), " ".join(run.name for run in batch))
                    )
                    self._each(batch, self._deploy_host)
                    if any(not run.verified for run in batch):
                        halted = True
                        break
            except KeyboardInterrupt:  # an operator's stop is a failed deploy: put hosts back
                halted = True
                self.out("smokegate: interrupted; rolling back")
                for run in self.runs:
                    if run.started and not run.verified and run.failure is None:
                        run.failure = "interrupted"
        if not halted:
            self._each(self.runs, self._finish)
            self.out(
                "smokegate: release %s is live on %s"
                % (self.release, ", ".join(run.name for run in self.runs))
            )
            kept = [run.name for run in self.runs if run.lock_kept]
            if kept:
                self.out(
                    "smokegate: the deploy lock is still held on %s; remove "
                    "%s/.smokegate/lock there" % (", ".join(kept), self.root)
                )
            return True

        failed = [run for run in self.runs if run.failure is not None]
        # A host that dropped its connection is tried again: a blip must not leave it on a
        # release that failed elsewhere.
        scope = [run for run in self.runs if run.started and (self.scope == "all" or run in failed)]
        if scope:
            self.out("smokegate: rolling back %s" % ", ".join(run.name for run in scope))
            self._each(scope, self._roll_back)
        rest = [run for run in self.runs if run.locked and run not in scope and not run.unreachable]
        self._each(rest, self._unlock)
        self.out(self.summary())
        return False

    def summary(self) -> str:
        lines = ["smokegate: release %s did not go out" % self.release]
        for run in self.runs:
            if run.unreachable:
                lines.append("  UNREACHABLE %s: %s" % (run.name, run.failure))
            elif run.failure is not None and not run.locked:
                lines.append("  NOT LOCKED %s: %s" % (run.name, run.failure))
            elif run.failure is not None and run.started:
                lines.append("  FAILED %s: %s" % (run.name, run.failure))
        for run in self.runs:
            if run.rollback is not None:
                lines.append(
                    "  %s %s: %s" % (run.rollback.title(), run.name, run.rollback.describe())
                )
            elif run.verified:
                lines.append(
                    "  KEPT %s: stays on %s (rollback scope: failed)" % (run.name, self.release)
                )
            elif not run.started and run.locked:
                lines.append("  UNTOUCHED %s: its batch never started" % run.name)
        locked = [run.name for run in self.runs if run.lock_kept]
        if locked:
            lines.append(
                "  STILL LOCKED %s: remove %s/.smokegate/lock there once no deploy is running"
                % (", ".join(locked), self.root)
            )
        stranded = [
            run.name
            for run in self.runs
            if run.rollback is not None and not run.rollback.switched_back
        ]
        if stranded:
            command = [
                "fab",
                "-H",
                ",".join(stranded),
                "rollback",
                "--root",
                self.root,
                "--release",
                self.release,
                *self.recovery_options,
            ]
            lines.append(
                "  when %s answer%s again: %s"
                % (", ".join(stranded), "" if len(stranded) > 1 else "s", shlex.join(command))
            )
        return "\n".join(lines)
