# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a spec: every check in parallel, each attempt bounded by its timeout.

Some calls cannot be interrupted (getaddrinfo blocks in C), so every attempt runs in
its own daemon thread and is abandoned, reported as ``timeout``, when its time is up.
Daemon threads also mean a hung call never keeps the process alive at exit.

An abandoned thread lives on until its call returns, which a hung resolver or a server
trickling its answer may put off for ever. So that running a spec again and again (a
poller, a bake) cannot pile such threads up, a check whose earlier attempt still hangs is
not started again, and no attempt starts while MAX_ABANDONED of them hang: both are
reported ``timeout``, saying so.

>>> from .spec import parse_spec
>>> report = run_checks(parse_spec([{"name": "root", "disk": {"path": "/", "min_free": 1}}]),
...                     host="web1")
>>> report["host"], report["ok"], report["summary"]["passed"], report["results"][0]["status"]
('web1', True, 1, 'pass')
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from .checks import CHECK_TYPES, ERROR, PASS, SKIPPED, TIMEOUT, Attempt, Outcome
from .protocol import blocks
from .spec import Check, Checks
from .urls import secret_forms

if TYPE_CHECKING:
    from .probes import Probe

# How long past an attempt's deadline to wait for a probe that enforces the same
# deadline itself (socket timeout, subprocess timeout) before abandoning its thread.
GRACE = 0.05
MAX_PARALLEL = 32
MAX_ABANDONED = 32

# Attempts abandoned at their deadline: (thread, when it started), by _identity(check).
_abandoned: Dict[str, Tuple[threading.Thread, float]] = {}
_abandoned_lock = threading.Lock()

Result = Dict[str, Any]


def secrets_of(check: Check) -> List[str]:
    """Every secret value a check holds: header values, every form of URL credentials."""
    values: List[str] = []
    for field in CHECK_TYPES[check.type].fields.values():
        value = check.params.get(field.name)
        if field.secret and isinstance(value, dict):
            values.extend(item for item in value.values() if item)
        if field.kind == "url" and isinstance(value, str):
            values.extend(secret_forms(value))
    return values


def _redact(message: str, secrets: Iterable[str]) -> str:
    # Checks never format a secret; this guards exception texts we do not control. The
    # longest first: a password inside a longer secret must not leave the rest of it.
    for secret in sorted(set(secrets), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def _identity(check: Check) -> str:
    # A spec parsed again (each bake round is a new request) holds new Check objects:
    # the same check is the same name, type and fields.
    return repr((check.name, check.type, sorted(check.params.items())))


def _refusal(check: Check) -> Optional[Outcome]:
    """Why an attempt of ``check`` must not start while abandoned ones hang, or None."""
    with _abandoned_lock:
        for key, (thread, _since) in list(_abandoned.items()):
            if not thread.is_alive():
                del _abandoned[key]
        earlier = _abandoned.get(_identity(check))
        hanging = len(_abandoned)
    if earlier is not None:
        return Outcome(
            TIMEOUT,
            "still waiting on an earlier attempt, started %s s ago"
            % _seconds(time.monotonic() - earlier[1]),
        )
    if hanging >= MAX_ABANDONED:
        return Outcome(
            TIMEOUT,
            "not started: %d earlier attempts that timed out have not returned yet" % hanging,
        )
    return None


def _attempt(check: Check, probe: Probe, budget: float, check_mode: bool, host: str) -> Outcome:
    refusal = _refusal(check)
    if refusal is not None:
        return refusal
    box: List[Outcome] = []
    finished = threading.Event()
    attempt = Attempt(time.monotonic() + budget, check_mode, host)

    def target() -> None:
        try:
            box.append(CHECK_TYPES[check.type].compare(check.params, probe, attempt))
        except (socket.timeout, TimeoutError):
            box.append(Outcome(TIMEOUT, "no result within %s s" % _seconds(budget)))
        except Exception as exc:  # a probe failing in a way we did not foresee
            box.append(Outcome(ERROR, "%s: %s" % (type(exc).__name__, exc)))
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="smokegate: %s" % check.name, daemon=True)
    started = time.monotonic()
    thread.start()
    if not finished.wait(budget + GRACE) or not box:
        with _abandoned_lock:
            _abandoned[_identity(check)] = (thread, started)
        return Outcome(TIMEOUT, "no result within %s s" % _seconds(budget))
    return box[0]


def _seconds(value: float) -> str:
    return ("%.2f" % value).rstrip("0").rstrip(".")


