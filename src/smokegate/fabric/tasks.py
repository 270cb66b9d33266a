"""Fabric tasks: ``fab smoke``, ``deploy``, ``rollback`` and ``releases``.

Use them from the repository's fabfile, or import them into your own::

    # fabfile.py
    from smokegate.fabric.tasks import deploy, releases, rollback, smoke  # noqa: F401

and select the fleet executor in a ``fabric.yaml`` beside it, so that a deploy is one
rolling deploy across the whole ``-H`` list and a smoke run covers every host at once::

    tasks:
      executor_class: smokegate.fabric.executor.FleetExecutor

Exit codes: 0 ok; 1 a host failed, was unreachable, or a deploy was rolled back or refused;
2 bad options or spec (no host was touched); 3 (deploy) the release went out, except on
hosts rolled back within the failure budget (--max-fail).
"""

from __future__ import annotations

import os
import sys
import tarfile
from typing import Any

from fabric import Connection
from invoke import Exit

from smokegate import fleet, remote, rollout
from smokegate.engine import protocol, report, spec, units
from smokegate.engine import releases as release_dirs
from smokegate.fabric.executor import fleet_task
from smokegate.specfile import SpecFileError, read_document, unknown_only

EXIT_FAILED, EXIT_USAGE, EXIT_TOLERATED = 1, 2, 3
FORMATS = ("human", "json", "junit", "tap", "nagios", "prometheus")
EXECUTOR_HINT = (
    "add 'tasks: {executor_class: smokegate.fabric.executor.FleetExecutor}' "
    "to the fabric.yaml beside your fabfile"
)

SERIAL = ",".join(str(size) for size in protocol.SERIAL)
RESTART_HELP = {
    "restart": "shell command run in the release directory after a switch",
    "restart-timeout": "seconds the restart command may take (default: %g)"
    % protocol.RESTART_TIMEOUT,
}
COMMON_HELP = {
    "sudo": "run the engine with sudo on the hosts (a password comes from "
    "--prompt-for-sudo-password)",
    "python": "Python 3.8+ on the hosts (default: python3)",
    "parallel": "hosts worked on at once (default: %d)" % fleet.PARALLEL,
}


def _usage(message: str) -> Exit:
    return Exit("smokegate: %s" % message, code=EXIT_USAGE)


def _hosts(c: Any, sudo: bool, python: str, task: str) -> list[remote.RemoteHost]:
    if isinstance(c, Connection):  # called per host by Fabric's own executor
        connections = [remote.bounded(c)]
    else:
        hosts = getattr(c, "smokegate_hosts", None)
        if not hosts:
            raise _usage("%s: no hosts; give them with -H host1,host2" % task)
        connections = [remote.connect(host, c.config) for host in hosts]
    return [remote.RemoteHost(connection, sudo=sudo, python=python) for connection in connections]


def _parallel(value: Any) -> int:
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if limit < 1:
        raise _usage("--parallel must be a number of hosts, 1 or more")
    return limit


def _close(hosts: list[remote.RemoteHost]) -> None:
    for host in hosts:
        host.close()


def _load_spec(path: str) -> tuple[Any, list[spec.Check]]:
    """The spec document and its checks, validated here before any host is touched."""
    try:
        document = read_document(path)
        return document, spec.parse_spec(document)
    except SpecFileError as exc:
        raise _usage(str(exc)) from None
    except spec.SpecError as exc:
        raise _usage(
            "%s is not a valid spec (no host was touched):\n  %s" % (path, "\n  ".join(exc.errors))
        ) from None


def _smoke_options(
    checks: str, only: list[str] | None, deadline: str
) -> tuple[Any, list[spec.Check], float | None]:
    document, parsed = _load_spec(checks)
    hints = unknown_only(parsed, only, checks)
    if hints:
        raise _usage("\n  ".join(hints))
    try:
        bound = float(deadline) if deadline else None
    except ValueError:
        raise _usage("--deadline must be a number of seconds") from None
    if bound is not None and bound <= 0:
        raise _usage("--deadline must be greater than 0")
    return document, parsed, bound


