"""The release engine on real directories: ledger, rollback target, prune, lock, atomic switch."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import needs_root

from ansible_collections.smokegate.core.plugins.module_utils.releases import (
    DeployRoot,
    LockHeld,
    ReleaseError,
)


@pytest.fixture
def root(tmp_path: Path) -> DeployRoot:
    return DeployRoot(str(tmp_path / "app"))


@pytest.fixture
def source(tmp_path: Path) -> str:
    directory = tmp_path / "src"
    directory.mkdir()
    (directory / "VERSION").write_text("1\n")
    return str(directory)


def deploy(root: DeployRoot, source: str, release: str, good: bool = True) -> None:
    root.create(release, src=source)
    root.activate(release)
    if good:
        root.mark_good(release)


def test_create_activate_and_the_ledger_record_what_was_before(root: DeployRoot, source: str):
    deploy(root, source, "a")
    deploy(root, source, "b")
    assert root.current() == "b"
    assert os.readlink(root.current_link) == "releases/b"  # relative: survives bind mounts
    ledger = json.loads(Path(root.ledger_path).read_text())
    assert ledger["format"] == 1
    assert ledger["releases"]["b"]["previous"] == "a"
    assert ledger["releases"]["b"]["state"] == "good"
    assert [event["event"] for event in ledger["events"]] == ["create", "activate", "good"] * 2
    assert root.rollback_target() == "a"
    assert root.create("b", src=source) is False and root.activate("b") is False  # idempotent


def test_a_failed_release_is_never_a_rollback_target_whatever_names_and_mtimes_say(
    root: DeployRoot, source: str
):
    deploy(root, source, "2026-01")
    deploy(root, source, "2026-03")  # will fail
    root.rollback(reason="broke checkout")
    assert root.current() == "2026-01"
    deploy(root, source, "2026-02")
    # The failed release looks newest by name and by mtime; the ledger still wins.
    future = time.time() + 3600
    os.utime(root.release_path("2026-03"), (future, future))
    outcome = root.rollback()
    assert outcome["to"] == "2026-01"
    assert root.current() == "2026-01"
    assert root.ledger()["releases"]["2026-03"]["reason"] == "broke checkout"
    with pytest.raises(ReleaseError, match="marked failed"):
        root.rollback(to="2026-03")


def test_rollback_of_the_first_release_removes_current_and_reruns_change_nothing(
    root: DeployRoot, source: str
):
    deploy(root, source, "v1", good=False)
    assert root.rollback(release="v1")["changed"] is True
    assert root.current() is None and not os.path.lexists(root.current_link)
    assert root.rollback(release="v1")["changed"] is False
    assert root.ledger()["releases"]["v1"]["state"] == "failed"


def test_explicit_rollback_is_idempotent(root: DeployRoot, source: str):
    for release in ("v1", "v2", "v3"):
        deploy(root, source, release)
    assert root.rollback(to="v1") == {"changed": True, "from": "v3", "to": "v1", "abandoned": "v3"}
    assert root.rollback(to="v1")["changed"] is False
    assert root.ledger()["releases"]["v2"]["state"] == "good"  # only the abandoned one failed


def test_abandoning_a_release_that_never_became_current_only_marks_it(
    root: DeployRoot, source: str
):
    deploy(root, source, "v1")
    root.create("v2", src=source)
    outcome = root.rollback(release="v2")
    assert outcome["changed"] is True and root.current() == "v1"
    assert root.ledger()["releases"]["v2"]["state"] == "failed"


def test_prune_keeps_current_target_and_newest_failed_and_ignores_unknown_dirs(
    root: DeployRoot, source: str
):
    for release in ("r1", "r2", "r3", "r4"):
        deploy(root, source, release)
    for release in ("f1", "f2"):
        deploy(root, source, release, good=False)
        root.rollback(release=release)
    os.makedirs(root.release_path("hand-made"))
    assert root.current() == "r4" and root.rollback_target() == "r3"
    removed = root.prune(keep=1)
    # r4 is current and the newest good one, r3 the rollback target, f2 the newest failure.
    assert sorted(removed) == ["f1", "r1", "r2"]
    assert sorted(os.listdir(root.releases_dir)) == ["f2", "hand-made", "r3", "r4"]
    assert root.prune(keep=1) == []


def test_failed_releases_do_not_push_good_ones_out(root: DeployRoot, source: str):
    deploy(root, source, "good1")
    deploy(root, source, "good2")
    for index in range(4):
        deploy(root, source, "bad%d" % index, good=False)
        root.rollback(release="bad%d" % index)
    root.prune(keep=2)
    assert {"good1", "good2"} <= set(os.listdir(root.releases_dir))


def test_lock_is_atomic_names_its_holder_and_is_released_by_its_run(root: DeployRoot):
    assert root.lock("run1", holder="bob@ctl", pid=99) is True
    assert root.lock("run1", holder="bob@ctl", pid=99) is False  # the same run again
    with pytest.raises(LockHeld) as refused:
        root.lock("run2", holder="eve@ctl")
    message = str(refused.value)
    assert "held by bob@ctl (release run1, since " in message and "; controller pid 99)" in message
    assert root.unlock("run2") is False and os.path.exists(root.lock_path)
    # A retried run of the same release is another holder: it can neither take nor free it.
    with pytest.raises(LockHeld):
        root.lock("run1", holder="bob@ctl run 2")
    assert root.unlock("run1", holder="bob@ctl run 2") is False and os.path.exists(root.lock_path)
    assert root.unlock("run1", holder="bob@ctl") is True and not os.path.exists(root.lock_path)
    root.lock("run1", holder="bob@ctl")
    assert root.unlock("run1") is True  # by release alone: freeing an abandoned release's lock
    root.lock("run3", holder="x")
    assert root.unlock(force=True) is True


def test_lock_race_has_exactly_one_winner(tmp_path: Path):
    winners, barrier = [], threading.Barrier(8)

    def contend(index: int) -> None:
        barrier.wait()
        try:
            DeployRoot(str(tmp_path / "app")).lock("run%d" % index, holder="h%d" % index)
            winners.append(index)
        except LockHeld:
            pass

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_the_switch_is_atomic_for_a_reader(root: DeployRoot, source: str):
    deploy(root, source, "a")
    deploy(root, source, "b")
    missing, reads, stop = [], [0], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                os.readlink(root.current_link)
                reads[0] += 1
            except FileNotFoundError:
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for index in range(1000):
            root._switch("a" if index % 2 else "b")
    finally:
        stop.set()
        thread.join()
    assert missing == []
    assert reads[0] > 0


def archive(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return str(path)


def test_archive_contents_become_the_release_and_shared_paths_are_linked(
    root: DeployRoot, tmp_path: Path
):
    os.makedirs(root.shared_dir)
    Path(root.shared_dir, "app.env").write_text("A=1\n")
    path = archive(tmp_path / "r.tar.gz", {"app.py": b"print(1)\n", "logs/placeholder": b""})
    assert root.create("r1", archive=path, shared=["app.env", "logs/"]) is True
    release = Path(root.release_path("r1"))
    assert (release / "app.py").read_text() == "print(1)\n"
    assert os.readlink(release / "app.env") == "../../shared/app.env"
    assert (release / "app.env").read_text() == "A=1\n"
    assert (release / "logs").is_symlink() and Path(root.shared_dir, "logs").is_dir()
    with pytest.raises(ReleaseError, match="does not exist; create it first"):
        root.create("r2", archive=path, shared=["missing.env"])
    assert not os.path.exists(root.release_path("r2"))


def test_an_archive_that_escapes_the_release_is_refused(root: DeployRoot, tmp_path: Path):
    path = archive(tmp_path / "evil.tar.gz", {"../../escaped": b"x"})
    with pytest.raises(ReleaseError):
        root.create("evil", archive=path)
    assert not (tmp_path / "escaped").exists()
    assert not os.path.exists(root.release_path("evil"))


@needs_root("mounts a small tmpfs as the deploy root")
def test_a_full_disk_leaves_no_release_and_says_so(tmp_path: Path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        root = DeployRoot(str(mount_point / "app"))
        path = archive(
            tmp_path / "big.tar.gz", {"blob": b"\0" * (4 * 1024 * 1024)}
        )  # compresses to ~4 KiB
        with pytest.raises(ReleaseError) as full:
            root.create("big", archive=path)
        # Known from the archive's headers, before a byte is written.
        assert "disk full: the archive needs 4 MiB in %s, 1 MiB free" % root.releases_dir in str(
            full.value
        )
        assert os.listdir(root.releases_dir) == []
        # A directory is copied as it is: the disk fills while copying.
        source = tmp_path / "big"
        source.mkdir()
        (source / "blob").write_bytes(b"\0" * (4 * 1024 * 1024))
        with pytest.raises(ReleaseError) as full:
            root.create("big", src=str(source))
        assert "disk full: No space left on device while creating release big" in str(full.value)
        assert os.listdir(root.releases_dir) == []  # the temporary directory is gone too
        assert root.current() is None
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_invalid_release_ids_are_refused(root: DeployRoot, source: str):
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(ReleaseError):
            root.create(bad, src=source)
