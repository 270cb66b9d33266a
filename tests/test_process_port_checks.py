"""process and port checks on processes and sockets the tests start themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import kill_all, needs_root

from ansible_collections.smokegate.core.plugins.module_utils import procfs
from smokegate.engine import probes, runner, spec

# A server that opens what it is told to, says where, and waits to be killed.
SERVER = """\
import socket, sys, time
opened = []
for kind, address in zip(sys.argv[1::2], sys.argv[2::2]):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    sock.bind((address, 0))
    if kind == "tcp":
        sock.listen()
    opened.append(sock)
print(" ".join(str(sock.getsockname()[1]) for sock in opened), flush=True)
time.sleep(120)
"""


@contextmanager
def server(
    directory: Path, name: str, *sockets: str, user: str | None = None
) -> Iterator[tuple[int, list[int]]]:
    """A process named ``name`` (the name of the program file it runs) holding sockets
    given as kind, address pairs; yields its pid and the ports it got."""
    program = directory / name
    if not program.exists():
        program.symlink_to(Path(sys.executable).resolve())
    argv = [str(program), "-c", SERVER, *sockets]
    if user is not None:
        argv = ["setpriv", "--reuid", user, "--regid", "65534", "--clear-groups", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ports = [int(port) for port in process.stdout.readline().split()]
        yield process.pid, ports
    finally:
        kill_all([process.pid])
        process.wait()


def run(*checks: dict) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)))
    return {result["name"]: result for result in report["results"]}


def test_processes_by_name_count_and_cmdline(tmp_path: Path):
    with (
        server(tmp_path, "sg-worker", "tcp", "127.0.0.1") as (first, _ports),
        server(tmp_path, "sg-worker", "tcp", "127.0.0.1") as (second, _ports),
    ):
        results = run(
            {"name": "two", "process": {"name": "sg-worker", "min": 2, "max": 2}},
            {"name": "three", "process": {"name": "sg-worker", "min": 3}},
            {"name": "at most one", "process": {"name": "sg-worker", "max": 1}},
            {"name": "cmdline", "process": {"cmdline": r"sg-worker -c import socket", "min": 2}},
            {"name": "runaway", "process": {"cmdline": r"sg-(w+)+orker", "min": 2}},
            {"name": "none", "process": {"name": "sg-never-started"}},
        )
    pids = ", ".join(str(pid) for pid in sorted([first, second]))
    assert results["two"]["status"] == "pass"
    assert results["two"]["message"] == "2 processes named sg-worker (pids %s)" % pids
    assert results["three"]["message"] == (
        "2 processes named sg-worker (pids %s), expected at least 3" % pids
    )
    assert results["at most one"]["message"] == (
        "2 processes named sg-worker (pids %s), expected at most 1" % pids
    )
    assert results["cmdline"]["status"] == "pass", results["cmdline"]
    assert results["runaway"]["status"] == "pass", results["runaway"]
    assert results["none"]["message"] == "no process named sg-never-started, expected at least 1"


def test_proc_and_psutil_read_the_same_processes_even_a_name_longer_than_the_kernel_keeps(
    tmp_path: Path,
):
    import psutil

    name = "sg-worker-with-a-long-name"
    with server(tmp_path, name, "tcp", "127.0.0.1") as (pid, _ports):
        read = procfs.processes()
        with_psutil = procfs.processes_with_psutil(psutil)
        assert [process for process in read if process.pid == pid] == [
            process for process in with_psutil if process.pid == pid
        ]
        assert [process.name for process in read if process.pid == pid] == [name]
        # Processes come and go meanwhile; the steady ones agree.
        both = {process.pid for process in read} & {process.pid for process in with_psutil}
        assert len(both) > 0.8 * len(read)
        assert {p for p in read if p.pid in both} == {p for p in with_psutil if p.pid in both}
        assert run({"name": "long", "process": {"name": name}})["long"]["status"] == "pass"


@needs_root("runs a process as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not installed")
def test_processes_of_a_user(tmp_path: Path):
    tmp_path.chmod(0o755)
    with server(tmp_path, "sg-worker", "tcp", "127.0.0.1", user="nobody") as (pid, _ports):
        results = run(
            {"name": "nobody", "process": {"name": "sg-worker", "user": "nobody"}},
            {"name": "by id", "process": {"name": "sg-worker", "user": "65534"}},
            {"name": "root", "process": {"name": "sg-worker", "user": "root"}},
        )
    assert results["nobody"]["message"] == "1 process named sg-worker of user nobody (pid %d)" % pid
    assert results["by id"]["status"] == "pass"
    assert results["root"]["status"] == "fail"


def test_zombies_do_not_count(tmp_path: Path):
    program = tmp_path / "sg-zombie"
    program.symlink_to(shutil.which("true") or "/bin/true")
    child = subprocess.Popen([str(program)])  # never waited for until the end: a zombie
    try:
        for _wait in range(500):
            with open("/proc/%d/stat" % child.pid) as handle:
                if handle.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the child did not become a zombie")
        results = run({"name": "zombie", "process": {"name": "sg-zombie"}})
        assert results["zombie"]["status"] == "fail"
    finally:
        child.wait()


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ports_listened_on_by_a_server_it_starts(tmp_path: Path, closed_port: int):
    sockets = ["tcp", "127.0.0.1", "udp", "127.0.0.1", "tcp", "0.0.0.0"]
    if has_ipv6():
        sockets += ["tcp", "::1"]
    with server(tmp_path, "sg-server", *sockets) as (_pid, ports):
        tcp, udp, wildcard = ports[:3]
        checks = [
            {"name": "tcp", "port": {"port": tcp}},
            {"name": "tcp at", "port": {"port": tcp, "address": "127.0.0.1"}},
            {"name": "tcp elsewhere", "port": {"port": tcp, "address": "10.9.8.7"}},
            {"name": "udp", "port": {"port": udp, "protocol": "udp"}},
            {"name": "udp is no tcp", "port": {"port": udp}},
            {"name": "wildcard", "port": {"port": wildcard, "address": "10.9.8.7"}},
            {"name": "closed", "port": {"port": closed_port}},
        ]
        if has_ipv6():
            checks.append({"name": "ipv6", "port": {"port": ports[3], "address": "::1"}})
        results = run(*checks)
    assert results["tcp"]["status"] == "pass"
    assert results["tcp"]["message"] == "tcp port %d is listened on at 127.0.0.1:%d" % (tcp, tcp)
    assert results["tcp at"]["status"] == "pass"
    assert results["tcp elsewhere"]["message"] == (
        "tcp port %d is listened on at 127.0.0.1:%d only, not at 10.9.8.7" % (tcp, tcp)
    )
    assert results["udp"]["message"] == "udp port %d is listened on at 127.0.0.1:%d" % (udp, udp)
    assert results["udp is no tcp"]["status"] == "fail"
    assert results["wildcard"]["status"] == "pass"
    assert results["closed"]["status"] == "fail"
    assert results["closed"]["message"].startswith("nothing listens on tcp port %d" % closed_port)
    if has_ipv6():
        assert results["ipv6"]["message"] == "tcp port %d is listened on at [::1]:%d" % (
            ports[3],
            ports[3],
        )


def test_port_listeners_agree_with_ss(tmp_path: Path):
    if shutil.which("ss") is None:
        pytest.skip("ss is not installed")
    with server(tmp_path, "sg-server", "tcp", "127.0.0.1") as (_pid, [port]):
        listed = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True)
        expected = {int(line.split()[3].rpartition(":")[2]) for line in listed.stdout.splitlines()}
        read = {listener.port for listener in probes.SystemProbe().listeners("tcp")}
    assert port in read and port in expected
    # Other programs open and close listeners between the two readings: most are in both.
    assert len(read & expected) >= 0.8 * max(len(read), len(expected))


def test_port_addresses_are_validated():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec([{"name": "db", "port": {"port": 5432, "address": "db.internal"}}])
    assert caught.value.errors == [
        "check 'db': port.address: 'db.internal' is not an IPv4 or IPv6 address"
    ]
    assert os.path.exists("/proc/net/tcp")
