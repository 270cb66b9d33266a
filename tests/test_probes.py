"""Probes read the real system; the stdlib fallbacks agree with psutil."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import kill_all, needs_root, running, trickling_upstream

from smokegate.engine import probes, runner, spec


def test_fallback_mount_table_agrees_with_psutil():
    with_psutil = probes.SystemProbe(use_psutil=True)
    fallback = probes.SystemProbe(use_psutil=False)
    assert with_psutil._psutil is not None, "psutil is a runtime dependency and must be installed"
    assert fallback._psutil is None
    for path in ("/", "/proc", "/sys", "/dev"):
        a, b = with_psutil.mount_at(path), fallback.mount_at(path)
        assert a is not None and b is not None, path
        assert (a.target, a.fstype, a.source) == (b.target, b.fstype, b.source), path
        # Both report rw/ro; the fallback adds superblock options on top.
        assert set(a.options) & {"rw", "ro"} == set(b.options) & {"rw", "ro"}


def test_fallback_disk_usage_agrees_with_psutil():
    a = probes.SystemProbe(use_psutil=True).disk_usage("/")
    b = probes.SystemProbe(use_psutil=False).disk_usage("/")
    assert a.total == b.total
    assert abs(a.free - b.free) < 64 * 1024 * 1024  # other processes write meanwhile
    assert abs(a.free_percent - b.free_percent) < 0.5
    assert b.inodes_total > 0


def test_checks_pass_on_the_fallback_probes():
    checks = spec.parse_spec(
        [
            {"name": "root", "mount": {"path": "/", "options": ["rw"]}},
            {"name": "proc", "mount": {"path": "/proc", "fstype": "proc"}},
            {"name": "space", "disk": {"path": "/", "min_free": "1M", "min_free_percent": 0.1}},
        ]
    )
    report = runner.run_checks(checks, probe=probes.SystemProbe(use_psutil=False))
    assert report["ok"], report


def test_mountinfo_parsing_unescapes_paths_and_merges_options():
    line = (
        "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root "
        "rw,errors=continue\n"
    )
    (entry,) = probes.parse_mountinfo(line)
    assert entry.target == "/mnt/with space"
    assert entry.fstype == "ext3"
    assert entry.source == "/dev/root"
    assert entry.options == ("rw", "noatime", "errors=continue")


@needs_root("bind-mounts a directory")
@pytest.mark.parametrize("use_psutil", [True, False])
def test_a_bind_mount_counts_as_a_mount(tmp_path: Path, use_psutil: bool):
    source, target = tmp_path / "data", tmp_path / "bound"
    source.mkdir()
    target.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        assert not os.path.ismount(target)  # why smokegate reads the mount table instead
        checks = spec.parse_spec(
            [{"name": "bound", "mount": {"path": str(target), "writable": True}}]
        )
        report = runner.run_checks(checks, probe=probes.SystemProbe(use_psutil=use_psutil))
        assert report["results"][0]["status"] == "pass", report["results"][0]
    finally:
        subprocess.run(["umount", str(target)], check=True)


@needs_root("mounts a tmpfs")
def test_a_full_filesystem_fails_the_write_test_and_the_space_check(tmp_path: Path):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tmp_path)], check=True)
    try:
        filler = os.open(tmp_path / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError) as full:
            while True:
                os.write(filler, b"\0" * 4096)
        os.close(filler)
        assert full.value.errno == errno.ENOSPC
        checks = spec.parse_spec(
            [
                {
                    "name": "writable",
                    "mount": {"path": str(tmp_path), "fstype": "tmpfs", "writable": True},
                },
                {"name": "space", "disk": {"path": str(tmp_path), "min_free": "1K"}},
            ]
        )
        results = runner.run_checks(checks)["results"]
        assert results[0]["status"] == "fail"
        assert "No space left on device" in results[0]["message"]
        assert results[1]["status"] == "fail"
        assert results[1]["message"] == "0 B free on %s, need 1 KiB" % tmp_path
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)


def test_env_file_parser_on_dotenv_and_systemd_forms():
    text = (
        'export A="double \\"quoted\\" \\n newline"\n'
        "B='single $literal'\n"
        "C=unquoted value   # comment\n"
        "D=has#hash\n"
        "  E = padded  \n"
        "; comment\n"
        "# F=commented\n"
        "1BAD=x\n"
    )
    assert probes.parse_env_file(text) == {
        "A": 'double "quoted" \n newline',
        "B": "single $literal",
        "C": "unquoted value",
        "D": "has#hash",
        "E": "padded",
    }


def test_a_timed_out_binary_leaves_nothing_it_started_running(tmp_path: Path):
    pids = tmp_path / "pids"
    script = tmp_path / "tool"
    script.write_text(
        "#!/bin/sh\n"
        "sleep 1000 & echo $! >> %s\n"
        "sleep 1000 & echo $! >> %s\n"
        "echo $$ >> %s\n"
        "wait\n" % (pids, pids, pids)
    )
    script.chmod(0o755)
    checks = spec.parse_spec(
        [{"name": "hangs", "binary": {"name": str(script), "version": ">=1"}, "timeout": 0.5}]
    )
    started: list[int] = []
    try:
        result = runner.run_checks(checks)["results"][0]
        started = [int(line) for line in pids.read_text().split()]
        assert result["status"] == "timeout", result
        assert len(started) == 3
        assert running(started) == []
    finally:
        kill_all(started)


def test_a_runaway_search_keeps_none_of_the_process_descriptors_open():
    # Another check's pipe, open when the search forked: its end must come when this
    # process closes it, not when the search's child is killed.
    read_end, write_end = os.pipe()
    outcome: list[BaseException] = []

    def runaway() -> None:
        try:
            probes.SystemProbe().search("^(a+)+$", "a" * 64 + "!", timeout=2)
        except TimeoutError as exc:
            outcome.append(exc)

    searching = threading.Thread(target=runaway)
    searching.start()
    time.sleep(0.3)  # the child is matching by now
    os.close(write_end)
    started = time.monotonic()
    assert os.read(read_end, 1) == b""
    waited = time.monotonic() - started
    os.close(read_end)
    searching.join()
    assert waited < 0.8, waited
    assert len(outcome) == 1


def test_an_http_server_that_trickles_its_answer_is_cut_at_the_deadline():
    # Every read gets a byte within any socket timeout; only the whole request's deadline
    # can end it, and the attempt's thread must not outlive it.
    with trickling_upstream() as port:
        before = threading.active_count()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            probes.SystemProbe().http("GET", "http://127.0.0.1:%d/" % port, {}, timeout=0.5)
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 0.9, elapsed
    time.sleep(0.1)
    assert threading.active_count() <= before
