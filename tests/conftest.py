"""Shared fixtures: the installed CLI, spec files, and real loopback servers."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from quiet_http import QuietHandler

REPO = Path(__file__).resolve().parent.parent
SECRET_HEADER = "hdr-s3cret-9f2c"
# The other secrets of SECRET_CHECKS: an environment value (in an env file and in the
# process environment as SECRET_ENV_NAME), and URL credentials, whose password is
# percent-encoded in one URL and plain in another.
ENV_SECRET = "env-s3cret-5e1a"
SECRET_ENV_NAME = "SMOKEGATE_TEST_TOKEN"
URL_USER = "sg-probe-user"
URL_PASSWORD = "p#ss/w?rd@:x"
PLAIN_URL_PASSWORD = "plain-pw-63c1"
BASIC_AUTHORIZATIONS = {
    "Basic " + base64.b64encode(("%s:%s" % (URL_USER, password)).encode()).decode()
    for password in (URL_PASSWORD, PLAIN_URL_PASSWORD)
}


# The README section the execution environment and ansible-runner tests follow.
AWX_SECTION = "Running at scale: AWX, AAP and ansible-runner"


def readme_files(section: str) -> dict[str, str]:
    """The files the README's ``## <section>`` shows: its fenced blocks whose first line is
    a comment naming the file (``# deploy.yml``), by that name."""
    text = (REPO / "README.md").read_text()
    body = text.split("\n## %s\n" % section, 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"^```\w*\n(.*?)^```$", body, re.MULTILINE | re.DOTALL):
        first = block.split("\n", 1)[0]
        if re.fullmatch(r"# [\w./-]+", first):
            files[first[2:]] = block
    return files


def smokegate_executable() -> str:
    """The console script installed with the package (next to this interpreter)."""
    candidate = Path(sys.executable).with_name("smokegate")
    return str(candidate) if candidate.exists() else shutil.which("smokegate") or "smokegate"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [smokegate_executable(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
        **kwargs,
    )


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec (a list of checks or a whole document) to a YAML or JSON file."""

    def write(checks: Any, name: str = "smoke.json") -> Path:
        document = checks if isinstance(checks, dict) else {"checks": checks}
        path = tmp_path / name
        if name.endswith(".json"):
            path.write_text(json.dumps(document))
        else:
            import yaml

            path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return write


class _Handler(QuietHandler):
    flaky_calls = 0

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, b"status: ok\n")
        elif self.path == "/broken":
            self.reply(500, b"database down\n")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/healthz")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/private":
            ok = self.headers.get("X-Token") == SECRET_HEADER
            self.reply(200 if ok else 403, b"welcome\n" if ok else b"forbidden\n")
        elif self.path == "/basic":
            ok = self.headers.get("Authorization") in BASIC_AUTHORIZATIONS
            self.reply(200 if ok else 401, b"welcome\n" if ok else b"who are you?\n")
        elif self.path == "/repeated":  # what a backtracking pattern runs away on
            self.reply(200, b"a" * 64 + b"!\n")
        elif self.path == "/flaky":
            type(self).flaky_calls += 1
            self.reply(503 if type(self).flaky_calls == 1 else 200, b"warming up\n")
        else:
            self.reply(404, b"not found\n")


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on a loopback port; yields its base URL."""
    handler = type("Handler", (_Handler,), {"flaky_calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def secret_checks(directory: Path, base_url: str, closed_port: int) -> list[dict[str, Any]]:
    """Checks holding every kind of secret, passing and failing (SECRET_STATUSES).

    ``base_url`` is the http_server's; SECRET_ENV_NAME=ENV_SECRET must be in the
    environment the checks run in.
    """
    env_file = directory / "app.env"
    env_file.write_text("APP_DSN=postgres://app:%s@db/app\n" % ENV_SECRET)
    address = base_url.split("//", 1)[1]
    encoded = "http://%s:%s@" % (quote(URL_USER, safe=""), quote(URL_PASSWORD, safe=""))
    plain = "http://%s:%s@" % (URL_USER, PLAIN_URL_PASSWORD)
    env = {"name": "APP_DSN", "file": str(env_file)}
    header = {"url": base_url + "/private", "headers": {"X-Token": SECRET_HEADER}}
    return [
        {"name": "env file ok", "env": dict(env, pattern="^postgres://")},
        {"name": "env file bad", "env": dict(env, pattern="^mysql://")},
        {"name": "env process ok", "env": {"name": SECRET_ENV_NAME, "pattern": "^env-"}},
        {"name": "header ok", "http": header},
        {"name": "header bad", "http": dict(header, status=204)},
        {"name": "encoded credentials ok", "http": {"url": encoded + address + "/basic"}},
        {"name": "plain credentials ok", "http": {"url": plain + address + "/basic"}},
        {
            "name": "encoded credentials bad",
            "http": {"url": encoded + "127.0.0.1:%d/basic" % closed_port},
        },
        {
            "name": "plain credentials bad",
            "http": {"url": plain + address + "/basic", "status": 204},
        },
    ]


SECRET_STATUSES = {
    "env file ok": "pass",
    "env file bad": "fail",
    "env process ok": "pass",
    "header ok": "pass",
    "header bad": "fail",
    "encoded credentials ok": "pass",
    "plain credentials ok": "pass",
    "encoded credentials bad": "fail",
    "plain credentials bad": "fail",
}


def leaked_secrets(text: str) -> list[str]:
    """The secrets of SECRET_CHECKS that ``text`` shows, in any form they could take."""
    forms = [ENV_SECRET, SECRET_HEADER, URL_USER, PLAIN_URL_PASSWORD]
    forms += [URL_PASSWORD, quote(URL_PASSWORD, safe=""), "p#ss", "w?rd", "p%23ss", "w%3Frd"]
    forms += [authorization.split()[1] for authorization in BASIC_AUTHORIZATIONS]
    return [form for form in forms if form in text]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose connections are accepted by the kernel and never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # never accept(): the handshake completes, nothing is ever sent back
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture
def listening_port() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
                connection.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


SYSTEM_PACKAGES = REPO / "scripts" / "system-packages"


def system_binary(name: str) -> str:
    """The path of ``name``, a program of the Debian package of that name that
    scripts/system-packages installs (as root: here too, when it is missing); the test
    skips, saying so, when it is missing and this is not root."""
    if shutil.which(name) is None and os.geteuid() == 0:
        installed = subprocess.run(
            [str(SYSTEM_PACKAGES)], capture_output=True, text=True, check=False
        )
        if installed.returncode != 0:
            pytest.fail("scripts/system-packages failed: %s" % installed.stderr[-2000:])
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(
            "%s is not installed (Debian package %s), and only root can install it:"
            " run scripts/system-packages as root" % (name, name)
        )
    return binary


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Prometheus server on a loopback port, scraping every second an exporter whose
    gauges the tests set (tests/prometheus_server.py), up for the whole session."""
    from prometheus_server import Exporter, Prometheus

    binary = system_binary("prometheus")
    exporter = Exporter()
    server = Prometheus(binary, tmp_path_factory.mktemp("prometheus"), exporter)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        exporter.close()


def needs_root(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root: %s" % reason)


LAB_TOOL = REPO / "tests" / "lab" / "lab"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four real SSH hosts in network namespaces (tests/lab/lab), up for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("the SSH lab needs root (network namespaces, bridges, mounts); CI runs as root")
    directory = tmp_path_factory.mktemp("lab")
    subprocess.run(
        [str(LAB_TOOL), "up", "4", str(directory)], check=True, capture_output=True, text=True
    )
    yield directory
    subprocess.run([str(LAB_TOOL), "down", str(directory)], check=False, capture_output=True)


def lab_command(*args: str) -> None:
    subprocess.run([str(LAB_TOOL), *args], check=True, capture_output=True, text=True)


@pytest.fixture
def lab_fleet(lab: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The lab's hosts as a LabFleet, every host empty and answering SSH."""
    from fleet import LabFleet

    fleet = LabFleet(tmp_path, lab)
    for entry in fleet.lab_hosts:
        shutil.rmtree(fleet.root(entry["name"]), ignore_errors=True)
        try:
            socket.create_connection((entry["address"], 22), timeout=1).close()
        except OSError:
            lab_command("start-ssh", str(lab), entry["name"])
    return fleet


def running(pids: list[int], wait: float = 2.0) -> list[int]:
    """The pids still running (zombies count as gone), after up to ``wait`` s for them to die."""

    def alive(pid: int) -> bool:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                return handle.read().rpartition(")")[2].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + wait
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def kill_all(pids: list[int]) -> None:
    """SIGKILL the test's own processes that outlived it."""
    for pid in running(pids, wait=0):
        os.kill(pid, signal.SIGKILL)


def alias_bomb() -> str:
    """A "billion laughs" spec: a few lines, 10**9 values once its YAML aliases expand."""
    lines = ["l0: &l0 [%s]" % ", ".join(["lol"] * 10)]
    for level in range(1, 9):
        lines.append("l%d: &l%d [%s]" % (level, level, ", ".join(["*l%d" % (level - 1)] * 10)))
    lines += ["checks:", "  - {name: laughs, severity: *l8, disk: {path: /, min_free: 1}}"]
    return "\n".join(lines) + "\n"


def hostile_specs(directory: Path) -> dict[str, Path]:
    """Spec files that must be refused as spec errors, never crash or exhaust a reader."""
    files = {
        "bomb.yml": alias_bomb().encode(),
        "latin1.yml": "checks:\n  - name: café\n    env: {name: HOME}\n".encode("latin-1"),
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "deep.yml": b"checks: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "nested.json": b'{"checks": ' + b"[" * 500 + b"]" * 500 + b"}",
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in files}


def memory_capped(argv: list[str]) -> list[str]:
    """argv with its address space capped at 4 GiB: should a reader of hostile input ever
    expand it again, it fails with MemoryError instead of taking the machine's memory."""
    return ["prlimit", "--as=%d" % (4 << 30), "--", *argv]


@contextmanager
def trickling_upstream() -> Iterator[int]:
    """A loopback HTTP server that accepts and sends its status line one byte every 0.1 s,
    never finishing it: each read succeeds within any socket timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(sock: socket.socket) -> None:
        with sock:
            while not stop.wait(0.1):
                try:
                    sock.sendall(b"H")
                except OSError:
                    return

    def accept() -> None:
        while True:
            try:
                sock, _address = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in systemctl (tests/systemctl.py) first on PATH."""
    from systemctl import install

    program = install(tmp_path / "bin")
    monkeypatch.setenv("PATH", "%s:%s" % (program.parent, "/usr/bin:/bin"))
    return program


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates made with openssl (tests/pki.py), made once."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    from pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))
