# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes and listening sockets, read from /proc (probes.SystemProbe calls these).

Nothing connects anywhere: a port "listens" when the kernel's socket table says so, which
is what ``ss -ltn`` shows, in the network namespace of this process.

>>> parse_sockets("  sl  local_address rem_address   st\\n"
...               "   0: 0100007F:1538 00000000:0000 0A 0\\n", "tcp")
[Listener(protocol='tcp', address='127.0.0.1', port=5432)]
>>> process_name("gunicorn-worker", ["/srv/app/bin/gunicorn-worker-main", "-w", "4"])
'gunicorn-worker-main'
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any, Dict, List, NamedTuple, Optional

TCP_LISTEN = "0A"
# The kernel keeps 15 characters of a program's name (TASK_COMM_LEN - 1).
COMM_LENGTH = 15


class Listener(NamedTuple):
    protocol: str  # tcp or udp
    address: str  # as bound: 0.0.0.0 and :: are every address
    port: int


class ProcessInfo(NamedTuple):
    pid: int
    name: str
    cmdline: str  # the arguments joined by spaces; empty for a kernel thread
    user: str  # the real user's name, or its id as digits when it has none
    uid: int  # the real user's id (-1 when it cannot be read)


def _address(hexadecimal: str) -> str:
    # The kernel prints each 32-bit word of the address as a number in host byte order.
    words = [int(hexadecimal[start : start + 8], 16) for start in range(0, len(hexadecimal), 8)]
    raw = struct.pack("=%dI" % len(words), *words)
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def parse_sockets(text: str, protocol: str) -> List[Listener]:
    """The listening sockets of a /proc/net/{tcp,tcp6,udp,udp6} table: TCP sockets in the
    LISTEN state, UDP sockets bound and not connected to a peer."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or ":" not in fields[2]:
            continue
        local, remote, state = fields[1], fields[2], fields[3]
        address, _colon, port = local.rpartition(":")
        if protocol == "tcp" and state != TCP_LISTEN:
            continue
        if protocol == "udp" and remote.rpartition(":")[0].strip("0"):
            continue
        try:
            found.append(Listener(protocol, _address(address), int(port, 16)))
        except (ValueError, struct.error, OSError):
            continue  # a line this reader does not understand is no listener
    return found


def listeners(protocol: str) -> List[Listener]:
    """Every listening socket of ``protocol`` (tcp or udp), IPv4 and IPv6."""
    found: List[Listener] = []
    for table in (protocol, protocol + "6"):
        try:
            with open("/proc/net/" + table) as handle:
                found.extend(parse_sockets(handle.read(), protocol))
        except FileNotFoundError:  # a kernel without IPv6
            continue
    return found


def process_name(comm: str, argv: List[str]) -> str:
    """The program's name: the kernel's, completed from argv when the kernel cut it (as
    psutil does, so both readings agree)."""
    if len(comm) >= COMM_LENGTH and argv:
        program = os.path.basename(argv[0])
        if program.startswith(comm):
            return program
    return comm


def user_name(uid: int) -> str:
    """A user's name, or the id as digits when it has none."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """A group's name, or the id as digits when it has none."""
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _read_process(pid: int, users: Dict[int, str]) -> Optional[ProcessInfo]:
    # status holds the name, the state and the user; the kernel makes it faster than stat.
    base = "/proc/%d/" % pid
    fields: Dict[bytes, bytes] = {}
    with open(base + "status", "rb") as handle:
        for line in handle:
            key, _colon, value = line.partition(b":")
            if key in (b"Name", b"State", b"Uid"):
                fields[key] = value.strip()
                if len(fields) == 3:
                    break
    if fields.get(b"State", b"")[:1] == b"Z":
        return None  # a zombie has exited: nothing runs any more
    with open(base + "cmdline", "rb") as handle:
        argv = handle.read().decode("utf-8", "replace").split("\0")
    if argv and argv[-1] == "":
        argv.pop()
    uid = int(fields[b"Uid"].split()[0]) if b"Uid" in fields else -1
    if uid not in users:
        users[uid] = user_name(uid) if uid >= 0 else "?"
    comm = fields.get(b"Name", b"").decode("utf-8", "replace")
    return ProcessInfo(pid, process_name(comm, argv), " ".join(argv), users[uid], uid)


def processes() -> List[ProcessInfo]:
    """Every running process but this one, from /proc."""
    found: List[ProcessInfo] = []
    users: Dict[int, str] = {}  # one lookup per user for the whole table
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            info = _read_process(int(entry), users)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it exited while being read, or is hidden from this user
        if info is not None:
            found.append(info)
    return found


def processes_with_psutil(psutil: Any) -> List[ProcessInfo]:
    """The same list as processes(), read by psutil."""
    found = []
    users: Dict[int, str] = {}  # psutil looks a user up once per process: this, once per user
    own = os.getpid()
    for process in psutil.process_iter(["pid", "name", "cmdline", "uids", "status"]):
        info = process.info
        if info["pid"] == own or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        uid = info["uids"].real if info["uids"] is not None else -1
        if uid not in users:
            users[uid] = user_name(uid) if uid >= 0 else "?"
        found.append(
            ProcessInfo(
                info["pid"], info["name"] or "", " ".join(info["cmdline"] or ()), users[uid], uid
            )
        )
    return found
