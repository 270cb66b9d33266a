# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's registered task results as the protocol's answers and host records, so that
the playbooks judge and summarize a deploy with the rules the Fabric front end uses."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional

from ansible_collections.smokegate.core.plugins.module_utils.protocol import (
    BASELINE,
    Answer,
    HostRecord,
)


def answer(result: Any) -> Optional[Answer]:
    """The Answer a registered smokegate.core.stages result holds; None if it did not run."""
    if not isinstance(result, dict) or result.get("skipped") or not result:
        return None
    if result.get("unreachable"):
        return Answer.lost(result.get("msg") or "unreachable", unreachable=True)
    steps = result.get("steps")
    if not isinstance(steps, list):  # the engine gave no answer, or the task failed first
        return Answer.lost(result.get("msg") or "failed")
    info = {key: result.get(key) for key in ("current", "releases", "lock", "rollback_target")}
    return Answer({"ok": all(step.get("ok") for step in steps), "steps": steps, "info": info})


def answers(results: Any) -> List[Answer]:
    """The Answers of the registered results that ran, in order."""
    found = [answer(result) for result in results or []]
    return [item for item in found if item is not None]


def record(host: str, facts: Mapping[str, Any]) -> HostRecord:
    """One host's record from its facts: deploy_lock, deploy_parts, rollback_result,
    deploy_tolerated (rolled back within the failure budget), and deploy_failed_reason (a
    hook or another task that failed between the requests)."""
    deployed = answers(facts.get("deploy_parts"))
    reason = facts.get("deploy_failed_reason")
    if reason and all(item.ok for item in deployed) and facts.get("deploy_started"):
        deployed.append(Answer.lost(str(reason)))
    tolerated = facts.get("deploy_tolerated")  # the answer of its rollback alone
    return HostRecord(
        host,
        answer(facts.get("deploy_lock")),
        tuple(deployed),
        answer(tolerated if tolerated else facts.get("rollback_result")),
        lock_kept=bool(facts.get("deploy_lock_kept")),
        tolerated=bool(tolerated),
    )


def baseline_report(facts: Mapping[str, Any]) -> Any:
    """The report of the baseline the plan's lock request ran on the host, if it ran."""
    locked = answer(facts.get("deploy_lock"))
    found = locked.step(BASELINE) if locked is not None else None
    return found.get("report") if found else None
