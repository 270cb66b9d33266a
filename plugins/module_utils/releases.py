# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release directories, the ledger, the deploy lock and the atomic switch on one host.

Layout (Capistrano-compatible)::

    <root>/releases/<id>/        one directory per release
    <root>/shared/               state that survives releases
    <root>/current -> releases/<id>
    <root>/.smokegate/ledger.json
    <root>/.smokegate/lock       present while a deploy holds the host

The ledger is one JSON document, written atomically (temp file, fsync, rename)::

    {"format": 1,
     "releases": {"<id>": {"state": "staged|deployed|good|failed", "seq": 3,
                            "created_at": "2026-11-21T18:36:00Z", "activated_at": null,
                            "previous": "<id that was current when this one was activated>",
                            "failed_at": null, "reason": null}},
     "events": [{"at": "...", "event": "activate|rollback|fail|good|prune|create",
                 "release": "<id>", "from": "<id>|null"}]}

``current`` itself is never stored: the symlink is the truth. The rollback target of a
release is found by walking its recorded ``previous`` chain past failed or missing
releases, never from directory names or mtimes. A current release the ledger does not
know (a tree taken over from Capistrano or ansistrano, whose ``current`` is an absolute
link) is adopted as good: it is what runs. Other directories it does not know are
*unrecorded*: listed, valid as explicit targets, never chosen by themselves.

Every change to the ledger is a read-modify-write under an ``flock`` of
``.smokegate/ledger.lock``, so concurrent writers (two deploys' ``release`` calls, a
rollback by hand during a deploy) lose no entry.

Every method takes ``dry_run`` for Ansible's check mode and returns whether anything
changed (or would have).

>>> import tempfile
>>> root = DeployRoot(tempfile.mkdtemp())
>>> src = tempfile.mkdtemp()
>>> root.create("v1", src=src), root.activate("v1"), root.current()
(True, True, 'v1')
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import stat
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .protocol import MAX_UNPACKED

LEDGER_FORMAT = 1
MAX_EVENTS = 500
STATES = ("staged", "deployed", "good", "failed")
# How long a ledger writer waits for another to finish its read-modify-write.
LEDGER_LOCK_SECONDS = 30
# Printable ASCII only: no '/', no whitespace or control characters, no bidi tricks, and
# nothing a command line would read as an option.
_RELEASE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+:@=,~-]{0,127}")


class ReleaseError(Exception):
    """An operation that cannot be done; the message says why and what to do."""


class LockHeld(ReleaseError):
    def __init__(self, path: str, holder: Dict[str, Any]) -> None:
        self.holder = holder
        pid = holder.get("pid")
        super().__init__(
            "deploy lock %s is held by %s (release %s, since %s%s); wait for that deploy, "
            "or remove the lock if it is dead"
            % (
                path,
                holder.get("holder", "?"),
                holder.get("release", "?"),
                holder.get("since", "?"),
                "; controller pid %s" % pid if pid is not None else "",
            )
        )


def failure(exc: Exception, root: str) -> Dict[str, Any]:
    """How a module reports ``exc``, raised by a DeployRoot operation on ``root``: ``msg``,
    plus the holder as ``lock`` when the deploy lock refused.

    >>> failure(FileNotFoundError(2, "No such file or directory", "/srv/app/releases"), "/srv/app")
    {'msg': '/srv/app/releases: No such file or directory'}
    """
    if isinstance(exc, LockHeld):
        return {"msg": str(exc), "lock": exc.holder}
    if isinstance(exc, OSError):
        return {"msg": "%s: %s" % (exc.filename or root, exc.strerror or exc)}
    return {"msg": str(exc)}


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def valid_id(release: str) -> str:
    """``release`` if it can name a directory under releases/; ReleaseError otherwise.

    >>> valid_id("20261121T120000Z"), valid_id("v1.2.3+build.7")
    ('20261121T120000Z', 'v1.2.3+build.7')
    >>> try:
    ...     valid_id("-rf")
    ... except ReleaseError as exc:
    ...     print(str(exc)[:38])
    '-rf' is not a valid release id (up to
    """
    if not isinstance(release, str) or not _RELEASE_ID.fullmatch(release):
        raise ReleaseError(
            "%r is not a valid release id (up to 128 letters, digits and _.+:@=,~-, "
            "starting with a letter, digit or _)" % (release,)
        )
    return release


