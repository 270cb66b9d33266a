"""A machine that exists only in memory, behind the probe interface (probes.Probe).

Its world is unlike the machine the tests run on (``/srv/uploads`` is an NFS mount, ffmpeg
6.1.1 is installed, ``db.internal`` resolves and listens on 5432, a Prometheus answers on
127.0.0.1:9090, systemd runs nginx, two gunicorn workers run as ``app``, it is 2026-01-01 and
example.internal's certificate has 60 days left), so a check that reads the system itself,
instead of through its probe, reports something else and its test fails.
"""

from __future__ import annotations

import errno
import json
import re
import socket
from urllib.parse import parse_qs

from ansible_collections.smokegate.core.plugins.module_utils.certs import Certificate
from ansible_collections.smokegate.core.plugins.module_utils.matcher import Found
from ansible_collections.smokegate.core.plugins.module_utils.probes import (
    CommandResult,
    DiskUsage,
    FileInfo,
    HttpResponse,
    Listener,
    MountEntry,
    ProcessInfo,
    ServiceState,
    TlsPeer,
)

GIB = 1024**3
MOUNTS = {
    "/": MountEntry("/dev/vda1", "/", "ext4", ("rw", "relatime")),
    "/srv/uploads": MountEntry("fs1:/uploads", "/srv/uploads", "nfs4", ("rw", "vers=4.2")),
}
PATHS = {"/", "/srv", "/srv/uploads", "/srv/app/shared/app.env", "/usr/bin/ffmpeg"}
WRITABLE = {"/srv/uploads"}
ENV_FILES = {"/srv/app/shared/app.env": {"DATABASE_URL": "postgres://app@db/app"}}
PROGRAMS = {"ffmpeg": "/usr/bin/ffmpeg"}
OUTPUTS = {("/usr/bin/ffmpeg", "-version"): (0, "ffmpeg version 6.1.1-3 Copyright (c) 2000\n")}
NAMES = {"db.internal": ["10.0.0.5", "10.0.0.6"]}
LISTENING = {("db.internal", 5432): 0.0012}
PAGES = {"http://127.0.0.1:8000/healthz": (200, b"ok\n")}
# The samples a Prometheus at 127.0.0.1:9090 answers, by query.
PROMETHEUS_URL = "http://127.0.0.1:9090/api/v1/query"
SAMPLES = {
    'rate(http_errors_total{instance="localhost"}[5m])': [({"instance": "localhost"}, "0.002")]
}
NOW = 1767225600.0  # 2026-01-01 00:00 UTC
DAY = 86400.0
COMMANDS = {
    (("python3", "smoke.py"), "/srv/app/current"): CommandResult(0, "all checks passed\n", "")
}
SERVICES = {
    "nginx.service": ServiceState(
        "nginx.service", "loaded", "active", "running", "enabled", 3600.0, 1
    )
}
PROCESSES = [
    ProcessInfo(1, "systemd", "/sbin/init", "root", 0),
    ProcessInfo(101, "gunicorn", "/srv/app/venv/bin/gunicorn app:main", "app", 1000),
    ProcessInfo(102, "gunicorn", "/srv/app/venv/bin/gunicorn app:main", "app", 1000),
]
LISTENERS = {"tcp": [Listener("tcp", "127.0.0.1", 5432)], "udp": []}
FILES = {
    "/srv/app/shared/config.json": FileInfo("file", 0o640, "app", "app", 1000, 1000, 11, NOW - 60)
}
CONTENTS = {"/srv/app/shared/config.json": b'{"db": "ok"}'}
CERTIFICATE = Certificate(
    "CN=example.internal", "CN=Example CA", NOW - 30 * DAY, NOW + 60 * DAY, ("example.internal",)
)
SERVERS = {("example.internal", 443): TlsPeer(CERTIFICATE, None)}


class FakeProbe:
    """Answers every probe method from the tables above; reads nothing of the OS."""

    def exists(self, path: str) -> bool:
        return path in PATHS

    def mount_at(self, path: str) -> MountEntry | None:
        return MOUNTS.get(path)

    def mount_containing(self, path: str) -> MountEntry | None:
        holders = [target for target in MOUNTS if (path + "/").startswith(target.rstrip("/") + "/")]
        return MOUNTS[max(holders, key=len)] if holders else None

    def try_write(self, directory: str) -> None:
        if directory not in WRITABLE:
            raise PermissionError(errno.EACCES, "Permission denied", directory)

    def disk_usage(self, path: str) -> DiskUsage:
        return DiskUsage(64 * GIB, 8 * GIB, 12.5, 4_000_000, 3_000_000)

    def environ(self) -> dict[str, str]:
        return {"APP_MODE": "production"}

    def env_file(self, path: str) -> dict[str, str]:
        if path not in ENV_FILES:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return ENV_FILES[path]

    def which(self, name: str) -> str | None:
        return PROGRAMS.get(name)

    def run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        return OUTPUTS[tuple(argv)]

    def search(self, pattern: str, text: str, timeout: float) -> Found | None:
        match = re.search(pattern, text)
        return Found(match.group(0), match.groups()) if match else None

    def resolve(self, name: str, family: str = "any") -> list[str]:
        if name not in NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return NAMES[name]

    def tcp_connect(self, host: str, port: int, timeout: float) -> float:
        if (host, port) not in LISTENING:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return LISTENING[host, port]

    def http(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        timeout: float,
        follow_redirects: bool = False,
        validate_certs: bool = True,
    ) -> HttpResponse:
        address, _mark, arguments = url.partition("?")
        if address == PROMETHEUS_URL:
            [query] = parse_qs(arguments)["query"]
            return HttpResponse(200, prometheus_answer(SAMPLES.get(query, [])), url)
        if url not in PAGES:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        status, body = PAGES[url]
        return HttpResponse(status, body, url)

    def run_command(
        self,
        argv: list[str],
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        if (tuple(argv), cwd) not in COMMANDS:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", argv[0])
        return COMMANDS[tuple(argv), cwd]

    def service_state(self, unit: str, timeout: float) -> ServiceState:
        return SERVICES.get(unit) or ServiceState(
            unit, "not-found", "inactive", "dead", "", None, 0
        )

    def processes(self) -> list[ProcessInfo]:
        return list(PROCESSES)

    def listeners(self, protocol: str) -> list[Listener]:
        return LISTENERS[protocol]

    def file_info(self, path: str, follow_links: bool = True) -> FileInfo:
        if path not in FILES:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return FILES[path]

    def read_file(self, path: str, limit: int) -> bytes:
        return CONTENTS[path][:limit]

    def now(self) -> float:
        return NOW

    def tls_peer(
        self,
        host: str,
        port: int,
        server_name: str,
        ca_file: str | None,
        verify: bool,
        timeout: float,
    ) -> TlsPeer:
        if (host, port) not in SERVERS:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return SERVERS[host, port]

    def certificate_file(self, path: str) -> Certificate:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def search_each(self, pattern: str, texts: list[str], timeout: float) -> list[bool]:
        return [re.search(pattern, text) is not None for text in texts]


def prometheus_answer(samples: list[tuple[dict[str, str], str]]) -> bytes:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()
