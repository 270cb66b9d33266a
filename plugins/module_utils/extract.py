# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack a release archive without trusting it, on every Python 3.8+.

tarfile's own ``data`` filter is not used: it decides with ``os.path.realpath`` of the
links the archive itself creates, which gives up past PATH_MAX, and Pythons before
3.8.17 / 3.11.4 have no filter at all. Instead every member is decided lexically, from
the archive's own list, before a byte is written:

- names are normalised; absolute names and ``..`` are refused, and so is a member whose
  path passes through a symlink, a hard link or a file of the archive;
- a hard link may only name an earlier regular file of the same archive;
- a symlink is resolved against the archive's own members (never against the disk) and
  must stay inside the release; symlinks are created last, so nothing is ever written
  through one;
- devices, FIFOs and unknown member types are refused;
- modes lose setuid, setgid, sticky and group/other write; owners are never taken from
  the archive (files belong to whoever unpacks them);
- the unpacked size is bounded (``max_unpacked``, a ratio guard, the free space and
  inodes of the filesystem), from the headers, before anything is written.

Files are written into a fresh private directory and synced to disk before the caller
renames it into place, so ``current`` can never point at a release still in the page cache.

>>> import io, tempfile
>>> def tar(*members):
...     buffer = io.BytesIO()
...     with tarfile.open(fileobj=buffer, mode="w") as archive:
...         for name, kind, target in members:
...             info = tarfile.TarInfo(name)
...             info.type, info.linkname = kind, target
...             archive.addfile(info, io.BytesIO(b""))
...     buffer.seek(0)
...     return tarfile.open(fileobj=buffer)
>>> try:
...     plan(tar(("up", tarfile.SYMTYPE, "a/../.."), ("up/passwd", tarfile.REGTYPE, "")))
... except UnsafeArchive as exc:
...     print(exc)
archive member 'up': a symlink to 'a/../..' would point outside the release
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

# gzip cannot pass ~1030:1; real releases stay far below 100:1 (minified JS, text). Small
# archives are exempt: a few hundred MB of zeros is a test fixture, not a bomb.
MAX_RATIO = 200
RATIO_EXEMPT_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 2000000
MAX_SYMLINK_HOPS = 40  # the kernel's own limit (ELOOP)
MAX_NAME_BYTES = 4095
FILE_BITS = 0o755  # no setuid/setgid/sticky, no group/other write
CHUNK = 1024 * 1024

DIRECTORY, FILE, HARDLINK, SYMLINK = "directory", "file", "hard link", "symlink"


class UnsafeArchive(Exception):
    """The archive, or one member of it, must not be unpacked; the message says which and why."""

    def __init__(self, reason: str, member: Optional[str] = None) -> None:
        self.member = member
        super().__init__("archive member %s: %s" % (shown(member), reason) if member else reason)


def shown(name: str) -> str:
    """A member name for a message: quoted, and shortened when an archive makes it absurd."""
    text = repr(name)
    return (
        text if len(text) <= 120 else "%s...%s (%d characters)" % (text[:60], text[-40:], len(name))
    )


class Entry(NamedTuple):
    path: str  # normalised, relative to the release, "/"-separated
    kind: str
    member: tarfile.TarInfo
    target: str  # a hard link's normalised target, a symlink's text as written
    index: int  # the member's place in the archive


class Plan(NamedTuple):
    entries: List[Entry]
    unpacked: int  # bytes of file contents
    blocks: int  # a worst-case estimate of the filesystem blocks needed


def member_path(name: str, member: str) -> str:
    """``name`` as a normalised path inside the release; UnsafeArchive if it is not one."""
    if "\0" in name:
        raise UnsafeArchive("its name holds a NUL byte", member)
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise UnsafeArchive("its name is longer than %d bytes" % MAX_NAME_BYTES, member)
    if name.startswith("/"):
        raise UnsafeArchive("it has an absolute name", member)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive("its name contains '..'", member)
    return "/".join(parts)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return DIRECTORY
    if member.isreg():
        return FILE
    if member.issym():
        return SYMLINK
    if member.islnk():
        return HARDLINK
    if member.ischr() or member.isblk():
        raise UnsafeArchive("it is a device file", member.name)
    if member.isfifo():
        raise UnsafeArchive("it is a FIFO", member.name)
    raise UnsafeArchive("it has an unsupported type %r" % member.type, member.name)


def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")
    return ("/".join(parts[:index]) for index in range(1, len(parts)))


