# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's remote entry point: one request in, one JSON answer out.

The Fabric front end (smokegate.remote) ships the engine to a host and runs ``handle``
there in a single SSH exec. A request names a deploy root (optional) and a list of steps
run in order; the first step that fails stops the rest, unless it says ``"continue": true``.
A step with ``"when": "changed"`` runs only if the step before it changed something, one
with ``"when": "current"`` only while the root has a current release (a list: all of them).
With ``"budget": seconds``, no step starts once that much time has passed: the controller
has stopped waiting by then, and a late switch must not undo what it did next::

    {"root": "/srv/app", "host": "web1", "environment": {"APP_ENV": "production"},
     "steps": [{"op": "lock", "release": "v2", "holder": "ops@laptop", "pid": 4242},
               {"op": "create", "release": "v2", "archive": "/srv/app/.smokegate/upload.tar.gz"},
               {"op": "activate", "release": "v2"},
               {"op": "restart", "command": "bin/restart", "timeout": 120},
               {"op": "smoke", "checks": {"checks": [...]}, "deadline": 30},
               {"op": "good", "release": "v2"}]}

The answer: ``{"ok": bool, "steps": [{"op", "ok", "changed", ...}], "info": <root info>}``.
Each failed step carries ``error``, a message that names what went wrong on this host.

>>> import tempfile
>>> answer = handle({"root": tempfile.mkdtemp(), "steps": [{"op": "info"}]})
>>> answer["ok"], answer["info"]["current"]
(True, None)
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional

from .extract import DEFAULT_MAX_UNPACKED
from .probes import kill_process_group
from .releases import DeployRoot, LockHeld, ReleaseError

# How much of a failed restart command's output is reported.
OUTPUT_TAIL = 2000

Step = Dict[str, Any]


def _smoke(root: Optional[DeployRoot], step: Step, host: Optional[str]) -> Step:
    from .runner import run_checks
    from .spec import SpecError, parse_spec

    try:
        checks = parse_spec(step["checks"])
    except SpecError as exc:
        return {"ok": False, "error": "not a valid spec: " + "; ".join(exc.errors)}
    report = run_checks(
        checks,
        host=host,
        only=step.get("only"),
        deadline=step.get("deadline"),
        check_mode=bool(step.get("check_mode")),
    )
    return {"ok": report["ok"], "report": report}


def _restart(root: Optional[DeployRoot], step: Step, host: Optional[str]) -> Step:
    # Run in the current release like the Ansible shell task. Output goes to a file, not
    # a pipe: a service started in the background keeps its copy of the descriptors, and
    # a pipe would make this wait for the service to exit.
    import subprocess
    import tempfile

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
            returncode = process.wait(timeout=step.get("timeout", 300))
        except subprocess.TimeoutExpired:
            kill_process_group(process)
            return {
                "ok": False,
                "changed": True,
                "error": "restart command did not finish in %s s" % step.get("timeout", 300),
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


def _create(root: DeployRoot, step: Step, host: Optional[str]) -> Step:
    archive = step.get("archive")
    try:
        changed = root.create(
            step["release"],
            archive=archive,
            shared=step.get("shared") or [],
            max_unpacked=step.get("max_unpacked", DEFAULT_MAX_UNPACKED),
        )
    finally:
        if archive and step.get("remove_archive", True) and os.path.exists(archive):
            os.unlink(archive)
    return {"ok": True, "changed": changed}


def _rollback(root: DeployRoot, step: Step, host: Optional[str]) -> Step:
    outcome = root.rollback(
        release=step.get("release"), to=step.get("to"), reason=step.get("reason", "rolled back")
    )
    return dict(outcome, ok=True)


def _prune(root: DeployRoot, step: Step, host: Optional[str]) -> Step:
    removed = root.prune(step.get("keep", 5))
    return {"ok": True, "changed": bool(removed), "removed": removed}


def _with_root(action: Callable[[DeployRoot, Step], bool]) -> Callable[..., Step]:
    def run(root: DeployRoot, step: Step, host: Optional[str]) -> Step:
        return {"ok": True, "changed": action(root, step)}

    return run


def _discard(root: DeployRoot, step: Step, host: Optional[str]) -> Step:
    # Only an upload this front end made: never an arbitrary path.
    path = step["path"]
    name = os.path.basename(path)
    if not (name.startswith("upload-") and name.endswith(".tar.gz")):
        raise ReleaseError("%s is not an upload to discard" % path)
    if not os.path.exists(path):
        return {"ok": True, "changed": False}
    os.unlink(path)
    return {"ok": True, "changed": True}


OPS: Dict[str, Callable[..., Step]] = {
    "info": _with_root(lambda root, step: False),
    "lock": _with_root(
        lambda root, step: root.lock(step["release"], step["holder"], pid=step.get("pid"))
    ),
    "unlock": _with_root(
        lambda root, step: root.unlock(
            step.get("release"), holder=step.get("holder"), force=step.get("force", False)
        )
    ),
    "create": _create,
    "activate": _with_root(lambda root, step: root.activate(step["release"])),
    "good": _with_root(lambda root, step: root.mark_good(step["release"])),
    "rollback": _rollback,
    "prune": _prune,
    "restart": _restart,
    "discard": _discard,
    "smoke": _smoke,
}
NEEDS_NO_ROOT = ("smoke", "restart")


def handle(request: Dict[str, Any]) -> Dict[str, Any]:
    """Run the request's steps in order; never raises for a failure on this host."""
    # The caller's environment for this run (Ansible's task ``environment``), sent here
    # rather than on the command line so its values stay out of ps and verbose logs.
    os.environ.update(request.get("environment") or {})
    root = DeployRoot(request["root"]) if request.get("root") else None
    host = request.get("host")
    done: List[Step] = []
    ok = True
    changed = False
    started = time.monotonic()
    budget = request.get("budget")
    for step in request.get("steps", []):
        op = step.get("op")
        if budget is not None and time.monotonic() - started > budget:
            done.append(
                {"op": op, "ok": False, "error": "not started: past the request's %s s" % budget}
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
            done.append({"op": op, "ok": True, "changed": False, "skipped": unmet[0]})
            changed = False
            continue
        if op not in OPS or (root is None and op not in NEEDS_NO_ROOT):
            outcome: Step = {"ok": False, "error": "unknown step %r (or it needs a root)" % op}
        else:
            try:
                outcome = OPS[op](root, step, host)
            except LockHeld as exc:
                outcome = {"ok": False, "error": str(exc), "lock": exc.holder}
            except ReleaseError as exc:
                outcome = {"ok": False, "error": str(exc)}
            except OSError as exc:
                outcome = {
                    "ok": False,
                    "error": "%s: %s" % (exc.filename or op, exc.strerror or exc),
                }
        outcome["op"] = op
        changed = bool(outcome.get("changed"))
        done.append(outcome)
        if not outcome["ok"]:
            ok = False
            if not step.get("continue"):
                break
    answer: Dict[str, Any] = {"ok": ok, "steps": done}
    if root is not None:
        try:
            answer["info"] = root.info()
        except (ReleaseError, OSError) as exc:
            answer["info_error"] = str(exc)
    return answer