def _fsync_dir(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    temp = "%s.tmp-%d" % (path, os.getpid())
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temp, path)
    _fsync_dir(os.path.dirname(path))


def check_ledger(ledger: Any, path: str) -> Dict[str, Any]:
    """``ledger`` if it has the shape this smokegate writes; ReleaseError naming the field.

    >>> try:
    ...     check_ledger({"format": 1, "releases": {"v1": {"state": "gone"}}}, "ledger.json")
    ... except ReleaseError as exc:
    ...     print(exc)
    ledger ledger.json: releases['v1'].state is 'gone', not one of staged, deployed, good, failed
    """

    def bad(where: str, problem: str) -> ReleaseError:
        return ReleaseError("ledger %s: %s %s" % (path, where, problem))

    if not isinstance(ledger, dict):
        raise bad("the document", "is %s, not an object" % type(ledger).__name__)
    if ledger.get("format") != LEDGER_FORMAT:
        raise ReleaseError(
            "ledger %s has format %r; this smokegate reads format %d"
            % (path, ledger.get("format"), LEDGER_FORMAT)
        )
    releases = ledger.get("releases")
    if not isinstance(releases, dict):
        raise bad("releases", "must be an object of release entries")
    for release, entry in releases.items():
        where = "releases[%r]" % release
        if not _RELEASE_ID.fullmatch(release):
            raise bad(where, "is not a valid release id")
        if not isinstance(entry, dict):
            raise bad(where, "must be an object")
        if entry.get("state") not in STATES:
            raise bad(
                where + ".state", "is %r, not one of %s" % (entry.get("state"), ", ".join(STATES))
            )
        previous = entry.get("previous")
        if previous is not None and not (
            isinstance(previous, str) and _RELEASE_ID.fullmatch(previous)
        ):
            raise bad(where + ".previous", "is %r, not a release id or null" % (previous,))
        sequence = entry.get("seq", 0)
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise bad(where + ".seq", "is %r, not a whole number" % (sequence,))
    if not isinstance(ledger.get("events", []), list):
        raise bad("events", "must be a list")
    return ledger


