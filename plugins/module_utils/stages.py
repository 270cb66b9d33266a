# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smokegate.core.stages module's options, as one protocol request, and its answer as
the module's result: one mapping, shared by the module and its action plugin, so that the
shipped engine and the module give the same result.

>>> request, problem = build_request({"root": "/srv/app", "stages": ["activate", "good"],
...                                   "release": "v2"})
>>> problem, [step["stage"] for step in request["steps"]]
(None, ['activate', 'good'])
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from . import protocol

STAGE_CHOICES = [
    protocol.LOCK,
    protocol.BASELINE,
    protocol.CREATE,
    protocol.ACTIVATE,
    protocol.RESTART,
    protocol.SMOKE,
    protocol.BAKE,
    protocol.GOOD,
    protocol.ROLLBACK,
    protocol.PRUNE,
    protocol.UNLOCK,
    protocol.DISCARD,
]
TRANSIENT = (protocol.LOCK, protocol.UNLOCK)
NEEDS_RELEASE = (protocol.LOCK, protocol.CREATE, protocol.ACTIVATE, protocol.GOOD, protocol.UNLOCK)

STAGES_ARGUMENT_SPEC: Dict[str, Any] = {
    "root": {"type": "path", "required": True},
    "stages": {"type": "list", "elements": "str", "required": True, "choices": STAGE_CHOICES},
    "release": {"type": "str"},
    "artifact": {"type": "path"},
    "archive": {"type": "path"},
    "shared": {"type": "list", "elements": "str", "default": []},
    "max_unpacked": {"type": "str", "default": protocol.MAX_UNPACKED},
    "restart_command": {"type": "str"},
    "restart_timeout": {"type": "float", "default": protocol.RESTART_TIMEOUT},
    "checks": {"type": "list", "elements": "dict"},
    "checks_file": {"type": "path"},
    "host": {"type": "str"},
    "budget": {"type": "float"},
    "holder": {"type": "str"},
    "to": {"type": "str"},
    "reason": {"type": "str", "default": protocol.BY_HAND},
    "keep": {"type": "int", "default": protocol.KEEP_RELEASES},
    "upload": {"type": "str"},
    "fail_on": {"type": "str", "default": "critical", "choices": ["critical", "never"]},
    "bake": {"type": "float", "default": protocol.BAKE_SECONDS},
    "bake_interval": {"type": "float", "default": protocol.BAKE_INTERVAL},
    "preexisting": {"type": "list", "elements": "str", "default": []},
}


def secrets_in(checks: Any) -> List[str]:
    """Every secret a spec holds (header values, URL credentials in every form)."""
    from .runner import secrets_of
    from .spec import SpecError, parse_spec

    if not checks:
        return []
    try:
        parsed = parse_spec(checks)
    except SpecError:
        return []  # nothing runs; the error names fields, never values
    return [secret for check in parsed for secret in secrets_of(check)]


def build_request(
    params: Dict[str, Any],
    check_mode: bool = False,
    environment: Optional[Dict[str, str]] = None,
    pid: Optional[int] = None,
) -> Tuple[Dict[str, Any], Optional[str]]:
    """(the request, None), or ({}, why the options do not make one)."""
    stages = params["stages"]
    release = params.get("release")
    missing = [stage for stage in stages if stage in NEEDS_RELEASE and not release]
    if missing:
        return {}, "stages %s need a release" % ", ".join(missing)
    if protocol.CREATE in stages and not params.get("archive"):
        return {}, "the create stage needs an artifact (or an archive on the host)"
    if protocol.LOCK in stages and not params.get("holder"):
        return {}, "the lock stage needs a holder"
    from .spec import spec_document

    steps = protocol.steps(
        stages,
        release=release,
        upload=params.get("archive") or params.get("upload"),
        shared=params.get("shared") or [],
        max_unpacked=params.get("max_unpacked", protocol.MAX_UNPACKED),
        restart_command=params.get("restart_command"),
        restart_timeout=params.get("restart_timeout", protocol.RESTART_TIMEOUT),
        document=spec_document(params["checks"], params.get("budget"))
        if params.get("checks")
        else None,
        holder=params.get("holder"),
        pid=pid,
        to=params.get("to"),
        reason=params.get("reason", protocol.BY_HAND),
        keep=params.get("keep", protocol.KEEP_RELEASES),
        bake_seconds=params.get("bake") or 0,
        bake_interval=params.get("bake_interval") or protocol.BAKE_INTERVAL,
        preexisting=params.get("preexisting") or None,
    )
    request = protocol.request(
        steps,
        root=params["root"],
        host=params.get("host"),
        environment=environment,
        check_mode=check_mode,
    )
    request["before"] = True  # the current release and the lock before: for --diff
    return request, None


def answer_result(
    answer: Dict[str, Any], fail_on: str = "critical", diff: bool = False
) -> Dict[str, Any]:
    """The module's result for an engine answer: every stage's outcome, the host's
    releases afterwards, the smoke report, and ``failed`` with the reason. With ``fail_on``
    ``never``, checks that fail are reported but do not fail the task (a verification whose
    outcome a summary reports)."""
    read = protocol.Answer(answer)
    info = read.info
    result: Dict[str, Any] = {
        # The lock lives only as long as the run that takes it: not a change it leaves.
        "changed": any(
            step.get("changed") and not step.get("skipped") and step.get("stage") not in TRANSIENT
            for step in read.steps
        ),
        "steps": read.steps,
        "current": info.get("current"),
        "releases": info.get("releases", []),
        "lock": info.get("lock"),
        "rollback_target": info.get("rollback_target"),
        "msg": read.progress(),
    }
    if read.report is not None:
        result["smoke"] = read.report
    baseline = read.step(protocol.BASELINE)
    if baseline is not None:
        result["preexisting"] = baseline.get("preexisting", [])
    if answer.get("info_error"):
        result["info_error"] = answer["info_error"]
    failed = [step for step in read.steps if not step.get("ok")]
    if fail_on == "never":
        failed = [step for step in failed if step.get("stage") != protocol.SMOKE]
    if failed:
        result.update(failed=True, msg="%s: %s" % (read.progress(), read.error))
    if diff and "before" in answer:
        result["diff"] = {
            "before": answer["before"],
            "after": {"current": info.get("current"), "lock": info.get("lock")},
        }
    return result
