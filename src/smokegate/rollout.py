"""One rolling deploy across many hosts over SSH, as smokegate.core.rolling_deploy does it.

Lock every host; deploy in batches (upload, then one request: unpack, switch, restart,
smoke, record good); at the first failure stop, roll back the hosts in scope (one request
each: switch back, restart, smoke, unlock) and summarize. The requests, what counts as a
pass and the summary's lines are the engine's protocol, which the Ansible playbooks share.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ansible_collections.smokegate.core.plugins.module_utils.protocol import Answer
from smokegate.engine import protocol, runner, spec
from smokegate.fleet import PARALLEL, parallel, request_timeout
from smokegate.remote import SLACK_SECONDS, HostError, RemoteHost

# Unpacking an upload: a fixed allowance plus a rate a slow disk still manages.
UNPACK_SECONDS = 30
UNPACK_BYTES_PER_SECOND = 10 * 1024 * 1024
T = TypeVar("T")
Out = Callable[[str], None]
LIVE, TOLERATED, HALTED = "live", "tolerated", "halted"


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
    """One host's part in a rolling deploy: the answers it gave."""

    remote: RemoteHost
    locked: Answer | None = None
    deployed: list[Answer] = field(default_factory=list)
    started: bool = False  # its batch began (the upload may not have finished)
    rolled_back: Answer | None = None
    upload: str | None = None
    lock_kept: bool = False
    tolerated: bool = False

    @property
    def name(self) -> str:
        return self.remote.name

    def record(self) -> protocol.HostRecord:
        deployed = self.deployed
        if self.started and not deployed:  # stopped mid-upload (Ctrl-C)
            deployed = [Answer.lost("interrupted")]
        return protocol.HostRecord(
            self.name,
            self.locked,
            tuple(deployed),
            self.rolled_back,
            self.lock_kept,
            self.tolerated,
        )

    @property
    def already_failing(self) -> list[str]:
        """The checks that failed on the release this host ran before the deploy."""
        found = self.locked.step(protocol.BASELINE) if self.locked else None
        return protocol.preexisting(found.get("report") if found else None)

    @property
    def unreachable(self) -> bool:
        return any(answer.unreachable for answer in [self.locked, *self.deployed] if answer)


