"""Run the engine on a host over SSH: one exec per request, JSON back.

What travels and how the host runs it is the collection's ``plugin_utils/shipping``. stdin
is written straight to the SSH channel, not through Invoke's runner, which reads a non-tty
stdin at about 100 bytes a second.
"""

from __future__ import annotations

import shlex
import socket
import time
from typing import Any

import paramiko
from fabric import Connection

from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import (
    BOOTSTRAP,
    payload,
    prepare,
    read_answer,
)

prepare()  # once per fab, before its threads fan out

DEFAULT_CONNECT_TIMEOUT = 10
KEEPALIVE_SECONDS = 15
UPLOAD_STALL_SECONDS = 60
# Past the request's own bound: interpreter start, engine import, the answer's trip back.
SLACK_SECONDS = 15


class HostError(Exception):
    """Something on one host went wrong; the message names the host and what to do.

    ``kind`` is ``unreachable`` (no SSH connection), ``auth``, ``python``, ``sudo``,
    ``timeout`` or ``engine``.
    """

    def __init__(self, host: str, kind: str, message: str) -> None:
        self.host = host
        self.kind = kind
        self.reason = message
        super().__init__("%s: %s" % (host, message))


def command(python: str = "python3", sudo: bool = False, sudo_password: bool = False) -> str:
    """The command line run on the host; it carries no data, only the bootstrap."""
    argv = [python, "-c", BOOTSTRAP]
    if sudo:
        # -S reads a password from stdin ahead of the request; -n fails at once instead of
        # waiting for a password nobody will type.
        argv = (
            ["sudo", "-S", "-p", "", "--", *argv] if sudo_password else ["sudo", "-n", "--", *argv]
        )
    return shlex.join(argv)


def connect(host: str | dict[str, Any], config: Any = None) -> Connection:
    """A Fabric Connection with a bounded connect time (10 s unless configured)."""
    kwargs = dict(host) if isinstance(host, dict) else {"host": host}
    if config is not None:
        kwargs["config"] = config
    return bounded(Connection(**kwargs))


def bounded(connection: Connection) -> Connection:
    """Give a connection the default connect timeout unless one is configured anywhere."""
    if connection.connect_timeout is None and "timeout" not in connection.connect_kwargs:
        connection.connect_timeout = DEFAULT_CONNECT_TIMEOUT
    return connection


def describe(connection: Connection) -> str:
    """The name users gave the host (what -H said), for every message about it."""
    return connection.original_host or connection.host


