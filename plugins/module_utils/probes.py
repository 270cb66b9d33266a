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
import errno
import os
import re
import socket
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Tuple,
)

from . import procfs
from .certs import Certificate, decode, pem_to_der
from .matcher import Found, search, search_each
from .procfs import Listener, ProcessInfo
from .systemd import PROPERTIES, ServiceState, parse_show

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
# How long a command's output is still read once it has exited: what it left running in
# the background may hold its pipes open for ever.
LINGER = 0.1
MAX_PEM = 1024 * 1024


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
    seconds: float = 0.0  # from the first request to the last byte of the body


class CommandResult(NamedTuple):
    status: int  # the exit status; -N when signal N killed it
    stdout: str  # the last MAX_OUTPUT bytes of each stream
    stderr: str


class FileInfo(NamedTuple):
    type: str  # file, directory, symlink, socket, fifo, device
    mode: int  # the permission bits, 0o7777 at most
    owner: str  # the owner's name, or its id as digits when it has none
    group: str
    uid: int
    gid: int
    size: int
    mtime: float  # Unix time of the last modification


class TlsPeer(NamedTuple):
    certificate: Certificate
    verify_error: Optional[str]  # why verification failed; None when it passed or was off


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


def _read_quoted(rest: str, quote: str, lines: List[str], index: int) -> Tuple[str, int, bool]:
    """Read a quoted value that may continue over following lines; returns (value, next
    index, whether the quote was closed)."""
    chars: List[str] = []
    text = rest
    while True:
        position = 0
        while position < len(text):
            char = text[position]
            if char == quote:
                return "".join(chars), index, True
            if char == "\\" and quote == '"' and position + 1 < len(text):
                following = text[position + 1]
                chars.append(_DOUBLE_QUOTE_ESCAPES.get(following, "\\" + following))
                position += 2
                continue
            chars.append(char)
            position += 1
        if index >= len(lines):  # unterminated: take what there is, as dotenv does
            return "".join(chars), index, False
        chars.append("\n")
        text = lines[index]
        index += 1


class EnvLine(NamedTuple):
    number: int  # where it starts, from 1
    key: Optional[str]  # None for a malformed line
    value: str
    problem: Optional[str]  # why the line is malformed, or its quote unclosed


def _env_lines(text: str) -> Iterator[EnvLine]:
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, separator, rest = line.partition("=")
        key = key.strip()
        if not separator:
            yield EnvLine(number, None, "", "not a KEY=VALUE line")
            continue
        if not _ENV_KEY.match(key):
            yield EnvLine(number, None, "", "not a variable name before the =")
            continue
        rest = rest.lstrip()
        if rest[:1] in ('"', "'"):
            value, index, closed = _read_quoted(rest[1:], rest[0], lines, index)
            yield EnvLine(number, key, value, None if closed else "its quote is never closed")
        else:
            yield EnvLine(number, key, re.split(r"\s#", rest, maxsplit=1)[0].rstrip(), None)


