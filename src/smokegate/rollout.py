"""Fleet operations over SSH: smoke, rolling deploy, rollback and release listing.

The semantics are those of the Ansible playbooks (DESIGN §1.4), over the same ledger and
lock, so a host deployed by one front end can be rolled back by the other. Every host
runs concurrently within a step; each request is one SSH exec (smokegate.remote).
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smokegate.engine import runner, spec
from smokegate.remote import HostError, RemoteHost

MAX_PARALLEL = 32
T = TypeVar("T")
Out = Callable[[str], None]


def parallel(hosts: Sequence[RemoteHost], work: Callable[[RemoteHost], T]) -> list[T | HostError]:
    """``work`` on every host at once; a HostError is returned in its place, not raised."""

    def guarded(host: RemoteHost) -> T | HostError:
        try:
            return work(host)
        except HostError as exc:
            return exc

    if len(hosts) <= 1:
        return [guarded(host) for host in hosts]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(hosts))) as pool:
        return list(pool.map(guarded, hosts))


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
    return "%s@%s" % (user, socket.gethostname())


def request_timeout(checks: list[spec.Check] | None, extra: float = 0) -> float:
    from smokegate.remote import SLACK_SECONDS

    return (runner.worst_case_seconds(checks) + 1 if checks else 0) + extra + SLACK_SECONDS


def smoke_step(document: Any, deadline: float | None = None, **options: Any) -> dict[str, Any]:
    step = {"op": "smoke", "checks": document, **options}
    if deadline is not None:
        step["deadline"] = deadline
    return step


def unreachable_report(host: str, checks: list[spec.Check], error: HostError) -> dict[str, Any]:
    """A host that could not run its checks, in the shape of a report: every check errs."""
    results = [
        {
            "name": check.name,
            "type": check.type,
            "severity": check.severity,
            "status": "error",
            "message": "not run: %s" % error.reason,
            "duration_ms": 0.0,
            "attempts": 0,
        }
        for check in checks
    ]
    return {
        "host": host,
        "ok": False,
        "duration_ms": 0.0,
        "summary": runner.summarize(results),
        "results": results,
        "error": error.reason,
    }


def why_not_ok(report: dict[str, Any]) -> str:
    """'smoke checks failed: name: message; ...' for the checks that stopped the gate."""
    failing = [
        "%s: %s" % (result["name"], result["message"])
        for result in report["results"]
        if result["severity"] == "critical" and result["status"] not in ("pass", "skipped")
    ]
    return "smoke checks failed: " + "; ".join(failing)


def step_error(answer: dict[str, Any]) -> str:
    """What stopped a request: the failed step's error, or the checks that failed."""
    for step in answer["steps"]:
        if not step["ok"]:
            if step["op"] == "smoke" and "report" in step:
                return why_not_ok(step["report"])
            return step.get("error", "%s failed" % step["op"])
    return "failed"


def step_of(answer: dict[str, Any], op: str) -> dict[str, Any] | None:
    return next((step for step in answer["steps"] if step["op"] == op), None)


