"""Release archives that try to escape their directory, on this Python and on one without
tarfile's data filter (as on Pythons before 3.8.17 / 3.11.4, and the lab hosts' 3.11.2).

Every refusal must leave the host as it was: nothing outside the release written, no
release directory, no temporary directory, ``current`` and the ledger untouched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import needs_root
from evil import (
    Archive,
    hardlink_from_the_root,
    realpath_overflow,
    release_temp,
    symlink_chain,
)

from ansible_collections.smokegate.core.plugins.module_utils.releases import (
    DeployRoot,
    ReleaseError,
)

VICTIM = "victim"


@pytest.fixture(params=["data filter", "no data filter"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on this Python, and again as on a Python whose tarfile has no filter."""
    if request.param == "no data filter":
        monkeypatch.delattr(tarfile, "data_filter")
        monkeypatch.delattr(tarfile, "fully_trusted_filter")
    return request.param


@pytest.fixture
def host(tmp_path: Path) -> DeployRoot:
    """A deploy root two levels below tmp_path, already on release v1, with a victim file
    beside it that no archive may touch."""
    (tmp_path / VICTIM).write_text("original\n")
    root = DeployRoot(str(tmp_path / "srv" / "app"))
    source = tmp_path / "v1"
    source.mkdir()
    (source / "VERSION").write_text("v1\n")
    root.create("v1", src=str(source))
    root.activate("v1")
    root.mark_good("v1")
    return root


def snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under ``path`` with its type and content, links not followed."""
    found = {}
    for directory, names, files in os.walk(path):
        for name in names + files:
            full = Path(directory, name)
            info = full.lstat()
            content = b""
            if stat.S_ISREG(info.st_mode):
                content = full.read_bytes()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(full).encode()
            found[str(full.relative_to(path))] = (stat.S_IFMT(info.st_mode), content)
    return found


def assert_refused(host: DeployRoot, archive: Path, *fragments: str, **options) -> str:
    top = Path(host.root).parent.parent
    before = snapshot(top)
    with pytest.raises(ReleaseError) as refused:
        host.create("evil", archive=str(archive), **options)
    message = str(refused.value)
    for fragment in fragments:
        assert fragment in message
    after = snapshot(top)
    assert after == before  # nothing written, nothing left behind, ledger byte for byte
    assert host.current() == "v1"
    return message


def test_the_realpath_overflow_attack_on_the_data_filter_is_refused(
    host: DeployRoot, tmp_path: Path, python: str
):
    # Three levels above the unpack directory: releases/, the root, srv/, then the victim.
    destination = release_temp(Path(host.root), "evil", os.getpid())
    archive = realpath_overflow(destination, 4, VICTIM).write(tmp_path / "evil.tar.gz")
    message = assert_refused(host, archive, "passes through 'a', a symlink of the archive")
    assert "(286 characters)" in message  # the absurd name is shortened


def test_a_symlink_chain_that_escapes_only_once_complete_is_refused(
    host: DeployRoot, tmp_path: Path, python: str
):
    archive = symlink_chain(4, VICTIM).write(tmp_path / "evil.tar.gz")
    assert_refused(host, archive, "'s1': a symlink to 's0/..' would point outside the release")


def test_a_hard_link_read_from_the_top_of_the_archive_is_refused(
    host: DeployRoot, tmp_path: Path, python: str
):
    archive = hardlink_from_the_root(5, VICTIM).write(tmp_path / "evil.tar.gz")
    assert_refused(
        host,
        archive,
        "a hard link to '../../../../../victim', which is not an earlier regular file",
    )


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (Archive().file("/tmp/absolute"), "'/tmp/absolute': it has an absolute name"),
        (Archive().file("a/../../up"), "'a/../../up': its name contains '..'"),
        (Archive().symlink("l", "/etc"), "a symlink to the absolute path '/etc'"),
        (
            Archive().directory("sub").symlink("l", "sub/../..").file("keep"),
            "'l': a symlink to 'sub/../..' would point outside the release",
        ),
        (
            Archive().symlink("l", "sub").file("l/through"),
            "'l/through': its path passes through 'l', a symlink of the archive",
        ),
        (
            Archive().file("f").file("f/under"),
            "'f/under': its path passes through 'f', a file of the archive",
        ),
        (Archive().symlink("a", "b").symlink("b", "a"), "a symlink loop"),
        (Archive().hardlink("h", "later").file("later"), "a hard link to 'later'"),
        (Archive().hardlink("h", "etc/passwd"), "a hard link to 'etc/passwd'"),
        (Archive().special("dev", tarfile.CHRTYPE), "'dev': it is a device file"),
        (Archive().special("blk", tarfile.BLKTYPE), "'blk': it is a device file"),
        (Archive().special("fifo", tarfile.FIFOTYPE), "'fifo': it is a FIFO"),
        (
            Archive().file("x").symlink("x", "y"),
            "'x': it appears twice, as a file and as a symlink",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_members_that_are_not_plain_release_content_are_refused(
    host: DeployRoot, tmp_path: Path, python: str, archive: Archive, reason: str
):
    assert_refused(host, archive.write(tmp_path / "evil.tar.gz"), reason)


def test_links_inside_the_release_are_kept_and_modes_and_owners_are_made_safe(
    host: DeployRoot, tmp_path: Path, python: str
):
    archive = (
        Archive()
        .directory("./")
        .directory("lib", mode=0o777)
        .file("lib/tool", b"#!/bin/sh\necho tool\n", mode=0o6777, uid=4242, gid=4242)
        .file("lib/data", b"data\n", mode=0o666)
        .directory("tmp", mode=0o1777)
        .symlink("bin/tool", "../lib/tool")  # bin/ is never listed: made as a plain directory
        .symlink("bin/self", ".")
        .hardlink("lib/again", "lib/data")
        .symlink("dangling", "not/here")
        .file("lib/data", b"data, second copy\n")  # a later copy wins, as with tar
        .write(tmp_path / "ok.tar.gz")
    )
    assert host.create("v2", archive=str(archive)) is True
    release = Path(host.release_path("v2"))
    tool = release / "lib" / "tool"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755  # no setuid/setgid, no group/other write
    assert (tool.stat().st_uid, tool.stat().st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE((release / "lib" / "data").stat().st_mode) == 0o644
    assert stat.S_IMODE((release / "lib").stat().st_mode) == 0o755
    assert stat.S_IMODE((release / "tmp").stat().st_mode) == 0o755  # no sticky bit either
    assert stat.S_IMODE(release.stat().st_mode) == 0o755
    assert os.readlink(release / "bin" / "tool") == "../lib/tool"
    ran = subprocess.run([str(release / "bin" / "tool")], capture_output=True, check=True)
    assert ran.stdout == b"tool\n"
    assert (release / "lib" / "again").read_text() == "data\n"  # linked before the second copy
    assert (release / "lib" / "data").read_text() == "data, second copy\n"
    assert (release / "lib" / "tool").stat().st_mtime == 1700000000
    assert os.readlink(release / "dangling") == "not/here"
    assert not any(name.startswith(".") for name in os.listdir(host.releases_dir))


def test_an_archive_larger_than_max_unpacked_is_refused_before_it_is_written(
    host: DeployRoot, tmp_path: Path
):
    archive = Archive().file("a", b"x" * 4096).file("b", b"y" * 4096).write(tmp_path / "a.tar.gz")
    assert_refused(
        host,
        archive,
        "the archive unpacks to 8 KiB, more than max_unpacked (4 KiB)",
        max_unpacked="4KiB",
    )
    with pytest.raises(ReleaseError, match="max_unpacked: 'lots' is not a size"):
        host.create("evil", archive=str(archive), max_unpacked="lots")
    assert host.create("v2", archive=str(archive), max_unpacked=8192) is True


def test_a_decompression_bomb_is_refused_whatever_max_unpacked_allows(
    host: DeployRoot, tmp_path: Path
):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 300 * 1024 * 1024
        with open("/dev/zero", "rb") as zeros:
            tar.addfile(info, zeros)
    assert path.stat().st_size < 2 * 1024 * 1024
    assert_refused(
        host,
        path,
        "the archive unpacks to 300 MiB from",
        "refused as a decompression bomb",
        max_unpacked="1TiB",
    )


def test_an_unreadable_archive_says_so(host: DeployRoot, tmp_path: Path):
    good = Archive().file("a", b"x" * 100000).write(tmp_path / "good.tar.gz")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[:-200])
    assert_refused(
        host, truncated, "cannot create release evil: the archive is not a readable .tar.gz"
    )
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    assert_refused(host, garbage, "the archive is not a readable .tar.gz")


def test_a_shared_path_through_a_symlink_of_the_archive_is_refused(
    host: DeployRoot, tmp_path: Path, python: str
):
    archive = Archive().directory("data").symlink("logs", "data").write(tmp_path / "evil.tar.gz")
    assert_refused(
        host, archive, "shared path 'logs' is a symlink of the archive", shared=["logs/"]
    )
    archive = Archive().symlink("var", ".").file("keep").write(tmp_path / "evil2.tar.gz")
    assert_refused(
        host, archive, "shared path 'var/log' passes through 'var', a symlink", shared=["var/log/"]
    )


def test_a_shared_path_never_deletes_through_a_link_in_a_release_directory(
    host: DeployRoot, tmp_path: Path
):
    # A release made from a directory on the host keeps its links as they are; a shared path
    # through one used to make the replacement rmtree whatever the link points at.
    outside = tmp_path / "precious"
    (outside / "old").mkdir(parents=True)
    (outside / "old" / "keep.txt").write_text("keep\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "logs").symlink_to(outside)
    with pytest.raises(ReleaseError, match="logs in the release is a symlink"):
        host.create("v2", src=str(source), shared=["logs/old/"])
    assert (outside / "old" / "keep.txt").read_text() == "keep\n"
    assert not os.path.exists(host.release_path("v2"))
    assert not any(name.startswith(".") for name in os.listdir(host.releases_dir))


@needs_root("mounts a small tmpfs as the deploy root")
def test_an_archive_with_more_members_than_free_inodes_is_refused(tmp_path: Path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        root = DeployRoot(str(mount_point / "app"))
        archive = Archive()
        for index in range(200):
            archive.file("f%03d" % index, b"")
        with pytest.raises(ReleaseError, match=r"has 200 members, more than the \d+ free inodes"):
            root.create("many", archive=str(archive.write(tmp_path / "many.tar.gz")))
        assert os.listdir(root.releases_dir) == []
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.skipif(
    not shutil.which("strace"), reason="needs strace (scripts/system-packages installs it as root)"
)
def test_the_release_is_on_disk_before_it_is_renamed_into_place(tmp_path: Path):
    archive = Archive().file("app.py", b"print(1)\n").write(tmp_path / "r.tar.gz")
    script = (
        "from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot\n"
        "DeployRoot(%r).create('r1', archive=%r)\n" % (str(tmp_path / "app"), str(archive))
    )
    traced = subprocess.run(
        [
            "strace",
            "-f",
            "-e",
            "trace=syncfs,sync,rename,renameat,renameat2",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    calls = [line for line in traced.stderr.splitlines() if "syncfs(" in line or "rename" in line]
    synced = next(
        index for index, line in enumerate(calls) if "syncfs(" in line or "sync()" in line
    )
    renamed = next(index for index, line in enumerate(calls) if ".r1.tmp-" in line)
    assert synced < renamed, calls
    assert (tmp_path / "app" / "releases" / "r1" / "app.py").exists()