def parse_env_file(text: str) -> Dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= and dotenv read them.

    Blank lines and lines starting with # or ; are comments; ``export `` is allowed;
    values may be single-quoted (literal) or double-quoted (backslash escapes, may span
    lines); an unquoted value ends at `` #``. Malformed lines are skipped.
    """
    return {line.key: line.value for line in _env_lines(text) if line.key is not None}


def env_file_problem(text: str) -> Optional[str]:
    """Where an env file is malformed (what parse_env_file would skip or take as it is).

    >>> env_file_problem('A=1\\nB="two\\n'), env_file_problem("A=1\\n# note\\n")
    ('line 2: its quote is never closed', None)
    """
    for line in _env_lines(text):
        if line.problem is not None:
            return "line %d: %s" % (line.number, line.problem)
    return None


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


def _collect(
    process: subprocess.Popen[bytes], deadline: float, program: str
) -> Tuple[bytes, bytes]:
    """The last MAX_OUTPUT bytes of a child's stdout and stderr, read until both end, or
    LINGER after it exited; past the deadline it is killed with its group (TimeoutError)."""
    import selectors

    if process.stdout is None or process.stderr is None:  # started without pipes
        raise ValueError("%s: started without stdout and stderr pipes" % program)
    kept = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as selector:
        for descriptor in kept:
            selector.register(descriptor, selectors.EVENT_READ)
        exited_at = None
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                kill_process_group(process)
                raise TimeoutError("%s did not finish in time" % program)
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > LINGER:
                break
            for key, _events in selector.select(min(deadline - now, LINGER)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                kept[key.fd] += chunk
                del kept[key.fd][:-MAX_OUTPUT]
    return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()])


class _Held(NamedTuple):
    """A socket held the way a connection holds it, for _Cutoff."""

    sock: socket.socket


def _handshake(context: Any, host: str, port: int, server_name: str, deadline: float) -> bytes:
    """The DER certificate a server presents in a TLS handshake that ends by ``deadline``,
    however slowly the server trickles it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("no handshake within the time left")
    with socket.create_connection((_host(host), port), timeout=remaining) as raw:
        # The handshake starts once the cutoff can reach the socket that does it.
        secure = context.wrap_socket(
            raw, server_hostname=server_name, do_handshake_on_connect=False
        )
        cutoff = _Cutoff(_Held(secure), remaining)
        try:
            secure.do_handshake()
            der = secure.getpeercert(binary_form=True)
        except OSError:
            if cutoff.fired.is_set():
                raise socket.timeout("no handshake within %.2g s" % remaining) from None
            raise
        finally:
            cutoff.cancel()
            secure.close()
    if not der:
        raise OSError("the server presented no certificate")
    return der


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
                # The plain socket's shutdown: a TLS socket's own would also drop its TLS
                # state under the thread still reading from it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

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

    def run_command(
        self,
        argv: List[str],
        timeout: float,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> CommandResult:
        """Run argv (never a shell) in its own session, with ``env`` added to the process
        environment; its streams apart. Past the timeout it is killed with its group."""

    def service_state(self, unit: str, timeout: float) -> ServiceState:
        """A systemd unit's state from ``systemctl show``; OSError without systemd."""

    def processes(self) -> List[ProcessInfo]:
        """Every running process but this one (zombies are not running)."""

    def listeners(self, protocol: str) -> List[Listener]:
        """The sockets listening locally for ``protocol`` (tcp or udp), IPv4 and IPv6."""

    def file_info(self, path: str, follow_links: bool = True) -> FileInfo:
        """What ``path`` is (the link itself when not ``follow_links``); FileNotFoundError."""

    def read_file(self, path: str, limit: int) -> bytes:
        """The first ``limit`` bytes of a regular file (never blocks on a FIFO)."""

    def now(self) -> float:
        """The wall clock, as Unix time."""

    def tls_peer(
        self,
        host: str,
        port: int,
        server_name: str,
        ca_file: Optional[str],
        verify: bool,
        timeout: float,
    ) -> TlsPeer:
        """The certificate a TLS server presents for ``server_name`` (SNI), and why it does
        not verify against ca_file (or the system's CAs) for that name, when ``verify``."""

    def certificate_file(self, path: str) -> Certificate:
        """The first certificate of a PEM file; ValueError when it holds none."""

    def search_each(self, pattern: str, texts: List[str], timeout: float) -> List[bool]:
        """Whether a spec's regex is found in each text, all within one timeout."""


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

    def run_command(
        self,
        argv: List[str],
        timeout: float,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> CommandResult:
        import subprocess

        deadline = time.monotonic() + timeout
        with subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(os.environ, **(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as process:
            stdout, stderr = _collect(process, deadline, argv[0])
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # it closed its output and ran on
                kill_process_group(process)
                raise TimeoutError("%s ran longer than %.1f s" % (argv[0], timeout)) from None
        return CommandResult(
            process.returncode,
            stdout.decode("utf-8", "replace"),
            stderr.decode("utf-8", "replace"),
        )

    # --- services and processes ------------------------------------------------------
    def service_state(self, unit: str, timeout: float) -> ServiceState:
        if self.which("systemctl") is None:
            raise OSError("systemctl is not installed: this host does not run systemd")
        argv = ["systemctl", "show", "--property=" + ",".join(PROPERTIES), "--", unit]
        result = self.run_command(argv, timeout, env={"LC_ALL": "C", "SYSTEMD_COLORS": "0"})
        if result.status != 0:
            reason = (result.stderr.strip().splitlines() or ["exit %d" % result.status])[0]
            if not os.path.isdir("/run/systemd/system"):  # sd_booted(): systemd is PID 1
                raise OSError("this host does not run systemd (systemctl: %s)" % reason[:200])
            raise OSError("systemctl show failed: %s" % reason[:200])
        return parse_show(result.stdout, time.monotonic())

    def processes(self) -> List[ProcessInfo]:
        # psutil reads the same files of /proc, and more, for every process: reading them
        # here takes a third of its time (5-13 ms against 15-45 ms for 110 processes).
        if self._psutil is not None and not os.path.isdir("/proc/self"):
            return procfs.processes_with_psutil(self._psutil)
        return procfs.processes()

    def listeners(self, protocol: str) -> List[Listener]:
        return procfs.listeners(protocol)

    # --- files -----------------------------------------------------------------------
    def file_info(self, path: str, follow_links: bool = True) -> FileInfo:
        import stat

        status = os.stat(path) if follow_links else os.lstat(path)
        kinds = (
            (stat.S_ISLNK, "symlink"),
            (stat.S_ISREG, "file"),
            (stat.S_ISDIR, "directory"),
            (stat.S_ISSOCK, "socket"),
            (stat.S_ISFIFO, "fifo"),
        )
        kind = next((name for test, name in kinds if test(status.st_mode)), "device")
        return FileInfo(
            kind,
            stat.S_IMODE(status.st_mode),
            procfs.user_name(status.st_uid),
            procfs.group_name(status.st_gid),
            status.st_uid,
            status.st_gid,
            status.st_size,
            status.st_mtime,
        )

    def read_file(self, path: str, limit: int) -> bytes:
        import stat

        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            chunks, size = [], 0
            while size < limit:
                chunk = os.read(handle, min(65536, limit - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(handle)

    def now(self) -> float:
        return time.time()

    def certificate_file(self, path: str) -> Certificate:
        return decode(pem_to_der(self.read_file(path, MAX_PEM).decode("ascii", "replace")))

    # --- text ----------------------------------------------------------------------
    def search(self, pattern: str, text: str, timeout: float) -> Optional[Found]:
        return search(pattern, text, timeout)

    def search_each(self, pattern: str, texts: List[str], timeout: float) -> List[bool]:
        return search_each(pattern, texts, timeout)

    # --- network -------------------------------------------------------------------
    def resolve(self, name: str, family: str = "any") -> List[str]:
        wanted = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[family]
        infos = socket.getaddrinfo(_host(name), None, wanted, socket.SOCK_STREAM)
        return list(dict.fromkeys(info[4][0] for info in infos))

    def tcp_connect(self, host: str, port: int, timeout: float) -> float:
        started = time.monotonic()
        with socket.create_connection((_host(host), port), timeout=timeout):
            return time.monotonic() - started

    def tls_peer(
        self,
        host: str,
        port: int,
        server_name: str,
        ca_file: Optional[str],
        verify: bool,
        timeout: float,
    ) -> TlsPeer:
        import ssl

        deadline = time.monotonic() + timeout
        verify_error = None
        if verify:
            context = ssl.create_default_context(cafile=ca_file)
            try:
                der = _handshake(context, host, port, server_name, deadline)
                return TlsPeer(decode(der), None)
            except ssl.SSLCertVerificationError as exc:
                verify_error = exc.verify_message or exc.reason or str(exc)
        # Not verified (or not trusted): read the certificate anyway, to say whose it is.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return TlsPeer(decode(_handshake(context, host, port, server_name, deadline)), verify_error)

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
        started = time.monotonic()
        deadline = started + timeout
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
            return HttpResponse(
                response.status,
                body[:MAX_BODY],
                url,
                len(body) > MAX_BODY,
                time.monotonic() - started,
            )
        raise OSError("more than %d redirects" % MAX_REDIRECTS)
