"""The release engine on real directories: ledger, rollback target, prune, lock, atomic switch."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
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


def capistrano_tree(path: Path, releases: list[str]) -> DeployRoot:
    """A deploy root as Capistrano and ansistrano leave it: no ledger, an absolute current."""
    for release in releases:
        (path / "releases" / release).mkdir(parents=True)
        (path / "releases" / release / "REVISION").write_text(release + "\n")
    (path / "shared").mkdir()
    (path / "current").symlink_to(path / "releases" / releases[-1])
    return DeployRoot(str(path))


def test_a_tree_without_a_ledger_is_adopted_and_never_rolled_back_implicitly(tmp_path: Path):
    root = capistrano_tree(tmp_path / "app", ["20261101000000", "20261102000000"])
    info = root.info()
    assert info["current"] == "20261102000000"
    states = {entry["id"]: entry["state"] for entry in info["releases"]}
    assert states == {"20261102000000": "good", "20261101000000": "unrecorded"}
    assert info["rollback_target"] is None
    assert not os.path.exists(root.ledger_path)  # reading changes nothing
    with pytest.raises(ReleaseError) as refused:
        root.rollback()
    message = str(refused.value)
    assert (
        "no earlier good release of %s is recorded to go back to from 20261102000000" % root.root
        in message
    )
    assert "releases on disk: 20261101000000 (unrecorded)" in message
    assert "smokegate_rollback_to=ID" in message and "--to ID" in message
    assert root.current() == "20261102000000"
    # A deploy over it records the adopted release, and goes back to it.
    source = tmp_path / "v3"
    source.mkdir()
    root.create("v3", src=str(source))
    root.activate("v3")
    ledger = root.ledger()
    assert ledger["releases"]["20261102000000"]["state"] == "good"
    assert ledger["releases"]["20261102000000"]["adopted_at"]
    assert [event["event"] for event in ledger["events"]] == ["adopt", "create", "activate"]
    assert ledger["releases"]["v3"]["previous"] == "20261102000000"
    assert root.rollback(release="v3")["to"] == "20261102000000"
    # An unrecorded directory is a valid explicit target.
    assert root.rollback(to="20261101000000")["to"] == "20261101000000"
    assert root.current() == "20261101000000"


def test_only_a_deploy_that_found_no_current_may_leave_none(root: DeployRoot, source: str):
    deploy(root, source, "v1", good=False)
    with pytest.raises(ReleaseError, match="no earlier good release"):
        root.rollback()  # by hand: the host keeps its only release
    assert root.current() == "v1"
    assert root.rollback(release="v1")["to"] is None  # the deploy that made v1 undoes itself
    deploy(root, source, "v2")
    deploy(root, source, "v3", good=False)
    shutil.rmtree(root.release_path("v2"))  # what v3 would go back to is gone
    with pytest.raises(ReleaseError) as refused:
        root.rollback(release="v3")
    assert "releases on disk: v1 (failed)" in str(refused.value)
    assert root.current() == "v3"


def test_current_must_point_into_releases(tmp_path: Path):
    root = DeployRoot(str(tmp_path / "app"))
    os.makedirs(root.releases_dir)
    os.symlink("/etc", root.current_link)
    with pytest.raises(ReleaseError, match="points to /etc, which is not a release in"):
        root.info()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("[]", "the document is list, not an object"),
        ("null", "the document is NoneType, not an object"),
        ('{"format": 1}', "releases must be an object"),
        ('{"format": 1, "releases": {"v1": []}}', "releases['v1'] must be an object"),
        (
            '{"format": 1, "releases": {"v1": {"state": "good", "previous": 3}}}',
            "releases['v1'].previous is 3",
        ),
        (
            '{"format": 1, "releases": {"../../etc": {"state": "good"}}}',
            "releases['../../etc'] is not a valid release id",
        ),
        ('{"format": 1, "releases": {}, "events": {}}', "events must be a list"),
        ('{"format": 1, "releases": {"v1": {"state": "good"}}', "is not valid JSON"),
        ("\xff\xfe", "is not valid JSON"),
    ],
)
def test_a_ledger_of_the_wrong_shape_is_named_and_nothing_is_left_behind(
    root: DeployRoot, source: str, content: str, field: str
):
    os.makedirs(root.state_dir)
    Path(root.ledger_path).write_bytes(content.encode("latin-1"))
    for attempt in (
        lambda: root.lock("v1", holder="ops"),
        lambda: root.create("v1", src=source),
        lambda: root.prune(keep=1),
        root.rollback,
        root.info,
    ):
        with pytest.raises(ReleaseError) as refused:
            attempt()
        assert field in str(refused.value) and root.ledger_path in str(refused.value)
    assert not os.path.exists(root.lock_path)
    assert not os.path.exists(root.releases_dir)
    assert Path(root.ledger_path).read_bytes() == content.encode("latin-1")


def test_concurrent_ledger_writers_lose_no_entry(tmp_path: Path, source: str):
    script = (
        "import sys\n"
        "from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot\n"
        "root = DeployRoot(sys.argv[1])\n"
        "for index in range(40):\n"
        "    root.create('%s-%d' % (sys.argv[2], index), src=sys.argv[3])\n"
    )
    app = str(tmp_path / "app")
    writers = [
        subprocess.Popen([sys.executable, "-c", script, app, name, source])
        for name in ("a", "b", "c")
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    recorded = DeployRoot(app).ledger()["releases"]
    assert len(recorded) == 120 and len(os.listdir(os.path.join(app, "releases"))) == 120
    assert sorted(entry["seq"] for entry in recorded.values()) == list(range(1, 121))


def test_a_reader_never_sees_a_lock_file_without_its_holder(root: DeployRoot):
    os.makedirs(root.state_dir)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys, time\n"
            "bad = 0\n"
            "end = time.monotonic() + 3\n"
            "while time.monotonic() < end:\n"
            "    try:\n"
            "        json.loads(open(sys.argv[1]).read())\n"
            "    except FileNotFoundError:\n"
            "        pass\n"
            "    except ValueError:\n"
            "        bad += 1\n"
            "print(bad)\n",
            root.lock_path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.2)
    while reader.poll() is None:
        root.lock("r1", holder="ops@ctl")
        root.unlock("r1", holder="ops@ctl")
    assert reader.stdout.read().strip() == "0"


@pytest.mark.parametrize(
    "bad", ["-rf", "--to", "v1\n", "a\x1bb", "v1\u202egnp", "v 1", "é1", "x" * 129]
)
def test_release_ids_that_could_deceive_a_reader_or_a_command_line_are_refused(
    root: DeployRoot, source: str, bad: str
):
    for attempt in (
        lambda: root.create(bad, src=source),
        lambda: root.lock(bad, holder="ops"),
        lambda: root.rollback(to=bad),
    ):
        with pytest.raises(ReleaseError, match="is not a valid release id"):
            attempt()
    assert not os.path.exists(root.root)