@dataclass
class Deploy:
    """One rolling deploy across every host: lock all, deploy in batches, roll back on failure."""

    hosts: Sequence[RemoteHost]
    root: str
    artifact: str
    document: Any
    checks: list[spec.Check]
    release: str
    serial: Sequence[int | str] = protocol.SERIAL
    restart: str | None = None
    restart_timeout: float = protocol.RESTART_TIMEOUT
    keep: int = protocol.KEEP_RELEASES
    scope: str = "all"
    shared: Sequence[str] = ()
    max_unpacked: int | str = protocol.MAX_UNPACKED
    bake: float = protocol.BAKE_SECONDS
    bake_interval: float = protocol.BAKE_INTERVAL
    max_fail: int = 0  # failed hosts tolerated (each rolled back alone); never on the canary
    baseline: str = protocol.BASELINE_DEFAULT
    max_parallel: int = PARALLEL  # hosts worked on at once
    out: Out = print
    # The fab options a by-hand rollback of a stranded host needs (--restart, --sudo, ...).
    recovery_options: Sequence[str] = ()
    runs: list[HostRun] = field(init=False)

    def __post_init__(self) -> None:
        self.runs = [HostRun(host) for host in self.hosts]
        self.holder = holder()

    def _each(
        self,
        runs: list[HostRun],
        work: Callable[[HostRun], Answer],
        keep: Callable[[HostRun, Answer], None],
    ) -> None:
        """``work`` on every host at once; what it answers (or why it could not) is kept."""
        by_host = {id(run.remote): run for run in runs}

        def guarded(host: RemoteHost) -> None:
            run = by_host[id(host)]
            try:
                answer = work(run)
            except HostError as exc:
                answer = Answer.lost(exc.reason, unreachable=exc.kind == "unreachable")
                self.out("[%s] %s" % (run.name, exc.reason))
            except Exception as exc:  # a surprise on one host is that host's failure
                answer = Answer.lost("internal error: %s: %s" % (type(exc).__name__, exc))
                self.out("[%s] %s" % (run.name, answer.error))
            keep(run, answer)

        parallel([run.remote for run in runs], guarded, self.max_parallel)

    def _call(
        self, run: HostRun, steps: list[dict[str, Any]], timeout: float, **options: Any
    ) -> Answer:
        request = protocol.request(steps, root=self.root, host=run.name, **options)
        return Answer(run.remote.call(request, timeout))

    # -- stages ---------------------------------------------------------------------------
    def _lock(self, run: HostRun) -> Answer:
        steps = [protocol.lock(self.release, self.holder, os.getpid())]
        if self.baseline != "off":  # in the lock's own request: no exec more per host
            steps.append(protocol.baseline(self.document))
        answer = self._call(run, steps, request_timeout(self.checks))
        if not answer.ok:
            self.out("[%s] not locked: %s" % (run.name, answer.error))
        return answer

    def _deploy_host(self, run: HostRun) -> Answer:
        run.started = True
        present = {
            entry["id"] for entry in run.locked.info.get("releases", []) if entry.get("present")
        }
        done = []
        if self.release not in present:
            # Under sudo the login user uploads to /tmp, where the unguessable name keeps
            # another user from planting the file first.
            directory = (
                "/tmp" if run.remote.sudo else "%s/%s" % (self.root, protocol.UPLOAD_DIRECTORY)
            )
            run.upload = protocol.upload_path(directory, self.release)
            run.remote.put(self.artifact, run.upload)
            done.append("uploaded")
        steps = protocol.deploy_steps(
            self.release,
            upload=run.upload,
            shared=self.shared,
            max_unpacked=self.max_unpacked,
            restart_command=self.restart,
            restart_timeout=self.restart_timeout,
            document=self.document,
            bake_seconds=self.bake,
            bake_interval=self.bake_interval,
            preexisting=run.already_failing if self.baseline == "ignore" else None,
        )
        budget = self._budget(with_upload=run.upload is not None)
        answer = self._call(run, steps, budget + SLACK_SECONDS, budget=budget)
        done.append(answer.progress())
        self.out("[%s] %s" % (run.name, ", ".join(done)))
        if not answer.ok:
            self.out("[%s] FAILED: %s" % (run.name, answer.error))
        return answer

    def _budget(self, with_upload: bool) -> float:
        """Seconds a host's deploy request may take: unpack, restart, smoke."""
        unpack = (
            UNPACK_SECONDS + os.path.getsize(self.artifact) / UNPACK_BYTES_PER_SECOND
            if with_upload
            else 0
        )
        restart = self.restart_timeout if self.restart else 0
        rounds = runner.worst_case_seconds(self.checks) + 1
        # A bake's last round may start just before its end: one more round's worst case.
        bake = self.bake + rounds if self.bake else 0
        # +1: the run's own deadline margin; +5: switching, marking and interpreter start.
        return unpack + restart + rounds + bake + 5

    def _roll_back(self, run: HostRun) -> Answer:
        steps = protocol.rollback_steps(
            self.release,
            reason=protocol.DEPLOY_FAILED,
            restart_command=self.restart,
            restart_timeout=self.restart_timeout,
            document=self.document,
            # A host rolled back within the failure budget keeps the run's lock until its end.
            unlock_release=None if run.tolerated else self.release,
            holder=self.holder,
            # An upload the failed request may not have unpacked (and removed).
            upload=run.upload,
        )
        timeout = request_timeout(self.checks, self.restart_timeout if self.restart else 0)
        answer = self._call(run, steps, timeout)
        outcome = protocol.rollback_outcome(run.name, answer)
        self.out("[%s] %s: %s" % (run.name, outcome.label.lower(), outcome.reason))
        return answer

    def _close(self, run: HostRun, steps: list[dict[str, Any]]) -> Answer:
        """Run the closing steps (ending with unlock); note a lock that stayed held."""
        answer = self._call(run, steps, request_timeout(None))
        for step in answer.steps:
            if not step["ok"]:
                self.out("[%s] %s failed: %s" % (run.name, step["stage"], step.get("error")))
        return answer

    def _keep_close(self, run: HostRun, answer: Answer) -> None:
        unlocked = answer.step(protocol.UNLOCK)
        if unlocked is None or not unlocked["ok"]:
            run.lock_kept = True
            if not answer.reached:
                self.out("[%s] lock not released: %s" % (run.name, answer.error))

    # -- the run --------------------------------------------------------------------------
    def run(self) -> str:
        """Deploy; on any failure beyond the budget roll back the hosts in scope.

        Returns LIVE (out everywhere), TOLERATED (out, except hosts rolled back within the
        failure budget) or HALTED (refused or rolled back).
        """
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
        self._each(self.runs, self._lock, lambda run, answer: setattr(run, "locked", answer))
        if any(not run.locked.ok for run in self.runs):
            self.out("smokegate: not every host could be locked; no host was changed")
            return self._halt()
        if self.baseline == "refuse" and any(run.already_failing for run in self.runs):
            reports = [
                (run.name, run.locked.step(protocol.BASELINE)["report"])
                for run in self.runs
                if run.already_failing
            ]
            self._release_locks(self.runs)
            self.out("\n".join(protocol.baseline_refusal(self.release, reports)))
            return HALTED
        try:
            for number, batch in enumerate(plan, start=1):
                self.out(
                    "batch %d/%d: %s" % (number, len(plan), " ".join(run.name for run in batch))
                )
                self._each(
                    batch, self._deploy_host, lambda run, answer: run.deployed.append(answer)
                )
                failed = [run for run in batch if not run.record().verified]
                if not failed:
                    continue
                failures = sum(1 for run in self.runs if run.started and not run.record().verified)
                if number == 1 or failures > self.max_fail:  # the canary is never tolerated
                    return self._halt()
                for run in failed:
                    run.tolerated = True
                self.out(
                    "smokegate: %d of %d failures the budget tolerates; rolling back %s alone"
                    % (failures, self.max_fail, ", ".join(run.name for run in failed))
                )
                self._each(
                    failed, self._roll_back, lambda run, answer: setattr(run, "rolled_back", answer)
                )
        except KeyboardInterrupt:  # an operator's stop is a failed deploy: put hosts back
            self.out("smokegate: interrupted; rolling back")
            return self._halt()
        finish = protocol.finish_steps(self.release, self.holder, self.keep)
        self._each(self.runs, lambda run: self._close(run, finish), self._keep_close)
        records = [run.record() for run in self.runs]
        self.out("\n".join(protocol.live_summary(self.release, records)))
        kept = [run.name for run in self.runs if run.lock_kept]
        if kept:
            self.out(
                "smokegate: the deploy lock is still held on %s; remove "
                "%s/.smokegate/lock there" % (", ".join(kept), self.root)
            )
        return TOLERATED if any(run.tolerated for run in self.runs) else LIVE

    def _release_locks(self, runs: list[HostRun]) -> None:
        unlock = [protocol.unlock(self.release, self.holder)]
        self._each(runs, lambda run: self._close(run, unlock), self._keep_close)

    def _halt(self) -> str:
        """Roll back the hosts in scope, release every lock this run holds, summarize."""
        # A host that dropped its connection is tried again: a blip must not leave it on a
        # release that failed elsewhere. A host rolled back within the budget is back already.
        scope = [
            run
            for run in self.runs
            if run.started
            and not run.tolerated
            and (self.scope == "all" or not run.record().verified)
        ]
        if scope:
            self.out("smokegate: rolling back %s" % ", ".join(run.name for run in scope))
            self._each(
                scope, self._roll_back, lambda run, answer: setattr(run, "rolled_back", answer)
            )
        self._release_locks(
            [
                run
                for run in self.runs
                if run.locked is not None
                and run.locked.ok
                and run not in scope
                and not run.unreachable
            ]
        )
        self.out(self.summary())
        return HALTED

    def summary(self) -> str:
        def recovery(stranded: list[str]) -> str:
            return shlex.join(
                [
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
            )

        records = [run.record() for run in self.runs]
        return "\n".join(protocol.summary(self.release, records, self.root, self.scope, recovery))