def resolve_symlink(
    path: str, target: str, kinds: Dict[str, str], links: Dict[str, str], shared: Iterable[str]
) -> None:
    """Follow ``path -> target`` through the archive's own symlinks, as the kernel would;
    UnsafeArchive if it leaves the release. Shared paths become links out of the release
    after unpacking: a target may go into one, never through it and back out."""
    if not target:
        raise UnsafeArchive("a symlink with an empty target", path)
    if target.startswith("/"):
        raise UnsafeArchive(
            "a symlink to the absolute path %r; link out of the release with a shared path"
            % target,
            path,
        )
    outside = UnsafeArchive("a symlink to %r would point outside the release" % target, path)
    exits = set(shared)
    stack = path.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise outside
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if here in exits:
            if ".." in pending:
                raise outside
            return
        if kinds.get(here) == SYMLINK:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafeArchive("a symlink loop (more than %d hops)" % MAX_SYMLINK_HOPS, path)
            inner = links[here]
            if inner.startswith("/"):
                raise outside
            stack.pop()  # the link is replaced by its target, read from the link's directory
            pending = inner.split("/") + pending


def plan(archive: tarfile.TarFile, shared: Iterable[str] = ()) -> Plan:
    """Decide every member of ``archive`` before anything is written."""
    shared_paths = [member_path(entry.strip("/"), entry) for entry in shared]
    entries: List[Entry] = []
    kinds: Dict[str, str] = {}
    first_file: Dict[str, int] = {}
    links: Dict[str, str] = {}
    twice: List[UnsafeArchive] = []
    unpacked = blocks = 0
    last_offset = -1
    for index, member in enumerate(archive):
        # A header that points back at an earlier one would make tarfile loop forever.
        if member.offset <= last_offset or member.size < 0:
            raise UnsafeArchive("the archive is malformed (its headers go backwards)", member.name)
        last_offset = member.offset
        if index >= MAX_MEMBERS:
            raise UnsafeArchive("the archive has more than %d members" % MAX_MEMBERS)
        path = member_path(member.name, member.name)
        kind = _kind(member)
        if not path:  # the archive's own top directory ("./"): the release itself
            if kind != DIRECTORY:
                raise UnsafeArchive("the top of the archive is not a directory", member.name)
            continue
        seen = kinds.get(path)
        if seen is not None and not (seen == kind and kind in (DIRECTORY, FILE)):
            twice.append(
                UnsafeArchive("it appears twice, as a %s and as a %s" % (seen, kind), member.name)
            )
        kinds[path] = kind
        target = ""
        if kind == FILE:
            first_file.setdefault(path, index)
            unpacked += member.size
            blocks += 1 + member.size // 4096
        elif kind == SYMLINK:
            target = links[path] = member.linkname
        else:
            blocks += 1
        entries.append(Entry(path, kind, member, target, index))
    for position, entry in enumerate(entries):
        for parent in _parents(entry.path):
            if kinds.get(parent, DIRECTORY) != DIRECTORY:
                raise UnsafeArchive(
                    "its path passes through %r, a %s of the archive" % (parent, kinds[parent]),
                    entry.member.name,
                )
        if entry.kind == SYMLINK:
            resolve_symlink(entry.path, entry.target, kinds, links, shared_paths)
        elif entry.kind == HARDLINK:
            entries[position] = entry._replace(target=_hardlink_target(entry, first_file))
    if twice:  # after the checks above, which name the cause of most such tricks
        raise twice[0]
    for path in shared_paths:
        for parent in _parents(path):
            if kinds.get(parent, DIRECTORY) != DIRECTORY:
                raise UnsafeArchive(
                    "shared path %r passes through %r, a %s of the archive"
                    % (path, parent, kinds[parent])
                )
        if kinds.get(path) == SYMLINK:
            raise UnsafeArchive("shared path %r is a symlink of the archive" % path)
    return Plan(entries, unpacked, blocks)


def _hardlink_target(entry: Entry, first_file: Dict[str, int]) -> str:
    # tar reads a hard link's target from the top of the archive, not from the link's own
    # directory; only a file this archive already wrote can be linked, never one on disk.
    member = entry.member
    refused = UnsafeArchive(
        "a hard link to %r, which is not an earlier regular file of the archive" % member.linkname,
        member.name,
    )
    try:
        target = member_path(member.linkname, member.name)
    except UnsafeArchive:
        raise refused from None
    if first_file.get(target, entry.index) >= entry.index:
        raise refused
    return target


