"""Operations on many hosts at once over SSH: smoke, rollback, and release listing.

Every host runs concurrently; each request is one SSH exec (smokegate.remote). The
semantics and the ledger are those of the Ansible playbooks, so a host handled by one
front end can be handled by the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smokegate.engine import runner, spec
from smokegate.remote import SLACK_SECONDS, HostError, RemoteHost

MAX_PARALLEL = 32
T = TypeVar("T")


def parallel(hosts: Sequence[RemoteHost], work: Callable[[RemoteHost], T]) -> list[T | HostError]:
    """``work`` on every host at once; a HostError is returned in its place, not raised."""

    def guarded(host: RemoteHost) -> T | HostError:
        try:
            return work(host)
        except HostError as exc:
            return exc
        except Exception as exc:  # one host's surprise must not abandon the others mid-deploy
            return HostError(
                host.name, "engine", "internal error: %s: %s" % (type(exc).__name__, exc)
            )

    if len(hosts) <= 1:
        return [guarded(host) for host in hosts]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(hosts))) as pool:
        return list(pool.map(guarded, hosts))


def request_timeout(checks: list[spec.Check] | None, extra: float = 0) -> float:
    """How long to wait for a request: its checks' worst case, ``extra``, and slack."""
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
    timeout = deadline + SLACK_SECONDS if deadline is not None else request_timeout(checks)

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
    holder: str | None = None,
) -> list[dict[str, Any]]:
    """Switch back, restart if that changed anything, verify if there is a current, unlock
    (the lock of release ``unlock``, and only ``holder``'s when given)."""
    steps: list[dict[str, Any]] = [
        {"op": "rollback", "release": release, "to": to, "reason": reason}
    ]
    if restart:
        # A failed restart must not keep the lock held: the steps after it still run.
        steps.append(
            {
                "op": "restart",
                "command": restart,
                "timeout": restart_timeout,
                "when": ["changed", "current"],
                "continue": True,
            }
        )
    if document is not None:
        steps.append(smoke_step(document, deadline, when="current", **{"continue": True}))
    if unlock:
        steps.append({"op": "unlock", "release": unlock, "holder": holder, "continue": True})
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
    steps = rollback_steps(release, to, reason, restart, restart_timeout, document, None, unlock)
    timeout = request_timeout(checks, restart_timeout if restart else 0)

    def run(host: RemoteHost) -> RollbackOutcome:
        return RollbackOutcome(
            host.name, answer=host.call({"root": root, "host": host.name, "steps": steps}, timeout)
        )

    return [
        RollbackOutcome(host.name, error=outcome) if isinstance(outcome, HostError) else outcome
        for host, outcome in zip(hosts, parallel(hosts, run))
    ]
