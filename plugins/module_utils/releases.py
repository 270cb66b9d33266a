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
releases, never from directory names or mtimes.

Every method takes ``dry_run`` for Ansible's check mode and returns whether anything
changed (or would have).

>>> import tempfile
>>> root = DeployRoot(tempfile.mkdtemp())
>>> src = tempfile.mkdtemp()
>>> root.create("v1", src=src), root.activate("v1"), root.current()
(True, True, 'v1')
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tarfile
import time
from typing import Any, Dict, List, Optional

LEDGER_FORMAT = 1
MAX_EVENTS = 500


class ReleaseError(Exception):
    """An operation that cannot be done; the message says why and what to do."""


class LockHeld(ReleaseError):
    def __init__(self, path: str, holder: Dict[str, Any]) -> None:
        self.holder = holder
        super().__init__(
            "deploy lock %s is held by %s (pid %s on %s, since %s, release %s); "
            "wait for that deploy, or remove the lock if it is dead"
            % (
                path,
                holder.get("holder", "?"),
                holder.get("pid", "?"),
                holder.get("host", "?"),
                holder.get("since", "?"),
                holder.get("release", "?"),
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
    """``release`` if it can name a directory under releases/; ReleaseError otherwise."""
    if not release or release in (".", "..") or "/" in release or release.startswith("."):
        raise ReleaseError("%r is not a valid release id (no '/', no leading '.')" % release)
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


def _safe_members(archive: tarfile.TarFile, destination: str) -> List[tarfile.TarInfo]:
    # For Pythons without tarfile's "data" filter: refuse what would land outside.
    base = os.path.realpath(destination)
    members = []
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(base, member.name))
        if not (target == base or target.startswith(base + os.sep)):
            raise ReleaseError(
                "archive member %r would be written outside the release" % member.name
            )
        if member.issym() or member.islnk():
            link = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
            if member.linkname.startswith("/") or not (
                link == base or link.startswith(base + os.sep)
            ):
                raise ReleaseError("archive link %r points outside the release" % member.name)
        if member.isdev():
            raise ReleaseError("archive member %r is a device file" % member.name)
        members.append(member)
    return members


class DeployRoot:
    """One deploy root on this host."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.releases_dir = os.path.join(self.root, "releases")
        self.shared_dir = os.path.join(self.root, "shared")
        self.current_link = os.path.join(self.root, "current")
        self.state_dir = os.path.join(self.root, ".smokegate")
        self.ledger_path = os.path.join(self.state_dir, "ledger.json")
        self.lock_path = os.path.join(self.state_dir, "lock")

    # --- reading -------------------------------------------------------------------
    def ledger(self) -> Dict[str, Any]:
        try:
            with open(self.ledger_path) as handle:
                ledger = json.load(handle)
        except FileNotFoundError:
            return {"format": LEDGER_FORMAT, "releases": {}, "events": []}
        except ValueError as exc:
            raise ReleaseError(
                "ledger %s is not valid JSON: %s" % (self.ledger_path, exc)
            ) from None
        if ledger.get("format") != LEDGER_FORMAT:
            raise ReleaseError(
                "ledger %s has format %r; this smokegate reads format %d"
                % (self.ledger_path, ledger.get("format"), LEDGER_FORMAT)
            )
        return ledger

    def current(self) -> Optional[str]:
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise ReleaseError("%s exists but is not a symlink" % self.current_link) from None
            raise
        return os.path.basename(target.rstrip("/"))

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

    def info(self) -> Dict[str, Any]:
        ledger = self.ledger()
        current = self.current()
        on_disk = sorted(os.listdir(self.releases_dir)) if os.path.isdir(self.releases_dir) else []
        listed = []
        entries = ledger["releases"]
        for release in sorted(entries, key=lambda name: entries[name].get("seq", 0)):
            entry = dict(entries[release])
            entry.update(id=release, current=release == current, present=release in on_disk)
            listed.append(entry)
        for release in on_disk:
            if release not in entries and not release.startswith("."):
                listed.append(
                    {
                        "id": release,
                        "state": "unknown",
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
            with open(self.lock_path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            return {"holder": "unreadable lock file"}

    # --- writing -------------------------------------------------------------------
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
        dry_run: bool = False,
    ) -> bool:
        """Create releases/<release> from a directory or a .tar.gz on this host.

        The files land in a temporary directory that is renamed into place, so a failed
        copy (a full disk) leaves no half-made release behind.
        """
        if (src is None) == (archive is None):
            raise ReleaseError("give exactly one of src (a directory) or archive (a .tar.gz)")
        path = self.release_path(release)
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
        shutil.rmtree(temp, ignore_errors=True)
        try:
            if src is not None:
                shutil.copytree(src, temp, symlinks=True)
            else:
                os.makedirs(temp)
                with tarfile.open(archive, "r:*") as tar:
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(temp, filter="data")
                    else:  # pragma: no cover - Pythons before 3.8.17 / 3.11.4
                        tar.extractall(temp, members=_safe_members(tar, temp))
            self._link_shared(temp, shared or [])
            os.rename(temp, path)
        except (OSError, tarfile.TarError, shutil.Error) as exc:
            shutil.rmtree(temp, ignore_errors=True)
            raise ReleaseError(self._describe_failure(release, exc)) from None
        except ReleaseError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        ledger = self.ledger()
        sequence = 1 + max([entry.get("seq", 0) for entry in ledger["releases"].values()] or [0])
        ledger["releases"][release] = {
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
        reason = getattr(exc, "strerror", None) or str(exc)
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
        return "cannot create release %s: %s" % (release, reason)

    def _link_shared(self, release_dir: str, shared: List[str]) -> None:
        for entry in shared:
            relative = entry.strip("/")
            if not relative or relative.startswith("..") or "/../" in "/%s/" % relative:
                raise ReleaseError(
                    "shared path %r must be relative to the release, without '..'" % entry
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
                if os.path.isdir(link) and not os.path.islink(link):
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
        ledger = self.ledger()
        entry = ledger["releases"].get(release)
        if entry and entry.get("state") == "failed":
            raise ReleaseError("release %s is marked failed; deploy it under a new id" % release)
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
        ledger = self.ledger()
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

    def rollback(
        self,
        release: Optional[str] = None,
        to: Optional[str] = None,
        reason: str = "rolled back",
        dry_run: bool = False,
    ) -> Dict[str, Any]:
        """Abandon ``release`` (default: current) and go back.

        With ``to``, switch to exactly that release; otherwise to the rollback target
        recorded for ``release`` (no target: remove current, as before the first deploy).
        The abandoned release is marked failed. Running it again changes nothing.
        Returns {"changed", "from", "to", "abandoned"}.
        """
        ledger = self.ledger()
        current = self.current()
        abandoned = release if release is not None else current
        if to is not None:
            if not self.exists(to):
                raise ReleaseError("release %s does not exist in %s" % (to, self.releases_dir))
            if ledger["releases"].get(to, {}).get("state") == "failed":
                raise ReleaseError(
                    "release %s is marked failed and cannot be a rollback target" % to
                )
            target: Optional[str] = to
            switch = current != to
            if release is None:
                abandoned = current if current != to else None
        else:
            if abandoned is None:
                return {"changed": False, "from": current, "to": current, "abandoned": None}
            target = self.rollback_target(abandoned, ledger)
            switch = current == abandoned
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
        ledger = self.ledger()
        current = self.current()
        protected = {current, self.rollback_target(current, ledger)}
        entries = ledger["releases"]
        newest_first = sorted(entries, key=lambda name: entries[name].get("seq", 0), reverse=True)
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
        """Take the deploy lock (atomic create). The same release taking it again is a no-op."""
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
        try:
            handle = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another deploy won the race between our read and create
            raise LockHeld(self.lock_path, self.lock_holder() or {}) from None
        with os.fdopen(handle, "w") as stream:
            json.dump(record, stream)
        return True

    def unlock(
        self, release: Optional[str] = None, force: bool = False, dry_run: bool = False
    ) -> bool:
        """Release the lock if ``release`` holds it (or with ``force``). A lock held by
        another release is left alone: returns False."""
        existing = self.lock_holder()
        if existing is None:
            return False
        if not force and existing.get("release") != release:
            return False
        if not dry_run:
            os.unlink(self.lock_path)
        return True