@fleet_task(
    auto_shortflags=False,
    iterable=["only"],
    help={
        "checks": "the smoke spec, YAML or JSON (default: smoke.yml)",
        "format": "report format: human (default), json, junit, tap, nagios (with a "
        "plugin's exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) or prometheus",
        "only": "NAME: run only this check (repeat for more); the rest are skipped",
        "deadline": "bound each host's run to this many seconds",
        **COMMON_HELP,
    },
)
def smoke(
    c: Any,
    checks: str = "smoke.yml",
    format: str = "human",
    only: list[str] | None = None,
    deadline: str = "",
    sudo: bool = False,
    python: str = "python3",
    parallel: int = fleet.PARALLEL,
) -> None:
    """Run a smoke spec on every host at once (one SSH exec each) and report.

    Exits 1 when a critical check did not pass on some host or a host was unreachable
    (with --format nagios: 2; 1 when only warning-severity checks failed; 3 when nothing ran).
    """
    if format not in FORMATS:
        raise _usage("--format must be one of %s" % ", ".join(FORMATS))
    try:
        document, parsed, bound = _smoke_options(checks, only, deadline)
        limit = _parallel(parallel)
        hosts = _hosts(c, sudo, python, "smoke")
    except Exit as exc:
        if format != "nagios":
            raise
        print(report.nagios_unknown(str(exc.message)))  # nothing ran: what Nagios reads
        raise Exit(code=report.NAGIOS_UNKNOWN) from None
    try:
        results = fleet.smoke(hosts, document, parsed, only=only, deadline=bound, limit=limit)
    finally:
        _close(hosts)
    print(report.render(format, results, color=format == "human" and report.use_color(sys.stdout)))
    if format == "nagios":
        status = report.nagios_status(results)
        if status:
            raise Exit(code=status)
    elif not protocol.fleet_ok(results):
        raise Exit(code=EXIT_FAILED)


@fleet_task(
    auto_shortflags=False,
    iterable=["shared"],
    help={
        "artifact": "a .tar.gz on this machine whose contents become the release (required)",
        "root": "the deploy root on the hosts, such as /srv/app (required)",
        "checks": "the smoke spec that gates every batch (required)",
        "release": "the release id (default: a UTC timestamp, the same on every host)",
        "serial": "batch sizes, host counts or percentages; the last one repeats "
        "(default: %s: a canary first)" % SERIAL,
        **RESTART_HELP,
        "keep": "releases to keep on each host after a good deploy (default: %d)"
        % protocol.KEEP_RELEASES,
        "rollback-scope": "all (default): every host that got the release; failed: "
        "only the hosts that failed",
        "shared": "PATH: a path in the release linked to <root>/shared (repeat for more; "
        "a trailing / creates a missing directory)",
        "max-unpacked": "refuse an artifact whose contents are larger than this "
        "(bytes or 500M, 2GiB, ...; default: %s)" % protocol.MAX_UNPACKED,
        "bake": "seconds to keep checking each batch after it passed, every --bake-interval; "
        "a failure in any round rolls back as a failed smoke does (default: 0, no bake)",
        "bake-interval": "seconds between bake rounds (default: %g)" % protocol.BAKE_INTERVAL,
        "max-fail": "N or N% of the hosts: failed hosts tolerated, each rolled back alone "
        "while the rollout goes on (never in the first batch); exit 3 then (default: 0)",
        "baseline": "refuse (default): before any change, run the checks on each host's "
        "current release and stop if one already fails; ignore: such checks do not judge "
        "the release on that host; off: no baseline",
        **COMMON_HELP,
    },
)
def deploy(
    c: Any,
    artifact: str = "",
    root: str = "",
    checks: str = "",
    release: str = "",
    serial: str = SERIAL,
    restart: str = "",
    restart_timeout: float = protocol.RESTART_TIMEOUT,
    keep: int = protocol.KEEP_RELEASES,
    rollback_scope: str = "all",
    shared: list[str] | None = None,
    max_unpacked: str = protocol.MAX_UNPACKED,
    bake: float = protocol.BAKE_SECONDS,
    bake_interval: float = protocol.BAKE_INTERVAL,
    max_fail: str = protocol.MAX_FAIL,
    baseline: str = protocol.BASELINE_DEFAULT,
    sudo: bool = False,
    python: str = "python3",
    parallel: int = fleet.PARALLEL,
) -> None:
    """One rolling deploy across every -H host, gated by smoke checks after each batch.

    Locks every host (and runs the checks on its current release: --baseline), then per
    batch: upload (SFTP), then one request: unpack, switch, restart, smoke, bake, record
    good. When a critical check fails, a step fails, or a host drops, beyond the failure
    budget, no further batch starts, every host in the rollback scope goes back to the
    release it had before (restarted and smoke-checked again), and the task exits 1 with a
    summary; within the budget the host alone goes back and the task ends with exit 3.
    """
    if isinstance(c, Connection):
        raise _usage("deploy must see every host at once: %s" % EXECUTOR_HINT)
    missing = [
        flag
        for flag, value in (("--artifact", artifact), ("--root", root), ("--checks", checks))
        if not value
    ]
    if missing:
        raise _usage("deploy needs %s" % ", ".join(missing))
    if not os.path.isfile(artifact) or not tarfile.is_tarfile(artifact):
        raise _usage("--artifact %s is not a .tar.gz on this machine" % artifact)
    if rollback_scope not in protocol.ROLLBACK_SCOPES:
        raise _usage("--rollback-scope must be %s" % " or ".join(protocol.ROLLBACK_SCOPES))
    if int(keep) < 1:
        raise _usage("--keep must be at least 1")
    if baseline not in protocol.BASELINES:
        raise _usage("--baseline must be %s" % ", ".join(protocol.BASELINES))
    if float(bake) < 0 or float(bake_interval) <= 0:
        raise _usage("--bake must be 0 or more seconds and --bake-interval more than 0")
    limit = _parallel(parallel)
    release = release or protocol.release_id()
    try:
        release_dirs.valid_id(release)
        batch_sizes = rollout.parse_serial(serial)
        unpacked_limit = units.parse_size(max_unpacked)
        tolerated = protocol.max_fail(max_fail, len(getattr(c, "smokegate_hosts", None) or []))
    except (release_dirs.ReleaseError, ValueError) as exc:
        raise _usage(str(exc)) from None
    document, parsed = _load_spec(checks)
    hosts = _hosts(c, sudo, python, "deploy")
    try:
        run = rollout.Deploy(
            hosts=hosts,
            root=root,
            artifact=artifact,
            document=document,
            checks=parsed,
            release=release,
            serial=batch_sizes,
            restart=restart or None,
            restart_timeout=float(restart_timeout),
            keep=int(keep),
            scope=rollback_scope,
            shared=shared or [],
            max_unpacked=unpacked_limit,
            bake=float(bake),
            bake_interval=float(bake_interval),
            max_fail=tolerated,
            baseline=baseline,
            max_parallel=limit,
            out=rollout.printer(),
            recovery_options=[
                *(["--restart", restart] if restart else []),
                "--checks",
                checks,
                *(["--sudo"] if sudo else []),
                *(["--python", python] if python != "python3" else []),
            ],
        )
        outcome = run.run()
    finally:
        _close(hosts)
    if outcome == rollout.HALTED:
        raise Exit(code=EXIT_FAILED)
    if outcome == rollout.TOLERATED:
        raise Exit(code=EXIT_TOLERATED)