def check_room(found: Plan, compressed: int, max_unpacked: int, directory: str) -> None:
    """Refuse an archive that is too big to unpack into ``directory``'s filesystem."""
    from .units import format_size

    if found.unpacked > max_unpacked:
        raise UnsafeArchive(
            "the archive unpacks to %s, more than max_unpacked (%s)"
            % (format_size(found.unpacked), format_size(max_unpacked))
        )
    if found.unpacked > RATIO_EXEMPT_BYTES and found.unpacked > MAX_RATIO * max(compressed, 1):
        raise UnsafeArchive(
            "the archive unpacks to %s from %s (more than %d:1): refused as a decompression bomb"
            % (format_size(found.unpacked), format_size(compressed), MAX_RATIO)
        )
    usage = os.statvfs(directory)
    free = usage.f_bavail * usage.f_frsize
    needed = found.blocks * 4096
    if needed > free:
        raise UnsafeArchive(
            "disk full: the archive needs %s in %s, %s free"
            % (format_size(needed), directory, format_size(free))
        )
    if usage.f_files and len(found.entries) > usage.f_favail:
        raise UnsafeArchive(
            "the archive has %d members, more than the %d free inodes in %s"
            % (len(found.entries), usage.f_favail, directory)
        )


def _write_file(archive: tarfile.TarFile, entry: Entry, path: str) -> None:
    source = archive.extractfile(entry.member)
    if source is None:  # pragma: no cover - only for non-regular members
        raise UnsafeArchive("its contents cannot be read", entry.member.name)
    if os.path.lexists(path):  # a later copy of the same file wins, as with tar
        os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    handle = os.open(path, flags, 0o600)
    try:
        remaining = entry.member.size
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise UnsafeArchive("the archive ends inside it", entry.member.name)
            _write_all(handle, chunk)
            remaining -= len(chunk)
        os.fchmod(handle, (entry.member.mode & FILE_BITS) | stat.S_IRUSR | stat.S_IWUSR)
        os.utime(handle, (entry.member.mtime, entry.member.mtime))
    finally:
        os.close(handle)


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def _make_directory(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise


def unpack(archive: tarfile.TarFile, found: Plan, destination: str) -> None:
    """Write a planned archive into ``destination``, a new empty directory of ours."""
    directories: Dict[str, Optional[tarfile.TarInfo]] = {}

    def ensure_parents(path: str) -> None:
        for parent in _parents(path):
            if parent not in directories:
                _make_directory(os.path.join(destination, parent))
                directories[parent] = None

    symlinks: List[Entry] = []
    for entry in found.entries:
        full = os.path.join(destination, entry.path)
        ensure_parents(entry.path)
        if entry.kind == DIRECTORY:
            if directories.get(entry.path) is None:
                _make_directory(full)
            directories[entry.path] = entry.member
        elif entry.kind == FILE:
            _write_file(archive, entry, full)
        elif entry.kind == HARDLINK:
            os.link(os.path.join(destination, entry.target), full, follow_symlinks=False)
        else:
            symlinks.append(entry)
    for entry in symlinks:  # last: nothing above was ever written through a link
        os.symlink(entry.target, os.path.join(destination, entry.path))
    # Deepest first, so a read-only directory is closed only once its contents are in.
    for path in sorted(directories, key=lambda name: name.count("/"), reverse=True):
        member = directories[path]
        full = os.path.join(destination, path)
        mode = (member.mode & FILE_BITS) | stat.S_IRWXU if member is not None else 0o755
        os.chmod(full, mode)
        if member is not None:
            os.utime(full, (member.mtime, member.mtime))
    os.chmod(destination, 0o755)


def sync_filesystem(path: str) -> None:
    """Flush the filesystem holding ``path`` to disk (syncfs; sync where it is missing)."""
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(handle) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), path)
    finally:
        os.close(handle)


def extract(
    archive_path: str, destination: str, max_unpacked: int, shared: Iterable[str] = ()
) -> Tuple[int, int]:
    """Unpack ``archive_path`` into the new directory ``destination``.

    Raises UnsafeArchive before anything is written when a member or the whole must not be
    unpacked; tarfile.TarError or OSError when reading or writing fails. Returns
    (members, unpacked bytes).
    """
    with tarfile.open(archive_path, "r:*") as archive:
        found = plan(archive, shared)
        check_room(
            found,
            os.path.getsize(archive_path),
            max_unpacked,
            os.path.dirname(destination) or ".",
        )
        try:
            os.mkdir(destination, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            raise UnsafeArchive("%s already exists" % destination) from None
        unpack(archive, found, destination)
    return len(found.entries), found.unpacked
