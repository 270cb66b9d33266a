# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's entry point on a host: one request in, one JSON answer out.

Both front ends send it requests built with protocol.py: Fabric ships the engine and runs
``handle`` in a single SSH exec (smokegate.remote), Ansible over the play's connection (the
``smokegate.core.smoke`` and ``smokegate.core.stages`` actions when the connection pipelines)
or as a module otherwise. Steps run in order, one per stage; the first step that fails
stops the rest, unless it says ``"keep_going": true``. A step with ``"when": "changed"``
runs only if the step before it changed something, one with ``"when": "current"`` only
while the root has a current release (a list: all of them). With ``"budget": seconds``, no
step starts once that much time has passed. With ``"check_mode": true`` nothing changes:
each step says what it would change, and a restart is not run.

The answer: ``{"ok": bool, "steps": [{"stage", "ok", "changed", ...}], "info": <root info>}``.
Each failed step carries ``error``, a message that names what went wrong on this host.

>>> import tempfile
>>> from .protocol import info, request
>>> answer = handle(request([info()], root=tempfile.mkdtemp()))
>>> answer["ok"], answer["info"]["current"]
(True, None)
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from . import protocol
from .protocol import (
    BAKE_INTERVAL,
    BY_HAND,
    KEEP_RELEASES,
    MAX_UNPACKED,
    RESTART_TIMEOUT,
    UPLOAD_DIRECTORY,
    bake_verdict,
    blocking,
    host_ok,
    is_upload,
    preexisting,
    upload_pattern,
)
from .releases import DeployRoot, LockHeld, ReleaseError, valid_id
from .spec import SpecError

# How much of a failed restart command's output is reported.
OUTPUT_TAIL = 2000

Step = Dict[str, Any]


def _checks(step: Step) -> Any:
    from .spec import parse_spec

    return parse_spec(step["checks"])


def _run(checks: Any, step: Step, context: Context) -> Dict[str, Any]:
    from .runner import run_checks

    return run_checks(
        checks,
        host=context.host,
        only=step.get("only"),
        deadline=step.get("deadline"),
        check_mode=context.check_mode,
        preexisting=step.get("preexisting") or (),
    )


def _smoke(root: Optional[DeployRoot], step: Step, context: Context) -> Step:
    report = _run(_checks(step), step, context)
    if host_ok(report):
        context.marks["passed"] = time.monotonic()  # when a bake's window starts
    return {"ok": host_ok(report), "report": report}


def _bake(root: Optional[DeployRoot], step: Step, context: Context) -> Step:
    """The checks again every interval until ``seconds`` after the first pass: a release
    that starts, passes once and dies soon after is caught before its batch is good."""
    if context.check_mode:
        return {"ok": True, "skipped": "check mode"}
    checks = _checks(step)
    seconds, interval = float(step["seconds"]), float(step.get("interval", BAKE_INTERVAL))
    started = context.marks.get("passed", time.monotonic())
    rounds: List[Dict[str, Any]] = []
    report: Optional[Dict[str, Any]] = None
    while time.monotonic() - started < seconds:
        time.sleep(max(0.0, min(interval, seconds - (time.monotonic() - started))))
        report = _run(checks, step, context)
        rounds.append(
            {
                "at": round(time.monotonic() - started, 1),
                "ok": host_ok(report),
                "failing": [result["name"] for result in blocking(report)],
            }
        )
        if not rounds[-1]["ok"]:
            break
    ok, _reason = bake_verdict(rounds)
    return {"ok": ok, "rounds": rounds, "seconds": seconds, "report": report}


def _baseline(root: Optional[DeployRoot], step: Step, context: Context) -> Step:
    # What already fails on the release that runs now; the front end decides what it means.
    if root is None or root.current() is None:
        return {"ok": True, "skipped": "no current release"}
    report = _run(_checks(step), step, context)
    return {"ok": True, "report": report, "preexisting": preexisting(report)}


def _restart(root: Optional[DeployRoot], step: Step, context: Context) -> Step:
    if context.check_mode:
        return {"ok": True, "changed": True, "skipped": "check mode"}
    # Run in the current release like the Ansible shell task. Output goes to a file, not
    # a pipe: a service started in the background keeps its copy of the descriptors, and
    # a pipe would make this wait for the service to exit.
    import subprocess
    import tempfile

    timeout = step.get("timeout", RESTART_TIMEOUT)
    # Its own session: on a timeout, what it started dies with it; when it succeeds, the
    # service it left running is kept.
    directory = root.current_link if root is not None else None
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            step["command"],
            shell=True,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Loaded only here: a request without checks (lock, switch, unlock) does not
            # compile the probes.
            from .probes import kill_process_group

            kill_process_group(process)
            return {
                "ok": False,
                "changed": True,
                "error": "restart command did not finish in %g s" % timeout,
            }
        output.seek(0)
        tail = output.read().decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
    if returncode != 0:
        return {
            "ok": False,
            "changed": True,
            "error": "restart command exited %d: %s" % (returncode, tail or "(no output)"),
        }
    return {"ok": True, "changed": True, "output": tail}


def _create(root: DeployRoot, step: Step, context: Context) -> Step:
    archive = step.get("archive")
    try:
        changed = root.create(
            step["release"],
            archive=archive,
            shared=step.get("shared") or [],
            max_unpacked=step.get("max_unpacked", MAX_UNPACKED),
            dry_run=context.check_mode,
        )
    finally:
        if (
            archive
            and step.get("remove_archive", True)
            and is_upload(archive)
            and os.path.exists(archive)
        ):
            os.unlink(archive)
    return {"ok": True, "changed": changed}


