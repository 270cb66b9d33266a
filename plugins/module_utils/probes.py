# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How smokegate reads the system. The only module here that touches the OS.

``Probe`` is the interface: every method a check (checks.py) may call, and nothing else.
``SystemProbe`` implements it on the machine it runs on. Checks never stat a path, read
/proc, call the resolver, open sockets or run a spec's regex themselves (matcher.py forks
for that): they are typed against ``Probe``, so a check can be handed any object with
these methods (a fake machine in a test), and a probe can be tested on real system state.

>>> probe = SystemProbe()
>>> probe.exists("/"), probe.exists("/no/such/path")
(True, False)
>>> probe.mount_at("/").target
'/'
>>> parse_env_file('export A="x y" # note\\nB=2\\n')
{'A': 'x y', 'B': '2'}
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Protocol, Tuple

from .matcher import Found, search

if TYPE_CHECKING:
    import subprocess

from .urls import basic_authorization

# ssl, subprocess, tempfile, shutil and urllib are imported where they are used: a spec
# that needs none of them should not pay ~20 ms of imports on every host.

MOUNTINFO = "/proc/self/mountinfo"
MAX_OUTPUT = 64 * 1024
MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class MountEntry(NamedTuple):
    source: str
    target: str
    fstype: str
    options: Tuple[str, ...]


class DiskUsage(NamedTuple):
    total: int
    free: int  # bytes available to unprivileged users, as df's "Avail"
    free_percent: float
    inodes_total: int
    inodes_free: int


class HttpResponse(NamedTuple):
    status: int
    body: bytes  # at most MAX_BODY bytes
    url: str
    truncated: bool = False  # the server sent more than MAX_BODY bytes


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # The kernel escapes space, tab, newline and backslash in mount paths as \040 etc.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> List[MountEntry]:
    """Entries of /proc/self/mountinfo, in table order (a later entry hides an earlier one)."""
    entries = []
    for line in text.splitlines():
        # id parent major:minor root target options [optional...] - fstype source super-options
        left, _sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        options = fields[5].split(",") + (tail[2].split(",") if len(tail) > 2 else [])
        entries.append(
            MountEntry(
                source=_unescape(tail[1]),
                target=_unescape(fields[4]),
                fstype=tail[0],
                options=tuple(dict.fromkeys(options)),
            )
        )
    return entries


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "`": "`"}


def _read_quoted(rest: str, quote: str, lines: List[str], index: int) -> Tuple[str, int]:
    """Read a quoted value that may continue over following lines; returns (value, next index)."""
    chars: List[str] = []
    text = rest
    while True:
        position = 0
        while position < len(text):
            char = text[position]
            if char == quote:
                return "".join(chars), index
            if char == "\\" and quote == '"' and position + 1 < len(text):
                following = text[position + 1]
                chars.append(_DOUBLE_QUOTE_ESCAPES.get(following, "\\" + following))
                position += 2
                continue
            chars.append(char)
            position += 1
        if index >= len(lines):  # unterminated: take what there is, as dotenv does
            return "".join(chars), index
        chars.append("\n")
        text = lines[index]
        index += 1


def parse_env_file(text: str) -> Dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= and dotenv read them.

    Blank lines and lines starting with # or ; are comments; ``export `` is allowed;
    values may be single-quoted (literal) or double-quoted (backslash escapes, may span
    lines); an unquoted value ends at `` #``. Malformed lines are skipped.
    """
    result: Dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, separator, rest = line.partition("=")
        key = key.strip()
        if not separator or not _ENV_KEY.match(key):
            continue
        rest = rest.lstrip()
        if rest[:1] in ('"', "'"):
            value, index = _read_quoted(rest[1:], rest[0], lines, index)
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0].rstrip()
        result[key] = value
    return result


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a timed-out child and every process of its group, then reap the child.

    The child must have been started with ``start_new_session=True``: its pid is then its
    group's id, and a shell's background jobs (``sleep 1000 &``) are in that group. It is
    reaped only after the kill, so the id cannot have passed to another process.
    """
    import signal  # loaded with subprocess already

    with contextlib.suppress(ProcessLookupError):  # the whole group has exited meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _host(name: str):  # type: ignore[no-untyped-def]
    # A str host makes the socket module import the idna codec (~8 ms); ASCII bytes do not.
    return name.encode("ascii") if name.isascii() else name