class DeployRoot:
    """One deploy root on this host."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.releases_dir = os.path.join(self.root, "releases")
        self.shared_dir = os.path.join(self.root, "shared")
        self.current_link = os.path.join(self.root, "current")
        self.state_dir = os.path.join(self.root, ".smokegate")
        self.ledger_path = os.path.join(self.state_dir, "ledger.json")
        self.ledger_lock_path = os.path.join(self.state_dir, "ledger.lock")
        self.lock_path = os.path.join(self.state_dir, "lock")

    # --- reading -------------------------------------------------------------------
    def _read_ledger(self) -> Dict[str, Any]:
        try:
            with open(self.ledger_path, "rb") as handle:
                ledger = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            return {"format": LEDGER_FORMAT, "releases": {}, "events": []}
        except ValueError as exc:  # UnicodeDecodeError is one too
            raise ReleaseError(
                "ledger %s is not valid JSON: %s" % (self.ledger_path, exc)
            ) from None
        return check_ledger(ledger, self.ledger_path)

    def ledger(self) -> Dict[str, Any]:
        """The ledger; a current release it does not know is adopted (in memory) as good."""
        ledger = self._read_ledger()
        current = self.current()
        if current is not None and current not in ledger["releases"] and self.exists(current):
            ledger["releases"][current] = {
                "state": "good",
                "seq": 0,
                "created_at": None,
                "activated_at": None,
                "previous": None,
                "failed_at": None,
                "reason": None,
                "adopted_at": utc_now(),
            }
            ledger["events"] = [
                *ledger.get("events", []),
                {"at": utc_now(), "event": "adopt", "release": current},
            ]
        return ledger

    def current(self) -> Optional[str]:
        """The current release's id; ReleaseError when current is not a link into releases/."""
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise ReleaseError("%s exists but is not a symlink" % self.current_link) from None
            raise
        # Relative (as smokegate writes it) or absolute (as Capistrano and ansistrano do).
        parent, name = os.path.split(os.path.normpath(os.path.join(self.root, target)))
        if parent != self.releases_dir and not _same_directory(parent, self.releases_dir):
            raise ReleaseError(
                "%s points to %s, which is not a release in %s"
                % (self.current_link, target, self.releases_dir)
            )
        if not _RELEASE_ID.fullmatch(name):
            raise ReleaseError(
                "%s points to %r, which is not a valid release id" % (self.current_link, name)
            )
        return name

    def release_path(self, release: str) -> str:
        return os.path.join(self.releases_dir, valid_id(release))

    def exists(self, release: str) -> bool:
        return os.path.isdir(self.release_path(release))

    def rollback_target(
        self, release: Optional[str] = None, ledger: Optional[Dict[str, Any]] = None
    ) -> Optional[str]:
        """The release to go back to from ``release`` (default: current), from the ledger."""
        ledger = ledger if ledger is not None else self.ledger()
        release = release if release is not None else self.current()
        entries = ledger["releases"]
        seen = set()
        candidate = entries.get(release, {}).get("previous") if release else None
        while candidate and candidate not in seen:
            seen.add(candidate)
            entry = entries.get(candidate, {})
            if candidate != release and entry.get("state") != "failed" and self.exists(candidate):
                return candidate
            candidate = entry.get("previous")
        return None

    def _on_disk(self) -> List[str]:
        if not os.path.isdir(self.releases_dir):
            return []
        return sorted(name for name in os.listdir(self.releases_dir) if not name.startswith("."))

    def info(self) -> Dict[str, Any]:
        ledger = self.ledger()
        current = self.current()
        on_disk = self._on_disk()
        listed = []
        entries = ledger["releases"]
        for release in sorted(entries, key=lambda name: entries[name].get("seq", 0)):
            entry = dict(entries[release])
            entry.update(id=release, current=release == current, present=release in on_disk)
            listed.append(entry)
        for release in on_disk:
            if release not in entries:
                listed.append(
                    {
                        "id": release,
                        "state": "unrecorded",
                        "current": release == current,
                        "present": True,
                    }
                )
        return {
            "root": self.root,
            "current": current,
            "rollback_target": self.rollback_target(current, ledger),
            "releases": listed,
            "lock": self.lock_holder(),
        }

    def lock_holder(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.lock_path, "rb") as handle:
                holder = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"holder": "unreadable lock file"}
        return holder if isinstance(holder, dict) else {"holder": "unreadable lock file"}

    # --- writing -------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self) -> Iterator[Dict[str, Any]]:
        """The ledger, held under an exclusive flock until the block ends."""
        os.makedirs(self.state_dir, exist_ok=True)
        handle = os.open(self.ledger_lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + LEDGER_LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ReleaseError(
                            "ledger %s: another smokegate process kept it locked for %d s"
                            % (self.ledger_path, LEDGER_LOCK_SECONDS)
                        ) from None
                    time.sleep(0.01)
            yield self.ledger()
        finally:
            os.close(handle)  # closing the descriptor releases the flock

    def _ledger_for(self, dry_run: bool) -> Any:
        """A context giving the ledger: to edit, or (check mode) only to read."""
        return contextlib.nullcontext(self.ledger()) if dry_run else self._editing()

    def _save(
        self, ledger: Dict[str, Any], event: str, release: Optional[str], **extra: Any
    ) -> None:
        record = {"at": utc_now(), "event": event, "release": release}
        record.update(extra)
        ledger["events"] = [*ledger.get("events", []), record][-MAX_EVENTS:]
        os.makedirs(self.state_dir, exist_ok=True)
        write_atomic(self.ledger_path, json.dumps(ledger, indent=1, sort_keys=True).encode())

    def create(
        self,
        release: str,
        src: Optional[str] = None,
        archive: Optional[str] = None,
        shared: Optional[List[str]] = None,
        max_unpacked: Any = MAX_UNPACKED,
        dry_run: bool = False,
    ) -> bool:
        """Create releases/<release> from a directory or a .tar.gz on this host.

        An archive is unpacked by extract.py, which refuses what would escape the release
        or fill the disk before it writes anything. The files land in a temporary directory
        that is synced to disk and then renamed into place, so a failed unpack (a full
        disk, a refused member) leaves no half-made release behind and the ledger as it was.
        """
        # Only this stage unpacks: the other requests do not load the extractor.
        import tarfile

        from .extract import UnsafeArchive, extract, sync_filesystem
        from .units import parse_size

        if (src is None) == (archive is None):
            raise ReleaseError("give exactly one of src (a directory) or archive (a .tar.gz)")
        path = self.release_path(release)
        try:
            limit = parse_size(max_unpacked)
        except ValueError as exc:
            raise ReleaseError("max_unpacked: %s" % exc) from None
        self.ledger()  # a ledger this smokegate cannot read refuses before anything is written
        if os.path.isdir(path):
            return False
        source = src or archive or ""
        if not os.path.exists(source):
            raise ReleaseError("%s does not exist on this host" % source)
        if dry_run:
            return True
        for directory in (self.releases_dir, self.shared_dir):
            os.makedirs(directory, exist_ok=True)
        temp = os.path.join(self.releases_dir, ".%s.tmp-%d" % (release, os.getpid()))
        shutil.rmtree(temp, ignore_errors=True)  # left by a run that died with our pid
        try:
            if src is not None:
                shutil.copytree(src, temp, symlinks=True)
            else:
                extract(archive or "", temp, limit, shared or [])
            self._link_shared(temp, shared or [])
            sync_filesystem(temp)
            os.rename(temp, path)
            _fsync_dir(self.releases_dir)
        except UnsafeArchive as exc:
            shutil.rmtree(temp, ignore_errors=True)
            raise ReleaseError("refused release %s: %s" % (release, exc)) from None
        except (OSError, tarfile.TarError, shutil.Error, EOFError, zlib.error) as exc:
            shutil.rmtree(temp, ignore_errors=True)
            raise ReleaseError(self._describe_failure(release, exc)) from None
        except ReleaseError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        with self._editing() as ledger:
            entries = ledger["releases"]
            sequence = 1 + max([entry.get("seq", 0) for entry in entries.values()] or [0])
            entries[release] = {
                "state": "staged",
                "seq": sequence,
                "created_at": utc_now(),
                "activated_at": None,
                "previous": None,
                "failed_at": None,
                "reason": None,
            }
            self._save(ledger, "create", release)
        return True

    def _describe_failure(self, release: str, exc: BaseException) -> str:
        import tarfile

        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if isinstance(exc, shutil.Error) and "No space left" in str(exc):
            reason = "No space left on device"
        if getattr(exc, "errno", None) == errno.ENOSPC or reason == "No space left on device":
            usage = os.statvfs(self.releases_dir)
            return (
                "disk full: No space left on device while creating release %s in %s (%d bytes free)"
                % (
                    release,
                    self.releases_dir,
                    usage.f_bavail * usage.f_frsize,
                )
            )
        if isinstance(exc, (tarfile.TarError, EOFError, zlib.error)):
            reason = "the archive is not a readable .tar.gz (%s)" % reason
        return "cannot create release %s: %s" % (release, reason)

    def _link_shared(self, release_dir: str, shared: List[str]) -> None:
        for entry in shared:
            relative = entry.strip("/")
            parts = relative.split("/")
            if not relative or any(part in ("", ".", "..") for part in parts):
                raise ReleaseError(
                    "shared path %r must be relative to the release, without '..'" % entry
                )
            # Decided from lstat, never by following a link: a shared path through a symlink
            # of the release would replace (and delete) whatever the link points at.
            for depth in range(1, len(parts) + 1):
                here = "/".join(parts[:depth])
                try:
                    mode = os.lstat(os.path.join(release_dir, here)).st_mode
                except FileNotFoundError:
                    break
                if stat.S_ISLNK(mode):
                    raise ReleaseError(
                        "shared path %r: %s in the release is a symlink; a shared path may "
                        "not be or pass through one" % (entry, here)
                    )
                if depth < len(parts) and not stat.S_ISDIR(mode):
                    raise ReleaseError(
                        "shared path %r: %s in the release is not a directory" % (entry, here)
                    )
            shared_path = os.path.join(self.shared_dir, relative)
            if not os.path.exists(shared_path):
                if not entry.endswith("/"):
                    raise ReleaseError(
                        "%s does not exist; create it first (a trailing / in the shared list "
                        "creates a missing directory)" % shared_path
                    )
                os.makedirs(shared_path)
            link = os.path.join(release_dir, relative)
            if os.path.lexists(link):
                if stat.S_ISDIR(os.lstat(link).st_mode):
                    shutil.rmtree(link)
                else:
                    os.unlink(link)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            # Relative, so it survives the rename into place (same depth) and keeps working
            # when the root is seen under another path (a bind mount).
            os.symlink(os.path.relpath(shared_path, os.path.dirname(link)), link)

    def _switch(self, release: Optional[str]) -> None:
        """Point current at ``release`` atomically (symlink to a temp name, rename over)."""
        if release is None:
            if os.path.lexists(self.current_link):
                os.unlink(self.current_link)
            return
        temp = os.path.join(self.root, ".current.tmp-%d" % os.getpid())
        if os.path.lexists(temp):
            os.unlink(temp)
        os.symlink(os.path.join("releases", release), temp)
        os.rename(temp, self.current_link)
        _fsync_dir(self.root)

    def activate(self, release: str, dry_run: bool = False) -> bool:
        """Make ``release`` current, recording which release it replaced."""
        if not self.exists(release):
            if dry_run:  # in check mode the release an earlier task would create is missing
                return True
            raise ReleaseError("release %s does not exist in %s" % (release, self.releases_dir))
        with self._ledger_for(dry_run) as ledger:
            entry = ledger["releases"].get(release)
            if entry and entry.get("state") == "failed":
                raise ReleaseError(
                    "release %s is marked failed; deploy it under a new id" % release
                )
            current = self.current()
            if current == release:
                return False
            if dry_run:
                return True
            self._switch(release)
            entry = ledger["releases"].setdefault(
                release, {"seq": 0, "created_at": None, "failed_at": None, "reason": None}
            )
            entry.update(state="deployed", activated_at=utc_now(), previous=current)
            self._save(ledger, "activate", release, **{"from": current})
        return True

    def mark_good(self, release: str, dry_run: bool = False) -> bool:
        """Record that ``release`` passed its smoke checks; it must be current."""
        current = self.current()
        if current != release:
            if dry_run:
                return True
            raise ReleaseError(
                "release %s is not current (current: %s); only the current release can be marked good"
                % (release, current)
            )
        with self._ledger_for(dry_run) as ledger:
            entry = ledger["releases"].get(release, {})
            if entry.get("state") == "good":
                return False
            if dry_run:
                return True
            ledger["releases"].setdefault(release, entry).update(state="good")
            self._save(ledger, "good", release)
        return True

    def _mark_failed(self, ledger: Dict[str, Any], release: str, reason: str) -> bool:
        entry = ledger["releases"].get(release)
        if entry is None and not self.exists(release):
            return False
        if entry is None:
            entry = ledger["releases"][release] = {
                "seq": 0,
                "created_at": None,
                "activated_at": None,
                "previous": None,
            }
        if entry.get("state") == "failed":
            return False
        entry.update(state="failed", failed_at=utc_now(), reason=reason)
        return True

    def no_target(self, release: str, ledger: Dict[str, Any]) -> str:
        """Why ``release`` cannot be left without an explicit target, and how to name one."""
        entries = ledger["releases"]
        present = [
            "%s (%s)" % (name, entries[name].get("state") if name in entries else "unrecorded")
            for name in self._on_disk()
            if name != release
        ]
        return (
            "no earlier good release of %s is recorded to go back to from %s, and a rollback "
            "does not leave a host without a release; releases on disk: %s; pick one with "
            "-e smokegate_rollback_to=ID (ansible-playbook) or --to ID (fab rollback)"
            % (self.root, release, ", ".join(present) or "none")
        )

    def _rollback_plan(
        self,
        ledger: Dict[str, Any],
        current: Optional[str],
        release: Optional[str],
        to: Optional[str],
    ) -> Tuple[Optional[str], bool, Optional[str]]:
        """(target, whether current switches, the release abandoned)."""
        entries = ledger["releases"]
        if to is not None:
            if not self.exists(to):
                raise ReleaseError("release %s does not exist in %s" % (to, self.releases_dir))
            if entries.get(to, {}).get("state") == "failed":
                raise ReleaseError(
                    "release %s is marked failed and cannot be a rollback target" % to
                )
            if release is None:
                return to, current != to, current if current != to else None
            return to, current != to, release
        abandoned = release if release is not None else current
        if abandoned is None:
            return current, False, None
        target = self.rollback_target(abandoned, ledger)
        switch = current == abandoned
        if switch and target is None:
            # Only a deploy whose host had no current before may leave it without one: the
            # release it abandons was activated (by smokegate, not adopted) over nothing.
            entry = entries.get(abandoned) or {}
            first = bool(entry.get("activated_at")) and entry.get("previous") is None
            if release is None or not first or entry.get("adopted_at"):
                raise ReleaseError(self.no_target(abandoned, ledger))
        return target, switch, abandoned

    def rollback(
        self,
        release: Optional[str] = None,
        to: Optional[str] = None,
        reason: str = "rolled back",
        dry_run: bool = False,
    ) -> Dict[str, Any]:
        """Abandon ``release`` (default: current) and go back.

        With ``to``, switch to exactly that release; otherwise to the rollback target
        recorded for ``release``. Without a recorded target this refuses, naming the
        releases on disk, except for a deploy abandoning a first release (``release``
        given, activated when the host had no current): then current is removed, as it
        was before. The abandoned release is marked failed. Running it again changes
        nothing. Returns {"changed", "from", "to", "abandoned"}.
        """
        for given in (release, to):
            if given is not None:
                valid_id(given)
        with self._ledger_for(dry_run) as ledger:
            current = self.current()
            target, switch, abandoned = self._rollback_plan(ledger, current, release, to)
            fails = (
                abandoned is not None
                and abandoned != target
                and self._mark_failed(ledger, abandoned, reason)
            )
            changed = switch or fails
            if changed and not dry_run:
                if switch:
                    self._switch(target)
                self._save(
                    ledger,
                    "rollback",
                    abandoned,
                    **{"from": current, "to": target if switch else current},
                )
        return {
            "changed": changed,
            "from": current,
            "to": target if switch else current,
            "abandoned": abandoned,
        }

    def prune(self, keep: int, dry_run: bool = False) -> List[str]:
        """Remove old releases; keep the newest ``keep`` non-failed ones, the current one,
        its rollback target and the newest failed one (for inspection). Release
        directories the ledger does not know are never touched. Returns the removed ids."""
        if keep < 1:
            raise ReleaseError("keep must be at least 1")
        with self._ledger_for(dry_run) as ledger:
            current = self.current()
            protected = {current, self.rollback_target(current, ledger)}
            entries = ledger["releases"]
            newest_first = sorted(
                entries, key=lambda name: entries[name].get("seq", 0), reverse=True
            )
            good = [name for name in newest_first if entries[name].get("state") != "failed"]
            failed = [name for name in newest_first if entries[name].get("state") == "failed"]
            protected.update(good[:keep])
            protected.update(failed[:1])
            doomed = [name for name in newest_first if name not in protected and self.exists(name)]
            if doomed and not dry_run:
                for name in doomed:
                    shutil.rmtree(self.release_path(name))
                    entries.pop(name, None)
                self._save(ledger, "prune", None, removed=doomed)
        return doomed

    def lock(
        self, release: str, holder: str, pid: Optional[int] = None, dry_run: bool = False
    ) -> bool:
        """Take the deploy lock (atomic create). The same holder taking it again for the
        same release is a no-op; anyone else is refused with the holder's details."""
        valid_id(release)
        self.ledger()  # a ledger this smokegate cannot read refuses before the host is held
        existing = self.lock_holder()
        if existing is not None:
            if existing.get("release") == release and existing.get("holder") == holder:
                return False
            raise LockHeld(self.lock_path, existing)
        if dry_run:
            return True
        os.makedirs(self.state_dir, exist_ok=True)
        record = {
            "holder": holder,
            "pid": pid,  # the deploying process on the controller, when the caller knows it
            "host": socket.gethostname(),
            "since": utc_now(),
            "release": release,
        }
        # Written whole under a private name, then linked into place: link() fails when
        # the lock exists, and a reader never sees a lock file without its content.
        temp = "%s.tmp-%d-%s" % (self.lock_path, os.getpid(), os.urandom(4).hex())
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump(record, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.link(temp, self.lock_path)
        except FileExistsError:  # another deploy won the race between our read and link
            raise LockHeld(self.lock_path, self.lock_holder() or {}) from None
        finally:
            os.unlink(temp)
        _fsync_dir(self.state_dir)
        return True

    def unlock(
        self,
        release: Optional[str] = None,
        holder: Optional[str] = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> bool:
        """Release the lock if ``release`` holds it, and ``holder`` when given (or with
        ``force``). A lock held by another release or another run is left alone: False."""
        existing = self.lock_holder()
        if existing is None:
            return False
        if not force and (
            existing.get("release") != release
            or (holder is not None and existing.get("holder") != holder)
        ):
            return False
        if not dry_run:
            os.unlink(self.lock_path)
        return True


def _same_directory(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