def _run_one(check: Check, probe: Probe, check_mode: bool, host: str, deadline: float) -> Result:
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        budget = min(check.timeout, deadline - time.monotonic())
        if budget <= 0:
            outcome = Outcome(TIMEOUT, "not finished by the overall deadline")
            break
        outcome = _attempt(check, probe, budget, check_mode, host)
        if outcome.status == PASS or attempts > check.retries:
            break
        if time.monotonic() + check.retry_delay >= deadline:
            break
        time.sleep(check.retry_delay)
    result = {
        "name": check.name,
        "type": check.type,
        "severity": check.severity,
        "status": outcome.status,
        "message": _redact(outcome.message, secrets_of(check)),
        "duration_ms": round(1000 * (time.monotonic() - started), 1),
        "attempts": attempts,
    }
    if outcome.status == PASS and attempts > 1:
        result["flaky"] = True  # passed only after a retry: shown, so it is fixed, not ignored
    return result


def worst_case_seconds(checks: List[Check]) -> float:
    """The longest any one check may take with all its retries."""
    return max(
        (check.retries + 1) * check.timeout + check.retries * check.retry_delay for check in checks
    )


def summarize(results: List[Result]) -> Dict[str, int]:
    def count(status: str) -> int:
        return sum(1 for result in results if result["status"] == status)

    return {
        "total": len(results),
        "passed": count(PASS),
        "failed": count("fail"),
        "errors": count(ERROR),
        "timeouts": count(TIMEOUT),
        "skipped": count(SKIPPED),
        "flaky": sum(1 for result in results if result.get("flaky")),
    }


SLOWEST_SHOWN = 3


def over_budget(results: List[Result], duration_ms: float, budget: float) -> Dict[str, Any]:
    """A run against its spec's budget: whether it took longer, and its slowest checks."""
    ran = [result for result in results if result["status"] != SKIPPED]
    slowest = sorted(ran, key=lambda result: result["duration_ms"], reverse=True)
    return {
        "seconds": budget,
        "exceeded": duration_ms > 1000 * budget,
        "slowest": [
            {"name": result["name"], "duration_ms": result["duration_ms"]}
            for result in slowest[:SLOWEST_SHOWN]
        ],
    }


def is_ok(results: List[Result]) -> bool:
    """False when any result blocks the gate (protocol.blocks: the one rule)."""
    return not any(blocks(result) for result in results)


def run_checks(
    checks: List[Check],
    probe: Optional[Probe] = None,
    host: Optional[str] = None,
    only: Optional[Iterable[str]] = None,
    deadline: Optional[float] = None,
    check_mode: bool = False,
    max_parallel: int = MAX_PARALLEL,
    preexisting: Iterable[str] = (),
) -> Dict[str, Any]:
    """Run the checks in parallel and return the report (results in spec order).

    ``host`` is the host's name as the front end knows it (default: this machine's host
    name): the report's, and the one checks put in what they ask for (a prometheus query's
    ``{host}``). ``only`` limits the run to those names (the others are reported
    ``skipped``); ``deadline`` bounds the whole run in seconds (default: the slowest
    check's worst case); ``check_mode`` skips side effects such as the mount write test.
    ``preexisting`` names checks that failed on this host before the deploy: when they fail
    again they are marked so, and do not judge (protocol.blocks). When the spec
    has a budget, the report says whether the run kept to it (``budget``).
    """
    if probe is None:
        from .probes import SystemProbe

        probe = SystemProbe()
    started = time.monotonic()
    name = host if host is not None else socket.gethostname()
    selected = set(only) if only is not None else None
    to_run = [check for check in checks if selected is None or check.name in selected]
    limit = deadline if deadline is not None else worst_case_seconds(to_run or checks) + 1
    run_deadline = started + limit
    results: Dict[str, Result] = {}
    slots = threading.Semaphore(max_parallel)

    def drive(check: Check) -> None:
        with slots:
            results[check.name] = _run_one(check, probe, check_mode, name, run_deadline)

    drivers = []
    for check in to_run:
        driver = threading.Thread(target=drive, args=(check,), name="smokegate-driver", daemon=True)
        driver.start()
        drivers.append(driver)
    for driver in drivers:
        driver.join(max(0.0, run_deadline - time.monotonic()) + 2 * GRACE)

    ordered = []
    for check in checks:
        result = results.get(check.name)
        if result is None:
            status, message = (
                (SKIPPED, "not selected")
                if selected is not None and check.name not in selected
                else (TIMEOUT, "not finished by the overall deadline of %s s" % _seconds(limit))
            )
            result = {
                "name": check.name,
                "type": check.type,
                "severity": check.severity,
                "status": status,
                "message": message,
                "duration_ms": 0.0 if status == SKIPPED else round(1000 * limit, 1),
                "attempts": 0,
            }
        ordered.append(result)
    already = set(preexisting)
    for result in ordered:
        if result["name"] in already and result["status"] not in (PASS, SKIPPED):
            result["preexisting"] = True
    report = {
        "host": name,
        "ok": is_ok(ordered),
        "duration_ms": round(1000 * (time.monotonic() - started), 1),
        "summary": summarize(ordered),
        "results": ordered,
    }
    if isinstance(checks, Checks) and checks.budget is not None:
        report["budget"] = over_budget(ordered, report["duration_ms"], checks.budget)
    return report
