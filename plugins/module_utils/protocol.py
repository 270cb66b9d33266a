# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one protocol between the front ends and a host, named once.

Both front ends (Fabric: smokegate.fleet and smokegate.rollout; Ansible: the action plugins
and the playbook summary) build every request a host receives with the step builders here,
read every answer through :class:`Answer`, and decide pass or fail, and what became of each
host, with the functions here; agent.py dispatches on the same stage names. So a host
deployed by one front end can be rolled back by the other, and both say the same things.

A request names a deploy root (optional) and a list of steps, run in order by agent.handle;
each step is one *stage*::

    lock -> baseline                                            (the plan)
    create -> activate -> restart -> smoke -> bake -> good      (a host's part of a batch)
    rollback -> restart -> smoke -> unlock                      (a rollback)
    prune, unlock, info, discard                                (housekeeping)

>>> request([create("v2", "/srv/app/.smokegate/upload-v2-1f.tar.gz"), activate("v2")],
...         root="/srv/app")["steps"][1]
{'stage': 'activate', 'release': 'v2'}
>>> Answer({"ok": False, "steps": [{"stage": "create", "ok": False, "error": "disk full"}]}).error
'disk full'
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

# --- the stages --------------------------------------------------------------------------
LOCK = "lock"
CREATE = "create"
ACTIVATE = "activate"
RESTART = "restart"
SMOKE = "smoke"
BAKE = "bake"
BASELINE = "baseline"
GOOD = "good"
ROLLBACK = "rollback"
PRUNE = "prune"
UNLOCK = "unlock"
INFO = "info"
DISCARD = "discard"
STAGES = (
    LOCK,
    BASELINE,
    CREATE,
    ACTIVATE,
    RESTART,
    SMOKE,
    BAKE,
    GOOD,
    ROLLBACK,
    PRUNE,
    UNLOCK,
    INFO,
    DISCARD,
)
# The stages of one host's part of a batch, in order.
DEPLOY_STAGES = (CREATE, ACTIVATE, RESTART, SMOKE, BAKE, GOOD)
# What each stage did, as people read it, when it changed something.
DONE = {
    LOCK: "locked",
    CREATE: "unpacked",
    ACTIVATE: "switched",
    RESTART: "restarted",
    GOOD: "recorded good",
    ROLLBACK: "switched back",
    PRUNE: "pruned",
    UNLOCK: "unlocked",
    DISCARD: "upload removed",
}

# --- the defaults both front ends share ----------------------------------------------------
KEEP_RELEASES = 5
SERIAL = (1, "50%", "100%")
BAKE_SECONDS = 0.0
BAKE_INTERVAL = 10.0
MAX_FAIL = "0"
BASELINES = ("refuse", "ignore", "off")
BASELINE_DEFAULT = "refuse"
RESTART_TIMEOUT = 300.0
MAX_UNPACKED = "20GiB"
ROLLBACK_SCOPES = ("all", "failed")
RELEASE_ID_FORMAT = "%Y%m%dT%H%M%SZ"
DEPLOY_FAILED = "failed the smoke gate of its rolling deploy"
BY_HAND = "rolled back by hand"
UPLOAD_PREFIX = "upload-"
UPLOAD_SUFFIX = ".tar.gz"
UPLOAD_DIRECTORY = ".smokegate"  # under the deploy root; /tmp when a login user uploads

Step = Dict[str, Any]


def release_id(now: Optional[float] = None) -> str:
    """The default release id: the UTC time, the same format for every front end.

    >>> release_id(0)
    '19700101T000000Z'
    """
    return time.strftime(RELEASE_ID_FORMAT, time.gmtime(now))


def _upload(directory: str, release: str, token: str) -> str:
    return "%s/%s%s-%s%s" % (directory.rstrip("/"), UPLOAD_PREFIX, release, token, UPLOAD_SUFFIX)


def upload_path(directory: str, release: str) -> str:
    """Where an artifact is uploaded before ``create`` unpacks it: a name nobody can guess,
    so another user cannot plant the file first in a shared directory such as /tmp."""
    return _upload(directory, release, os.urandom(8).hex())


def upload_pattern(directory: str, release: str) -> str:
    """A glob for every upload of ``release`` that upload_path may have made in ``directory``."""
    return _upload(directory, release, "[0-9a-f]" * 16)


def is_upload(path: str) -> bool:
    """Whether ``path`` names an upload made by upload_path (``discard`` removes only those)."""
    name = os.path.basename(path)
    return name.startswith(UPLOAD_PREFIX) and name.endswith(UPLOAD_SUFFIX)


# --- step builders -------------------------------------------------------------------------
def _step(stage: str, **fields: Any) -> Step:
    built: Step = {"stage": stage}
    built.update((key, value) for key, value in fields.items() if value is not None)
    return built


def lock(release: str, holder: str, pid: Optional[int] = None) -> Step:
    return _step(LOCK, release=release, holder=holder, pid=pid)


def create(
    release: str,
    archive: str,
    shared: Sequence[str] = (),
    max_unpacked: Any = MAX_UNPACKED,
    remove_archive: bool = True,
) -> Step:
    return _step(
        CREATE,
        release=release,
        archive=archive,
        shared=list(shared),
        max_unpacked=max_unpacked,
        remove_archive=remove_archive,
    )


def activate(release: str) -> Step:
    return _step(ACTIVATE, release=release)


def restart(
    command: str, timeout: float = RESTART_TIMEOUT, when: Any = "changed", keep_going: bool = False
) -> Step:
    """Run the restart command in the current release, only ``when`` the step before changed
    something (``changed``) or while there is a current release (``current``, a list for both)."""
    return _step(
        RESTART, command=command, timeout=timeout, when=when, keep_going=keep_going or None
    )


def smoke(
    document: Any,
    deadline: Optional[float] = None,
    only: Optional[Sequence[str]] = None,
    when: Any = None,
    keep_going: bool = False,
    preexisting: Optional[Sequence[str]] = None,
) -> Step:
    """Run the checks; those in ``preexisting`` (failing before this deploy) do not judge."""
    return _step(
        SMOKE,
        checks=document,
        deadline=deadline,
        only=list(only) if only else None,
        when=when,
        keep_going=keep_going or None,
        preexisting=list(preexisting) if preexisting else None,
    )


def bake(
    document: Any,
    seconds: float,
    interval: float = BAKE_INTERVAL,
    preexisting: Optional[Sequence[str]] = None,
) -> Step:
    """Check again every ``interval`` seconds until ``seconds`` have passed since the smoke
    step before it passed; the first round with a check that blocks stops it."""
    return _step(
        BAKE,
        checks=document,
        seconds=seconds,
        interval=interval,
        preexisting=list(preexisting) if preexisting else None,
    )


def baseline(document: Any) -> Step:
    """Run the checks on the release that is current now (none: nothing to run): which of
    them already fail before this deploy."""
    return _step(BASELINE, checks=document)


def good(release: str) -> Step:
    return _step(GOOD, release=release)


def rollback(
    release: Optional[str] = None, to: Optional[str] = None, reason: str = BY_HAND
) -> Step:
    return _step(ROLLBACK, release=release, to=to, reason=reason)


def prune(keep: int = KEEP_RELEASES, keep_going: bool = False) -> Step:
    return _step(PRUNE, keep=keep, keep_going=keep_going or None)


def unlock(release: str, holder: Optional[str] = None, keep_going: bool = False) -> Step:
    return _step(UNLOCK, release=release, holder=holder, keep_going=keep_going or None)


def discard(path: Optional[str] = None, release: Optional[str] = None) -> Step:
    """Remove an upload: the one at ``path``, or every upload of ``release`` in the deploy
    root (what a deploy that lost its host left, whichever front end made it)."""
    return _step(DISCARD, path=path, release=release, keep_going=True)


def info() -> Step:
    return _step(INFO)


def steps(
    stages: Iterable[str],
    release: Optional[str] = None,
    upload: Optional[str] = None,
    shared: Sequence[str] = (),
    max_unpacked: Any = MAX_UNPACKED,
    restart_command: Optional[str] = None,
    restart_timeout: float = RESTART_TIMEOUT,
    document: Any = None,
    holder: Optional[str] = None,
    pid: Optional[int] = None,
    to: Optional[str] = None,
    reason: str = BY_HAND,
    keep: int = KEEP_RELEASES,
    bake_seconds: float = BAKE_SECONDS,
    bake_interval: float = BAKE_INTERVAL,
    preexisting: Optional[Sequence[str]] = None,
) -> List[Step]:
    """The steps of ``stages`` (in the order given), for one request.

    A deploy's ``restart`` runs only after a switch of the same request that changed
    something (after a switch an earlier request made, a hook in between: whenever there is
    a current). After a ``rollback`` the steps run whatever happens before them (a failed
    restart must not keep the lock held): ``restart`` when the switch back changed
    something and there is a current, ``smoke`` while there is a current.
    ``create`` without ``upload`` (the release is there already), ``restart`` without a
    command, ``smoke``, ``bake`` and ``baseline`` without a spec, and ``bake`` without
    ``bake_seconds`` are left out.

    >>> [step["stage"] for step in steps(DEPLOY_STAGES, "v2", restart_command="bin/restart")]
    ['activate', 'restart', 'good']
    """
    wanted = list(stages)
    rolling_back = ROLLBACK in wanted
    switching = ACTIVATE in wanted
    built: List[Step] = []
    for stage in wanted:
        if stage == LOCK:
            built.append(lock(release or "", holder or "", pid))
        elif stage == CREATE and upload is not None:
            built.append(create(release or "", upload, shared, max_unpacked))
        elif stage == ACTIVATE:
            built.append(activate(release or ""))
        elif stage == RESTART and restart_command:
            if rolling_back:
                built.append(
                    restart(restart_command, restart_timeout, ["changed", "current"], True)
                )
            else:
                built.append(
                    restart(restart_command, restart_timeout, "changed" if switching else "current")
                )
        elif stage == SMOKE and document is not None:
            built.append(
                smoke(
                    document,
                    when="current" if rolling_back else None,
                    keep_going=rolling_back,
                    preexisting=preexisting,
                )
            )
        elif stage == BAKE and document is not None and bake_seconds > 0:
            built.append(bake(document, bake_seconds, bake_interval, preexisting))
        elif stage == BASELINE and document is not None:
            built.append(baseline(document))
        elif stage == GOOD:
            built.append(good(release or ""))
        elif stage == ROLLBACK:
            built.append(rollback(release, to, reason))
        elif stage == PRUNE:
            built.append(prune(keep, keep_going=True))
        elif stage == UNLOCK:
            built.append(unlock(release or "", holder, keep_going=rolling_back))
        elif stage == DISCARD and (upload or release):
            built.append(discard(upload) if upload else discard(release=release))
        elif stage == INFO:
            built.append(info())
    return built


def deploy_steps(
    release: str,
    upload: Optional[str] = None,
    shared: Sequence[str] = (),
    max_unpacked: Any = MAX_UNPACKED,
    restart_command: Optional[str] = None,
    restart_timeout: float = RESTART_TIMEOUT,
    document: Any = None,
    bake_seconds: float = BAKE_SECONDS,
    bake_interval: float = BAKE_INTERVAL,
    preexisting: Optional[Sequence[str]] = None,
) -> List[Step]:
    """A host's part of a batch: unpack, switch, restart, smoke, bake, record good."""
    return steps(
        DEPLOY_STAGES,
        release,
        upload,
        shared,
        max_unpacked,
        restart_command,
        restart_timeout,
        document,
        bake_seconds=bake_seconds,
        bake_interval=bake_interval,
        preexisting=preexisting,
    )


def rollback_steps(
    release: Optional[str] = None,
    to: Optional[str] = None,
    reason: str = BY_HAND,
    restart_command: Optional[str] = None,
    restart_timeout: float = RESTART_TIMEOUT,
    document: Any = None,
    unlock_release: Optional[str] = None,
    holder: Optional[str] = None,
    upload: Optional[str] = None,
) -> List[Step]:
    """Remove an upload the deploy may have left, switch back, restart if that changed
    anything, verify while there is a current, release the lock: one request."""
    built = steps(
        [DISCARD, ROLLBACK, RESTART, SMOKE],
        release,
        upload,
        restart_command=restart_command,
        restart_timeout=restart_timeout,
        document=document,
        to=to,
        reason=reason,
    )
    if unlock_release:
        built.append(unlock(unlock_release, holder, keep_going=True))
    return built


def finish_steps(release: str, holder: Optional[str], keep: int = KEEP_RELEASES) -> List[Step]:
    """After a deploy that went out everywhere: prune old releases, release the lock."""
    return [prune(keep, keep_going=True), unlock(release, holder)]


def request(
    steps: List[Step],
    root: Optional[str] = None,
    host: Optional[str] = None,
    environment: Optional[Dict[str, str]] = None,
    budget: Optional[float] = None,
    check_mode: bool = False,
) -> Dict[str, Any]:
    """One request: the steps a host runs, in one process, in order.

    ``budget``: no step starts once that many seconds have passed (the controller has
    stopped waiting by then, and a late switch must not undo what it did next).
    ``check_mode``: report what would change, change nothing.
    """
    built: Dict[str, Any] = {"steps": steps}
    for key, value in (
        ("root", root),
        ("host", host),
        ("environment", environment),
        ("budget", budget),
    ):
        if value is not None:
            built[key] = value
    if check_mode:
        built["check_mode"] = True
    return built


# --- one rule for pass and fail --------------------------------------------------------------
PASSING = ("pass", "skipped")


def blocks(result: Dict[str, Any]) -> bool:
    """Whether a check's result stops the gate: a critical check that did not pass.

    A warning-severity check never does; a skipped check (not selected) does not either, nor
    one marked ``preexisting``: it failed on this host before the deploy, so it cannot judge
    the new release there.
    """
    return (
        result.get("severity") == "critical"
        and result.get("status") not in PASSING
        and not result.get("preexisting")
    )


def blocking(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The results of a host's report that stop the gate, in spec order."""
    return [result for result in report.get("results", []) if blocks(result)]


def host_ok(report: Dict[str, Any]) -> bool:
    """Whether a host passed: its checks ran, and none of its results blocks the gate."""
    return not report.get("error") and not blocking(report)


def fleet_ok(reports: Iterable[Dict[str, Any]]) -> bool:
    return all(host_ok(report) for report in reports)


def preexisting(report: Optional[Dict[str, Any]]) -> List[str]:
    """The names of the checks a baseline report found already failing (they would block)."""
    return [result["name"] for result in blocking(report)] if report else []


def max_fail(value: Any, hosts: int) -> int:
    """How many failed hosts a run tolerates: a count, or a percentage of ``hosts`` (down).

    >>> max_fail("1", 8), max_fail("25%", 8), max_fail("10%", 8), max_fail(0, 8)
    (1, 2, 0, 0)
    """
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return int(hosts * percent / 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise ValueError(
            "max_fail: %r is not a host count (0, 1, ...) or a percentage (0%%-100%%)" % text
        ) from None


def bake_verdict(
    rounds: Sequence[Dict[str, Any]], report: Optional[Dict[str, Any]] = None
) -> Tuple[bool, str]:
    """The decision over a bake's record: it passes when every round passed. With the
    failing round's ``report``, each failing check comes with its message.

    >>> bake_verdict([{"at": 10, "ok": True, "failing": []}, {"at": 20, "ok": False,
    ...               "failing": ["app health"]}])
    (False, 'bake failed 20 s after the first pass (round 2): app health')
    """
    for number, round_ in enumerate(rounds, 1):
        if not round_.get("ok"):
            if report and report.get("error"):
                detail = "smoke checks not run: %s" % report["error"]
            elif report and blocking(report):
                detail = "; ".join(
                    "%s: %s" % (result["name"], result["message"]) for result in blocking(report)
                )
            else:
                detail = ", ".join(round_.get("failing") or ["no answer"])
            return False, "bake failed %g s after the first pass (round %d): %s" % (
                round_.get("at", 0),
                number,
                detail,
            )
    return True, "baked %d rounds over %g s" % (
        len(rounds),
        rounds[-1].get("at", 0) if rounds else 0,
    )


def why_not_ok(report: Dict[str, Any]) -> str:
    """'smoke checks failed: name: message; ...': what stopped the gate on a host."""
    if report.get("error"):
        return "smoke checks not run: %s" % report["error"]
    return "smoke checks failed: " + "; ".join(
        "%s: %s" % (result["name"], result["message"]) for result in blocking(report)
    )


# --- reading answers -------------------------------------------------------------------------
class Answer:
    """A host's answer to one request, or why none came (``reached`` is False then).

    >>> lost = Answer.lost("unreachable: no SSH answer", unreachable=True)
    >>> lost.ok, lost.reached, lost.error
    (False, False, 'unreachable: no SSH answer')
    """

    def __init__(
        self,
        data: Optional[Dict[str, Any]] = None,
        failure: Optional[str] = None,
        unreachable: bool = False,
    ) -> None:
        self.data = data if data is not None else {"ok": False, "steps": []}
        self.failure = failure
        self.unreachable = unreachable

    @classmethod
    def lost(cls, reason: str, unreachable: bool = False) -> Answer:
        """No answer: the host was unreachable, or the engine did not run."""
        return cls(None, reason, unreachable)

    @property
    def reached(self) -> bool:
        return self.failure is None

    @property
    def ok(self) -> bool:
        return self.reached and bool(self.data.get("ok"))

    @property
    def steps(self) -> List[Step]:
        return list(self.data.get("steps") or [])

    @property
    def info(self) -> Dict[str, Any]:
        return self.data.get("info") or {}

    def step(self, stage: str) -> Optional[Step]:
        """The last step of that stage (a request holds each stage once)."""
        found = [item for item in self.steps if item.get("stage") == stage]
        return found[-1] if found else None

    def did(self, stage: str) -> bool:
        """Whether that stage ran, succeeded and changed something."""
        found = self.step(stage)
        return bool(found and found.get("ok") and found.get("changed"))

    @property
    def report(self) -> Optional[Dict[str, Any]]:
        found = self.step(SMOKE)
        return found.get("report") if found else None

    @property
    def error(self) -> str:
        """What stopped the request: no answer, the failed step's error, the failed checks."""
        if self.failure is not None:
            return self.failure
        for item in self.steps:
            if not item.get("ok"):
                if item.get("stage") == BAKE and "rounds" in item:
                    return bake_verdict(item["rounds"], item.get("report"))[1]
                if item.get("stage") == SMOKE and "report" in item:
                    return why_not_ok(item["report"])
                return item.get("error") or "%s failed" % item.get("stage")
        return "" if self.ok else "failed"

    def progress(self) -> str:
        """What the request did, stage by stage: 'unpacked, switched, smoke ok (2/2 passed)'."""
        words = []
        for item in self.steps:
            stage = item.get("stage")
            if stage == SMOKE and "report" in item:
                summary = item["report"]["summary"]
                verdict = "ok" if host_ok(item["report"]) else "FAILED"
                words.append(
                    "smoke %s (%d/%d passed)" % (verdict, summary["passed"], summary["total"])
                )
            elif stage == BAKE and "rounds" in item:
                words.append(bake_verdict(item["rounds"])[1] if item.get("ok") else "bake FAILED")
            elif item.get("ok") and item.get("changed") and stage in DONE:
                words.append(DONE[stage])
            elif not item.get("ok"):
                words.append("%s FAILED" % stage)
        return ", ".join(words) or "nothing to do"


# --- what became of each host ------------------------------------------------------------------
FAILED = "FAILED"
UNREACHABLE = "UNREACHABLE"
NOT_LOCKED = "NOT LOCKED"
ROLLED_BACK = "ROLLED BACK"
TOLERATED = "ROLLED BACK (tolerated)"
ALREADY_FAILING = "ALREADY FAILING"
NOT_ROLLED_BACK = "NOT ROLLED BACK"
UNCHANGED = "UNCHANGED"
KEPT = "KEPT"
UNTOUCHED = "UNTOUCHED"
STILL_LOCKED = "STILL LOCKED"


class HostRecord(NamedTuple):
    """One host's part in a rolling deploy, as its answers tell it."""

    host: str
    locked: Optional[Answer] = None  # the plan's lock request; None: never asked
    deployed: Sequence[Answer] = ()  # the batch's request(s), in order; empty: never started
    rolled_back: Optional[Answer] = None  # the rollback request, if the host was in scope
    lock_kept: bool = False  # its lock could not be released
    tolerated: bool = False  # rolled back alone, within the failure budget

    @property
    def started(self) -> bool:
        return bool(self.deployed)

    @property
    def verified(self) -> bool:
        return self.started and all(answer.ok for answer in self.deployed)

    @property
    def failure(self) -> Optional[Answer]:
        """The answer that says why the host did not pass, if it did not."""
        if self.locked is not None and not self.locked.ok:
            return self.locked
        return next((answer for answer in self.deployed if not answer.ok), None)


class Outcome(NamedTuple):
    label: str
    host: str
    reason: str

    def __str__(self) -> str:
        return "%s %s: %s" % (self.label, self.host, self.reason)


def rollback_outcome(host: str, answer: Answer) -> Outcome:
    """ROLLED BACK, UNCHANGED or NOT ROLLED BACK, and how: '<from> -> <to>, restarted, verified'."""
    switch = answer.step(ROLLBACK) or {}
    if not answer.reached or not switch.get("ok"):
        return Outcome(NOT_ROLLED_BACK, host, answer.error)
    if switch.get("changed"):
        moved = "%s -> %s" % (switch.get("from"), switch.get("to") or "(no current: removed)")
        if switch.get("from") == switch.get("to"):
            moved = "stays on %s; %s marked failed" % (switch.get("to"), switch.get("abandoned"))
    elif switch.get("to"):
        moved = "already on %s, nothing changed" % switch["to"]
    else:
        moved = "no current release, nothing to roll back"
    restarted = answer.step(RESTART)
    if restarted and not restarted.get("skipped"):
        moved += (
            ", restarted"
            if restarted.get("ok")
            else ", restart FAILED: %s" % restarted.get("error")
        )
    report = answer.report
    if report is not None:
        moved += ", verified" if host_ok(report) else ", verify FAILED: %s" % why_not_ok(report)
    elif not answer.ok:
        moved += ": " + answer.error
    return Outcome(ROLLED_BACK if switch.get("changed") else UNCHANGED, host, moved)


def outcomes(record: HostRecord, release: str) -> List[Outcome]:
    """Every line the summary of a halted deploy has about one host, in order."""
    found: List[Outcome] = []
    failure = record.failure
    if failure is not None:
        if failure.unreachable:
            found.append(Outcome(UNREACHABLE, record.host, failure.error))
        elif failure is record.locked:
            found.append(Outcome(NOT_LOCKED, record.host, failure.error))
        else:
            found.append(Outcome(FAILED, record.host, failure.error))
    if record.rolled_back is not None:
        outcome = rollback_outcome(record.host, record.rolled_back)
        if record.tolerated and outcome.label in (ROLLED_BACK, UNCHANGED):
            outcome = outcome._replace(label=TOLERATED)
        found.append(outcome)
    elif record.verified:
        found.append(Outcome(KEPT, record.host, "stays on %s (rollback scope: failed)" % release))
    elif not record.started and record.locked is not None and record.locked.ok:
        found.append(Outcome(UNTOUCHED, record.host, "its batch never started"))
    return found


def summary(
    release: str,
    records: Sequence[HostRecord],
    root: str,
    scope: str = "all",
    recovery: Optional[Callable[[List[str]], str]] = None,
) -> List[str]:
    """The summary of a halted rolling deploy: the same lines from every front end.

    ``recovery`` makes the command that finishes the rollback of the hosts that were not
    switched back, once they answer again (each front end has its own).
    """
    lines = ["smokegate: release %s did not go out; rollback scope: %s" % (release, scope)]
    for record in records:
        lines.extend("  " + str(outcome) for outcome in outcomes(record, release))
    kept = [record.host for record in records if record.lock_kept]
    if kept:
        lines.append(
            "  %s %s: remove %s/.smokegate/lock there once no deploy is running"
            % (STILL_LOCKED, ", ".join(kept), root)
        )
    stranded = [
        record.host
        for record in records
        if record.rolled_back is not None
        and rollback_outcome(record.host, record.rolled_back).label == NOT_ROLLED_BACK
    ]
    if stranded and recovery is not None:
        lines.append(
            "  when %s answer%s again: %s"
            % (", ".join(stranded), "" if len(stranded) > 1 else "s", recovery(stranded))
        )
    return lines


def baseline_refusal(release: str, reports: Sequence[Tuple[str, Dict[str, Any]]]) -> List[str]:
    """Why a deploy was refused before any host changed: checks already failing on the
    release each host runs now (``baseline: refuse``), host by host."""
    lines = [
        "smokegate: release %s was not deployed: checks already fail before this deploy "
        "(baseline: refuse); no host was changed" % release
    ]
    for host, report in reports:
        lines.extend(
            "  %s %s: %s: %s" % (ALREADY_FAILING, host, result["name"], result["message"])
            for result in blocking(report)
        )
    return lines


def live_summary(release: str, records: Sequence[HostRecord]) -> List[str]:
    """The summary of a deploy that went out: where it is live, and the hosts rolled back
    within the failure budget (a run with any is not a full success)."""
    live = [record.host for record in records if record.verified and not record.tolerated]
    lines = ["smokegate: release %s is live on %s" % (release, ", ".join(live) or "no host")]
    tolerated = [record for record in records if record.tolerated]
    if tolerated:
        lines[0] += "; rolled back within the failure budget: %s" % ", ".join(
            record.host for record in tolerated
        )
        for record in tolerated:
            lines.extend("  " + str(outcome) for outcome in outcomes(record, release))
    return lines