# --- smoke -------------------------------------------------------------------------------
def smoke(
    hosts: Sequence[RemoteHost],
    document: Any,
    checks: list[spec.Check],
    only: Sequence[str] | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Every host's report, in host order; an unreachable host gets an all-error report."""
    options: dict[str, Any] = {"only": list(only)} if only else {}
    timeout = (deadline if deadline is not None else request_timeout(checks)) + 2

    def run(host: RemoteHost) -> dict[str, Any]:
        answer = host.call(
            {"host": host.name, "steps": [smoke_step(document, deadline, **options)]}, timeout
        )
        step = answer["steps"][0]
        if "report" not in step:
            raise HostError(host.name, "engine", step.get("error", "smoke did not run"))
        return step["report"]

    return [
        unreachable_report(host.name, checks, outcome)
        if isinstance(outcome, HostError)
        else outcome
        for host, outcome in zip(hosts, parallel(hosts, run))
    ]


# --- releases ----------------------------------------------------------------------------
def release_info(hosts: Sequence[RemoteHost], root: str) -> list[dict[str, Any] | HostError]:
    def run(host: RemoteHost) -> dict[str, Any]:
        answer = host.call({"root": root, "steps": [{"op": "info"}]}, request_timeout(None))
        if "info" not in answer:
            raise HostError(host.name, "engine", answer.get("info_error", "no release info"))
        return answer["info"]

    return parallel(hosts, run)


def render_releases(hosts: Sequence[RemoteHost], infos: list[dict[str, Any] | HostError]) -> str:
    """A table: host, release id, state, activated at, and * for current."""
    rows = [("HOST", "RELEASE", "STATE", "ACTIVATED AT", "CURRENT")]
    notes = []
    for host, info in zip(hosts, infos):
        if isinstance(info, HostError):
            rows.append((host.name, "-", "unreachable", "-", ""))
            notes.append(str(info))
            continue
        if not info["releases"]:
            rows.append((host.name, "-", "no releases", "-", ""))
        for entry in info["releases"]:
            rows.append(
                (
                    host.name,
                    entry["id"],
                    entry.get("state", "?") + ("" if entry.get("present", True) else " (gone)"),
                    entry.get("activated_at") or "-",
                    "*" if entry.get("current") else "",
                )
            )
        if info.get("lock"):
            lock = info["lock"]
            notes.append(
                "%s: locked by %s since %s (release %s)"
                % (host.name, lock.get("holder"), lock.get("since"), lock.get("release"))
            )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    return "\n".join(lines + notes)


# --- rollback ----------------------------------------------------------------------------
def rollback_steps(
    release: str | None,
    to: str | None,
    reason: str,
    restart: str | None,
    restart_timeout: float,
    document: Any,
    deadline: float | None,
    unlock: str | None,
    require_target: bool = False,
) -> list[dict[str, Any]]:
    """Switch back, restart if that changed anything, verify if there is a current, unlock."""
    steps: list[dict[str, Any]] = [
        {
            "op": "rollback",
            "release": release,
            "to": to,
            "reason": reason,
            "require_target": require_target,
        }
    ]
    if restart:
        steps.append(
            {"op": "restart", "command": restart, "timeout": restart_timeout, "when": "changed"}
        )
    if document is not None:
        steps.append(smoke_step(document, deadline, when="current", **{"continue": True}))
    if unlock:
        steps.append({"op": "unlock", "release": unlock, "continue": True})
    return steps


@dataclass
class RollbackOutcome:
    host: str
    error: HostError | None = None
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def switch(self) -> dict[str, Any]:
        return step_of(self.answer, "rollback") or {}

    @property
    def report(self) -> dict[str, Any] | None:
        smoke_done = step_of(self.answer, "smoke")
        return smoke_done.get("report") if smoke_done else None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.answer.get("ok"))

    @property
    def switched_back(self) -> bool:
        """The host is on its rollback target (verification may still have failed)."""
        return self.error is None and bool(self.switch.get("ok"))

    def title(self) -> str:
        if not self.switched_back:
            return "NOT ROLLED BACK"
        return "ROLLED BACK" if self.switch.get("changed") else "UNCHANGED"

    def describe(self) -> str:
        if self.error is not None:
            return self.error.reason
        switch = self.switch
        if not switch.get("ok", False):
            return step_error(self.answer)
        if switch.get("changed"):
            moved = "%s -> %s" % (switch.get("from"), switch.get("to") or "(no current: removed)")
            if switch.get("from") == switch.get("to"):
                moved = "stays on %s; %s marked failed" % (
                    switch.get("to"),
                    switch.get("abandoned"),
                )
        else:
            moved = (
                "already on %s, nothing changed" % switch["to"]
                if switch.get("to")
                else "no current release, nothing to roll back"
            )
        restart = step_of(self.answer, "restart")
        if restart and not restart.get("skipped"):
            moved += (
                ", restarted" if restart["ok"] else ", restart FAILED: %s" % restart.get("error")
            )
        report = self.report
        if report is not None:
            moved += ", verified" if report["ok"] else ", verify FAILED: %s" % why_not_ok(report)
        elif not self.answer.get("ok"):
            moved += ": " + step_error(self.answer)
        return moved