def _rollback(root: DeployRoot, step: Step, context: Context) -> Step:
    outcome = root.rollback(
        release=step.get("release"),
        to=step.get("to"),
        reason=step.get("reason", BY_HAND),
        dry_run=context.check_mode,
    )
    return dict(outcome, ok=True)


def _prune(root: DeployRoot, step: Step, context: Context) -> Step:
    removed = root.prune(step.get("keep", KEEP_RELEASES), dry_run=context.check_mode)
    return {"ok": True, "changed": bool(removed), "removed": removed}


def _discard(root: DeployRoot, step: Step, context: Context) -> Step:
    # Only uploads a front end made: never an arbitrary path.
    if step.get("path"):
        if not is_upload(step["path"]):
            raise ReleaseError("%s is not an upload to discard" % step["path"])
        paths = [step["path"]] if os.path.exists(step["path"]) else []
    else:
        import glob

        release = valid_id(step["release"])  # no glob characters: only uploads match
        paths = glob.glob(upload_pattern(os.path.join(root.root, UPLOAD_DIRECTORY), release))
    if not context.check_mode:
        for path in paths:
            os.unlink(path)
    return {"ok": True, "changed": bool(paths), "removed": paths}


def _changes(action: Callable[[DeployRoot, Step, bool], bool]) -> Callable[..., Step]:
    def run(root: DeployRoot, step: Step, context: Context) -> Step:
        return {"ok": True, "changed": action(root, step, context.check_mode)}

    return run


class Context(NamedTuple):
    host: Optional[str]
    check_mode: bool
    marks: Dict[str, float]  # moments a later step of the request needs (the first pass)


STAGES: Dict[str, Callable[..., Step]] = {
    protocol.INFO: _changes(lambda root, step, dry_run: False),
    protocol.LOCK: _changes(
        lambda root, step, dry_run: root.lock(
            step["release"], step["holder"], pid=step.get("pid"), dry_run=dry_run
        )
    ),
    protocol.UNLOCK: _changes(
        lambda root, step, dry_run: root.unlock(
            step.get("release"),
            holder=step.get("holder"),
            force=step.get("force", False),
            dry_run=dry_run,
        )
    ),
    protocol.CREATE: _create,
    protocol.ACTIVATE: _changes(
        lambda root, step, dry_run: root.activate(step["release"], dry_run=dry_run)
    ),
    protocol.GOOD: _changes(
        lambda root, step, dry_run: root.mark_good(step["release"], dry_run=dry_run)
    ),
    protocol.ROLLBACK: _rollback,
    protocol.PRUNE: _prune,
    protocol.RESTART: _restart,
    protocol.DISCARD: _discard,
    protocol.SMOKE: _smoke,
    protocol.BAKE: _bake,
    protocol.BASELINE: _baseline,
}
NEEDS_NO_ROOT = (protocol.SMOKE, protocol.BAKE, protocol.RESTART)


def handle(request: Dict[str, Any]) -> Dict[str, Any]:
    """Run the request's steps in order; never raises for a failure on this host."""
    # The caller's environment for this run (Ansible's task ``environment``), sent here
    # rather than on the command line so its values stay out of ps and verbose logs.
    os.environ.update(request.get("environment") or {})
    root = DeployRoot(request["root"]) if request.get("root") else None
    context = Context(request.get("host"), bool(request.get("check_mode")), {})
    done: List[Step] = []
    ok = True
    changed = False
    started = time.monotonic()
    before: Optional[Dict[str, Any]] = None
    if root is not None and request.get("before"):  # for a diff: what the steps change
        try:
            before = {"current": root.current(), "lock": root.lock_holder()}
        except (ReleaseError, OSError):
            before = None
    budget = request.get("budget")
    for step in request.get("steps", []):
        stage = step.get("stage")
        if budget is not None and time.monotonic() - started > budget:
            done.append(
                {
                    "stage": stage,
                    "ok": False,
                    "error": "not started: past the request's %s s" % budget,
                }
            )
            ok = False
            break
        when = step.get("when") or []
        unmet = [
            condition
            for condition in ([when] if isinstance(when, str) else when)
            if (condition == "changed" and not changed)
            or (condition == "current" and (root is None or root.current() is None))
        ]
        if unmet:
            done.append({"stage": stage, "ok": True, "changed": False, "skipped": unmet[0]})
            changed = False
            continue
        if stage not in STAGES or (root is None and stage not in NEEDS_NO_ROOT):
            outcome: Step = {"ok": False, "error": "unknown stage %r (or it needs a root)" % stage}
        else:
            try:
                outcome = STAGES[stage](root, step, context)
            except LockHeld as exc:
                outcome = {"ok": False, "error": str(exc), "lock": exc.holder}
            except ReleaseError as exc:
                outcome = {"ok": False, "error": str(exc)}
            except OSError as exc:
                outcome = {
                    "ok": False,
                    "error": "%s: %s" % (exc.filename or stage, exc.strerror or exc),
                }
            except SpecError as exc:
                outcome = {"ok": False, "error": "not a valid spec: " + "; ".join(exc.errors)}
        outcome["stage"] = stage
        changed = bool(outcome.get("changed"))
        done.append(outcome)
        if not outcome["ok"]:
            ok = False
            if not step.get("keep_going"):
                break
    answer: Dict[str, Any] = {"ok": ok, "steps": done}
    if before is not None:
        answer["before"] = before
    if root is not None:
        try:
            answer["info"] = root.info()
        except (ReleaseError, OSError) as exc:
            answer["info_error"] = str(exc)
    return answer