def _connect_error(host: str, connection: Connection, exc: BaseException) -> HostError:
    if isinstance(exc, paramiko.AuthenticationException):
        return HostError(host, "auth", "authentication failed for %s: %s" % (connection.user, exc))
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostError(host, "auth", "host key does not match known_hosts: %s" % exc)
    if isinstance(exc, socket.gaierror):
        return HostError(host, "unreachable", "unreachable: cannot resolve %s" % connection.host)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return HostError(
            host,
            "unreachable",
            "unreachable: no SSH answer from %s:%s in %s s"
            % (connection.host, connection.port, connection.connect_timeout),
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reasons = "; ".join(sorted({error.strerror or str(error) for error in exc.errors.values()}))
        return HostError(
            host,
            "unreachable",
            "unreachable: cannot connect to %s:%s (%s)"
            % (connection.host, connection.port, reasons),
        )
    if isinstance(exc, paramiko.SSHException):
        return HostError(host, "unreachable", "unreachable: SSH failed: %s" % exc)
    return HostError(
        host, "unreachable", "unreachable: %s" % (getattr(exc, "strerror", None) or exc)
    )


class RemoteHost:
    """One host: its SSH connection, and the engine run over it.

    Every request is one exec on the connection; a deploy keeps the connection open for
    all its requests and its SFTP upload.
    """

    def __init__(
        self,
        connection: Connection,
        sudo: bool = False,
        python: str = "python3",
    ) -> None:
        self.connection = connection
        self.name = describe(connection)
        self.sudo = sudo
        self.python = python
        self.sudo_password = connection.config.sudo.password if sudo else None

    def open(self) -> None:
        try:
            self.connection.open()
            # A host that goes silent (no RST) is noticed instead of waited on forever.
            self.connection.transport.set_keepalive(KEEPALIVE_SECONDS)
        except Exception as exc:  # paramiko and Fabric raise many kinds; all mean "not connected"
            raise _connect_error(self.name, self.connection, exc) from None

    def close(self) -> None:
        self.connection.close()

    def _exec(self, data: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        self.open()
        deadline = time.monotonic() + timeout
        channel = None
        try:
            channel = self.connection.transport.open_session(timeout=DEFAULT_CONNECT_TIMEOUT)
            channel.exec_command(
                command(self.python, self.sudo, sudo_password=self.sudo_password is not None)
            )
            try:
                channel.sendall(data)
                channel.shutdown_write()
            except OSError:
                pass  # it exited before reading (no python3); its stderr says why
            stdout, stderr = bytearray(), bytearray()
            for sink, receive in ((stdout, channel.recv), (stderr, channel.recv_stderr)):
                while True:
                    channel.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = receive(65536)
                    if not chunk:
                        break
                    sink.extend(chunk)
            if not channel.status_event.wait(max(0.01, deadline - time.monotonic())):
                raise socket.timeout()
            status = channel.exit_status
        except (socket.timeout, TimeoutError):
            raise HostError(
                self.name, "timeout", "no answer from the engine in %.0f s" % timeout
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise HostError(
                self.name,
                "unreachable",
                "unreachable: the SSH connection broke: %s" % (exc or type(exc).__name__),
            ) from None
        finally:
            if channel is not None:
                channel.close()
        return status, bytes(stdout), bytes(stderr)

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one request on the host (one SSH exec) and return its answer."""
        status, stdout, stderr = self._exec(payload(request, self.sudo_password), timeout)
        answer = read_answer(stdout.decode("utf-8", "replace"))
        if answer is not None:
            if "engine_error" in answer:
                raise HostError(self.name, "engine", "engine error: %s" % answer["engine_error"])
            return answer
        raise self._no_answer(status, stderr.decode("utf-8", "replace").strip())

    def _no_answer(self, status: int, error: str) -> HostError:
        if status == -1:  # paramiko's "no exit status": the channel closed under the engine
            return HostError(
                self.name, "unreachable", "unreachable: the connection was lost mid-request"
            )
        last = error.splitlines()[-1] if error else "(no output)"
        if self.sudo and "incorrect password" in error:
            return HostError(
                self.name,
                "sudo",
                "sudo rejected the password (%s); give the right one with "
                "--prompt-for-sudo-password" % last,
            )
        if self.sudo and "password is required" in error:
            return HostError(
                self.name,
                "sudo",
                "sudo needs a password (%s); give it with --prompt-for-sudo-password" % last,
            )
        if self.sudo and ("sudo: not found" in error or "sudo: command not found" in error):
            return HostError(self.name, "sudo", "no sudo on the host: %s" % last)
        if status == 127 or "command not found" in error or "No such file" in error:
            return HostError(
                self.name,
                "python",
                "no %s on the host (%s); install Python 3.8+ or point --python at it"
                % (self.python, last),
            )
        if "needs Python 3.8+" in error or "SyntaxError" in error:
            return HostError(
                self.name,
                "python",
                "%s on the host is older than Python 3.8: %s; point --python at a newer one"
                % (self.python, last),
            )
        return HostError(self.name, "engine", "engine failed (exit %d): %s" % (status, last))

    def put(self, local: str, remote: str) -> None:
        """Upload a file over SFTP on the same connection."""
        self.open()
        try:
            self.connection.sftp().get_channel().settimeout(UPLOAD_STALL_SECONDS)
            self.connection.put(local, remote)
        except (socket.timeout, TimeoutError):
            raise HostError(
                self.name,
                "unreachable",
                "unreachable: the upload stalled for %d s" % UPLOAD_STALL_SECONDS,
            ) from None
        except OSError as exc:
            raise HostError(
                self.name, "engine", "upload to %s failed: %s" % (remote, exc.strerror or exc)
            ) from None
        except (EOFError, paramiko.SSHException) as exc:
            raise HostError(
                self.name, "unreachable", "unreachable: upload broke: %s" % exc
            ) from None