def rollback(
    hosts: Sequence[RemoteHost],
    root: str,
    to: str | None = None,
    release: str | None = None,
    reason: str = "rolled back by hand",
    restart: str | None = None,
    restart_timeout: float = 300,
    document: Any = None,
    checks: list[spec.Check] | None = None,
    unlock: str | None = None,
) -> list[RollbackOutcome]:
    steps = rollback_steps(
        release, to, reason, restart, restart_timeout, document, None, unlock, require_target=True
    )
    timeout = request_timeout(checks, restart_timeout if restart else 0)

    def run(host: RemoteHost) -> RollbackOutcome:
        return RollbackOutcome(
            host.name, answer=host.call({"root": root, "host": host.name, "steps": steps}, timeout)
        )

    return [
        RollbackOutcome(host.name, error=outcome) if isinstance(outcome, HostError) else outcome
        for host, outcome in zip(hosts, parallel(hosts, run))
    ]


# --- rolling deploy ------------------------------------------------------------------------
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

    @property
    def name(self) -> str:
        return self.remote.name


@dataclass
class Deploy:
    """One rolling deploy across every host (DESIGN §1.4)."""

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
    out: Out = print
    runs: list[HostRun] = field(init=False)

    def __post_init__(self) -> None:
        self.runs = [HostRun(host) for host in self.hosts]

    def _each(self, runs: list[HostRun], work: Callable[[HostRun], None]) -> None:
        by_host = {id(run.remote): run for run in runs}

        def guarded(host: RemoteHost) -> None:
            run = by_host[id(host)]
            try:
                work(run)
            except HostError as exc:
                run.failure = run.failure or exc.reason
                run.unreachable = run.unreachable or exc.kind == "unreachable"
                self.out("[%s] %s" % (run.name, exc.reason))

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
            directory = "/tmp" if run.remote.sudo else self.root + "/.smokegate"
            upload = "%s/upload-%s-%d.tar.gz" % (directory, self.release, os.getpid())
            run.remote.put(self.artifact, upload)
            done.append("uploaded")
            steps.append(
                {
                    "op": "create",
                    "release": self.release,
                    "archive": upload,
                    "shared": list(self.shared),
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
        answer = run.remote.call(
            {"root": self.root, "host": run.name, "steps": steps},
            request_timeout(self.checks, self.restart_timeout if self.restart else 0),
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
        )
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

    def _finish(self, run: HostRun) -> None:
        run.remote.call(
            {
                "root": self.root,
                "steps": [
                    {"op": "prune", "keep": self.keep, "continue": True},
                    {"op": "unlock", "release": self.release},
                ],
            },
            request_timeout(None),
        )

    def _unlock(self, run: HostRun) -> None:
        run.remote.call(
            {"root": self.root, "steps": [{"op": "unlock", "release": self.release}]},
            request_timeout(None),
        )

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
            for number, batch in enumerate(plan, start=1):
                self.out(
                    "batch %d/%d: %s" % (number, len(plan), " ".join(run.name for run in batch))
                )
                self._each(batch, self._deploy_host)
                if any(not run.verified for run in batch):
                    halted = True
                    break
        if not halted:
            self._each(self.runs, self._finish)
            self.out(
                "smokegate: release %s is live on %s"
                % (self.release, ", ".join(run.name for run in self.runs))
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
        stranded = [
            run.name
            for run in self.runs
            if run.rollback is not None and not run.rollback.switched_back
        ]
        if stranded:
            lines.append(
                "  when %s answer%s again: fab -H %s rollback --root %s --release %s"
                % (
                    ", ".join(stranded),
                    "" if len(stranded) > 1 else "s",
                    ",".join(stranded),
                    self.root,
                    self.release,
                )
            )
        return "\n".join(lines)
