"""Operations on many hosts at once over SSH: smoke, rollback, and release listing.

Every host runs concurrently; each request is one SSH exec (smokegate.remote), built and
read with the engine's protocol, as the Ansible front end builds and reads its own. So a
host handled by one front end can be handled by the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ansible_collections.smokegate.core.plugins.module_utils.protocol import Answer, Outcome
from smokegate.engine import protocol, runner, spec
from smokegate.remote import SLACK_SECONDS, HostError, RemoteHost

# Hosts worked on at once (fab --parallel). Each opens an SSH connection whose handshake
# and encryption run in this process; bench/fab_parallel.py measures the choice.
PARALLEL = 32
T = TypeVar("T")


def parallel(
    hosts: Sequence[RemoteHost], work: Callable[[RemoteHost], T], limit: int = PARALLEL
) -> list[T | HostError]:
    """``work`` on every host, ``limit`` at a time; a HostError is returned in its place,
    not raised."""

    def guarded(host: RemoteHost) -> T | HostError:
        try:
            return work(host)
        except HostError as exc:
            return exc
        except Exception as exc:  # one host's surprise must not abandon the others mid-deploy
            return HostError(
                host.name, "engine", "internal error: %s: %s" % (type(exc).__name__, exc)
            )

    if len(hosts) <= 1 or limit <= 1:
        return [guarded(host) for host in hosts]
    with ThreadPoolExecutor(max_workers=min(limit, len(hosts))) as pool:
        return list(pool.map(guarded, hosts))


def ask(host: RemoteHost, request: dict[str, Any], timeout: float) -> Answer:
    """One request on one host; a host that gave no answer is an Answer saying why."""
    try:
        return Answer(host.call(request, timeout))
    except HostError as exc:
        return Answer.lost(exc.reason, unreachable=exc.kind == "unreachable")


def request_timeout(checks: list[spec.Check] | None, extra: float = 0) -> float:
    """How long to wait for a request: its checks' worst case, ``extra``, and slack."""
    return (runner.worst_case_seconds(checks) + 1 if checks else 0) + extra + SLACK_SECONDS


def unreachable_report(host: str, checks: list[spec.Check], reason: str) -> dict[str, Any]:
    """A host that could not run its checks, in the shape of a report: every check errs."""
    results = [
        {
            "name": check.name,
            "type": check.type,
            "severity": check.severity,
            "status": "error",
            "message": "not run: %s" % reason,
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
        "error": reason,
    }


# --- smoke -------------------------------------------------------------------------------
def smoke(
    hosts: Sequence[RemoteHost],
    document: Any,
    checks: list[spec.Check],
    only: Sequence[str] | None = None,
    deadline: float | None = None,
    limit: int = PARALLEL,
) -> list[dict[str, Any]]:
    """Every host's report, in host order; an unreachable host gets an all-error report."""
    timeout = deadline + SLACK_SECONDS if deadline is not None else request_timeout(checks)
    steps = [protocol.smoke(document, deadline, only)]

    def run(host: RemoteHost) -> dict[str, Any]:
        answer = ask(host, protocol.request(steps, host=host.name), timeout)
        report = answer.report
        return report if report is not None else unreachable_report(host.name, checks, answer.error)

    return [
        unreachable_report(host.name, checks, outcome.reason)
        if isinstance(outcome, HostError)
        else outcome
        for host, outcome in zip(hosts, parallel(hosts, run, limit))
    ]


# --- releases ----------------------------------------------------------------------------
def release_info(
    hosts: Sequence[RemoteHost], root: str, limit: int = PARALLEL
) -> list[dict[str, Any] | HostError]:
    def run(host: RemoteHost) -> dict[str, Any]:
        answer = host.call(protocol.request([protocol.info()], root=root), request_timeout(None))
        if "info" not in answer:
            raise HostError(host.name, "engine", answer.get("info_error", "no release info"))
        return answer["info"]

    return parallel(hosts, run, limit)


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
def rollback(
    hosts: Sequence[RemoteHost],
    root: str,
    to: str | None = None,
    release: str | None = None,
    reason: str = protocol.BY_HAND,
    restart: str | None = None,
    restart_timeout: float = protocol.RESTART_TIMEOUT,
    document: Any = None,
    checks: list[spec.Check] | None = None,
    unlock: str | None = None,
    limit: int = PARALLEL,
) -> list[tuple[Outcome, Answer]]:
    """Every host back on its previous good release (or ``to``); one request each."""
    steps = protocol.rollback_steps(
        release, to, reason, restart, restart_timeout, document, unlock_release=unlock
    )
    timeout = request_timeout(checks, restart_timeout if restart else 0)

    def run(host: RemoteHost) -> Answer:
        return ask(host, protocol.request(steps, root=root, host=host.name), timeout)

    answers = [
        Answer.lost(outcome.reason, outcome.kind == "unreachable")
        if isinstance(outcome, HostError)
        else outcome
        for outcome in parallel(hosts, run, limit)
    ]
    return [
        (protocol.rollback_outcome(host.name, answer), answer)
        for host, answer in zip(hosts, answers)
    ]