def _import_psutil():  # type: ignore[no-untyped-def]
    try:
        import psutil
    except ImportError:
        return None
    return psutil


class _Cutoff:
    """Shuts a connection's socket down when its time is up: a read blocked on a server that
    trickles its answer ends then, instead of outliving its attempt."""

    def __init__(self, connection: Any, seconds: float) -> None:
        self.fired = threading.Event()
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired.set()
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class Probe(Protocol):
    """What a check may read of the system. A method raises OSError (or a subclass) when the
    system refuses, and one that takes a ``timeout`` raises socket.timeout or TimeoutError
    past it."""

    def exists(self, path: str) -> bool:
        """Whether ``path`` names anything (a dangling symbolic link does not)."""

    def mount_at(self, path: str) -> Optional[MountEntry]:
        """The visible mount whose mount point is exactly ``path`` (after resolving links)."""

    def mount_containing(self, path: str) -> Optional[MountEntry]:
        """The mount that holds ``path``: the longest mount point above it."""

    def try_write(self, directory: str) -> None:
        """Create, write one byte to, and remove a temporary file in ``directory``."""

    def disk_usage(self, path: str) -> DiskUsage:
        """Space and inodes of the filesystem holding ``path``."""

    def environ(self) -> Dict[str, str]:
        """The process environment."""

    def env_file(self, path: str) -> Dict[str, str]:
        """The variables of a KEY=VALUE env file (see parse_env_file)."""

    def which(self, name: str) -> Optional[str]:
        """The executable a command name (on PATH) or an absolute path stands for, or None."""

    def run(self, argv: List[str], timeout: float) -> Tuple[int, str]:
        """Run argv (never a shell) and return its exit code and stdout+stderr; past the
        timeout it is killed with everything it started."""

    def search(self, pattern: str, text: str, timeout: float) -> Optional[Found]:
        """A spec's regex searched in text, bounded by timeout even when it runs away."""

    def resolve(self, name: str, family: str = "any") -> List[str]:
        """Addresses from the system resolver, in resolver order; socket.gaierror if none."""

    def tcp_connect(self, host: str, port: int, timeout: float) -> float:
        """Connect and close; returns the seconds the connection took to be accepted."""

    def http(
        self,
        method: str,
        url: str,
        headers: Dict[str, str],
        timeout: float,
        follow_redirects: bool = False,
        validate_certs: bool = True,
    ) -> HttpResponse:
        """One request (and its redirects, when followed) within one deadline."""