@fleet_task(
    auto_shortflags=False,
    help={
        "root": "the deploy root on the hosts (required)",
        "to": "switch to exactly this release; a re-run then changes nothing "
        "(default: the release recorded before the current one)",
        "release": "abandon this release: roll back where it is current, mark it failed, "
        "and release its deploy lock (what a deploy that lost a host leaves behind)",
        "checks": "smoke spec to verify the hosts with afterwards",
        **RESTART_HELP,
        **COMMON_HELP,
    },
)
def rollback(
    c: Any,
    root: str = "",
    to: str = "",
    release: str = "",
    checks: str = "",
    restart: str = "",
    restart_timeout: float = protocol.RESTART_TIMEOUT,
    sudo: bool = False,
    python: str = "python3",
    parallel: int = fleet.PARALLEL,
) -> None:
    """Put every host back on its previous good release (from the ledger) or on --to.

    The release left behind is marked failed. Restarts where something changed and
    verifies with --checks. Exits 1 if any host could not be rolled back or verified.
    """
    if not root:
        raise _usage("rollback needs --root")
    try:
        for given in (to, release):
            if given:
                release_dirs.valid_id(given)
    except release_dirs.ReleaseError as exc:
        raise _usage(str(exc)) from None
    limit = _parallel(parallel)
    document, parsed = _load_spec(checks) if checks else (None, None)
    hosts = _hosts(c, sudo, python, "rollback")
    try:
        outcomes = fleet.rollback(
            hosts,
            root,
            to=to or None,
            release=release or None,
            unlock=release or None,
            restart=restart or None,
            restart_timeout=float(restart_timeout),
            document=document,
            checks=parsed,
            limit=limit,
        )
    finally:
        _close(hosts)
    for outcome, _answer in outcomes:
        print(outcome)
    if not all(answer.ok for _outcome, answer in outcomes):
        raise Exit(code=EXIT_FAILED)


@fleet_task(
    auto_shortflags=False,
    help={
        "root": "the deploy root on the hosts (required)",
        "format": "human (a table, default) or json",
        **COMMON_HELP,
    },
)
def releases(
    c: Any,
    root: str = "",
    format: str = "human",
    sudo: bool = False,
    python: str = "python3",
    parallel: int = fleet.PARALLEL,
) -> None:
    """List each host's releases: id, state, when activated, and * for current."""
    if not root:
        raise _usage("releases needs --root")
    if format not in ("human", "json"):
        raise _usage("--format must be human or json")
    limit = _parallel(parallel)
    hosts = _hosts(c, sudo, python, "releases")
    try:
        infos = fleet.release_info(hosts, root, limit)
    finally:
        _close(hosts)
    if format == "json":
        import json

        print(
            json.dumps(
                {
                    host.name: {"error": info.reason}
                    if isinstance(info, remote.HostError)
                    else info
                    for host, info in zip(hosts, infos)
                },
                indent=2,
            )
        )
    else:
        print(fleet.render_releases(hosts, infos))
    if any(isinstance(info, remote.HostError) for info in infos):
        raise Exit(code=EXIT_FAILED)
