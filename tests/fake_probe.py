"""A machine that exists only in memory, behind the probe interface (probes.Probe).

Its world is unlike the machine the tests run on (``/srv/uploads`` is an NFS mount, ffmpeg
6.1.1 is installed, ``db.internal`` resolves and listens on 5432, a Prometheus answers on
127.0.0.1:9090), so a check that reads the system itself, instead of through its probe,
reports something else and its test fails.
"""

from __future__ import annotations

import errno
import json
import re
import socket
from urllib.parse import parse_qs

from ansible_collections.smokegate.core.plugins.module_utils.matcher import Found
from ansible_collections.smokegate.core.plugins.module_utils.probes import (
    DiskUsage,
    HttpResponse,
    MountEntry,
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


def prometheus_answer(samples: list[tuple[dict[str, str], str]]) -> bytes:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()