class SystemProbe:
    """The Probe of the machine it runs on. ``use_psutil=False`` forces the stdlib fallbacks."""

    def __init__(self, use_psutil: bool = True) -> None:
        self._psutil = _import_psutil() if use_psutil else None

    # --- filesystems -------------------------------------------------------------
    def mounts(self) -> List[MountEntry]:
        if self._psutil is not None:
            return [
                MountEntry(part.device, part.mountpoint, part.fstype, tuple(part.opts.split(",")))
                for part in self._psutil.disk_partitions(all=True)
            ]
        with open(MOUNTINFO) as handle:
            return parse_mountinfo(handle.read())

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def mount_at(self, path: str) -> Optional[MountEntry]:
        wanted = {os.path.normpath(path), os.path.realpath(path)}
        found = None
        for entry in self.mounts():
            if entry.target in wanted:
                found = entry  # keep the last: it is the one on top
        return found

    def mount_containing(self, path: str) -> Optional[MountEntry]:
        real = os.path.realpath(path)
        best = None
        for entry in self.mounts():
            target = entry.target.rstrip("/") + "/"
            if (real + "/").startswith(target) and (
                best is None or len(entry.target) >= len(best.target)
            ):
                best = entry
        return best

    def disk_usage(self, path: str) -> DiskUsage:
        stat = os.statvfs(path)
        if self._psutil is not None:
            usage = self._psutil.disk_usage(path)
            total, used, free = usage.total, usage.used, usage.free
        else:
            total = stat.f_blocks * stat.f_frsize
            used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
            free = stat.f_bavail * stat.f_frsize
        # As df: the share of the space usable by unprivileged users that is still free.
        usable = used + free
        free_percent = 100.0 * free / usable if usable else 0.0
        return DiskUsage(total, free, free_percent, stat.f_files, stat.f_favail)

    def try_write(self, directory: str) -> None:
        # O_EXCL with a random name is what tempfile.mkstemp does, without its import cost.
        name = os.path.join(directory, ".smokegate-%d-%s" % (os.getpid(), os.urandom(6).hex()))
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(handle, b"x")
            os.fsync(handle)
        finally:
            os.close(handle)
            os.unlink(name)

    # --- environment ---------------------------------------------------------------
    def environ(self) -> Dict[str, str]:
        return dict(os.environ)

    def env_file(self, path: str) -> Dict[str, str]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_env_file(handle.read())

    # --- programs ------------------------------------------------------------------
    def which(self, name: str) -> Optional[str]:
        if "/" in name:
            return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
        import shutil

        return shutil.which(name)

    def run(self, argv: List[str], timeout: float) -> Tuple[int, str]:
        # Past the timeout, everything it started is killed with it (see kill_process_group).
        import subprocess

        with subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, LC_ALL="C"),
            start_new_session=True,
        ) as process:
            try:
                output = process.communicate(timeout=timeout)[0]
            except subprocess.TimeoutExpired:
                kill_process_group(process)
                raise TimeoutError("%s ran longer than %.1f s" % (argv[0], timeout)) from None
        return process.returncode, output[:MAX_OUTPUT].decode("utf-8", "replace")

    # --- text ----------------------------------------------------------------------
    def search(self, pattern: str, text: str, timeout: float) -> Optional[Found]:
        return search(pattern, text, timeout)

    # --- network -------------------------------------------------------------------
    def resolve(self, name: str, family: str = "any") -> List[str]:
        wanted = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[family]
        infos = socket.getaddrinfo(_host(name), None, wanted, socket.SOCK_STREAM)
        return list(dict.fromkeys(info[4][0] for info in infos))

    def tcp_connect(self, host: str, port: int, timeout: float) -> float:
        started = time.monotonic()
        with socket.create_connection((_host(host), port), timeout=timeout):
            return time.monotonic() - started

    def http(
        self,
        method: str,
        url: str,
        headers: Dict[str, str],
        timeout: float,
        follow_redirects: bool = False,
        validate_certs: bool = True,
    ) -> HttpResponse:
        import http.client
        from urllib.parse import urljoin, urlsplit

        # One deadline for the whole exchange, redirects included: a socket timeout bounds
        # each read only, and a server that trickles its answer would outlive the attempt.
        deadline = time.monotonic() + timeout
        origin = urlsplit(url).netloc
        for _attempt in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no answer within %.2g s" % timeout)
            parts = urlsplit(url)
            request_headers = {"User-Agent": "smokegate", "Connection": "close"}
            if parts.netloc != origin:
                headers = {}  # credentials are for the origin only, never for a redirect target
            authorization = basic_authorization(url)
            if authorization is not None:
                request_headers["Authorization"] = authorization
            request_headers.update(headers)
            if parts.scheme == "https":
                import ssl

                context = ssl.create_default_context()
                if not validate_certs:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=remaining, context=context
                )
            else:
                connection = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=remaining
                )
            cutoff = _Cutoff(connection, remaining)
            try:
                target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
                connection.request(method, target, headers=request_headers)
                response = connection.getresponse()
                body = response.read(MAX_BODY + 1)
                location = response.getheader("Location")
            except (OSError, http.client.HTTPException):
                if cutoff.fired.is_set():
                    raise socket.timeout("no answer within %.2g s" % timeout) from None
                raise
            finally:
                cutoff.cancel()
                connection.close()
            if follow_redirects and response.status in REDIRECT_STATUSES and location:
                url = urljoin(url, location)
                continue
            return HttpResponse(response.status, body[:MAX_BODY], url, len(body) > MAX_BODY)
        raise OSError("more than %d redirects" % MAX_REDIRECTS)
