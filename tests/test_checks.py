"""Every check type, passing and failing, against real system state on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import SECRET_HEADER
from fake_probe import FakeProbe

from ansible_collections.smokegate.core.plugins.module_utils.checks import CHECK_TYPES, Attempt
from smokegate.engine import runner, spec


def run(*checks: dict, **kwargs) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)), **kwargs)
    return {result["name"]: result for result in report["results"]}


def status_and_message(result: dict) -> tuple[str, str]:
    return result["status"], result["message"]


# --- any check, handed a fake probe -------------------------------------------------------
def compare(type_name: str, fields: dict, check_mode: bool = False) -> tuple[str, str]:
    """A check's outcome on the fake probe's machine: what the check read, it read from it."""
    [check] = spec.parse_spec([{"name": "fake", type_name: fields}])
    comparer = CHECK_TYPES[type_name].compare
    outcome = comparer(check.params, FakeProbe(), Attempt.until(5, check_mode))
    return outcome.status, outcome.message


EXAMPLE_MESSAGES = {
    "mount": "/srv/uploads is mounted (nfs4 from fs1:/uploads, writable)",
    "disk": "8 GiB (12.5%) free on /srv",
    "env": "DATABASE_URL is set in /srv/app/shared/app.env and matches ^postgres://",
    "binary": "ffmpeg 6.1.1-3 satisfies >=6.0,<9 (/usr/bin/ffmpeg)",
    "dns": "db.internal resolves to 10.0.0.5, 10.0.0.6",
    "tcp": "db.internal:5432 accepts connections (1.2 ms)",
    "http": "GET http://127.0.0.1:8000/healthz returned 200 and the body matches ok",
    "prometheus": '0.002 for {instance="localhost"}, want <= 0.01',
    "command": "python3 smoke.py exited 0 and matches all checks passed",
    "service": "nginx.service is active (running) for 60 min, enabled, 1 restarts",
    "process": "2 processes named gunicorn of user app (pids 101, 102)",
    "port": "tcp port 5432 is listened on at 127.0.0.1:5432",
    "file": "/srv/app/shared/config.json is a file, 0640 app:app, 11 B, modified 60 s ago,"
    " parses as json",
    "tls": "the certificate of example.internal:443: CN=example.internal, issued by CN=Example"
    " CA, 60 days left (until 2026-03-02), verified for example.internal",
}


@pytest.mark.parametrize("type_name", list(CHECK_TYPES))
def test_each_types_example_passes_on_a_fake_probe_that_says_so(type_name: str):
    assert compare(type_name, CHECK_TYPES[type_name].example) == (
        "pass",
        EXAMPLE_MESSAGES[type_name],
    )


def test_checks_fail_on_what_a_fake_probe_read_not_on_this_machine():
    assert compare("mount", {"path": "/srv/gone"}) == ("fail", "/srv/gone does not exist")
    assert compare("mount", {"path": "/srv"}) == (
        "fail",
        "/srv is not a mount point (it is on /, ext4)",
    )
    assert compare("mount", {"path": "/", "writable": True}) == (
        "fail",
        "/: cannot write to /: Permission denied",
    )
    assert compare("mount", {"path": "/", "writable": True}, check_mode=True) == (
        "pass",
        "/ is mounted (ext4 from /dev/vda1, write test skipped in check mode)",
    )
    assert compare("disk", {"path": "/srv/gone", "min_free": 1}) == (
        "fail",
        "/srv/gone does not exist",
    )
    assert compare("disk", {"path": "/srv", "min_free": "9GiB"}) == (
        "fail",
        "8 GiB free on /srv, need 9 GiB",
    )
    assert compare("tcp", {"host": "db.internal", "port": 5433}) == (
        "fail",
        "connection to db.internal:5433 refused",
    )


# --- mount ------------------------------------------------------------------------------
def test_mount_root_and_proc_pass_with_type_and_options():
    results = run(
        {"name": "root", "mount": {"path": "/", "options": ["rw"]}},
        {"name": "proc", "mount": {"path": "/proc", "fstype": "proc"}},
    )
    assert results["root"]["status"] == "pass", results["root"]
    assert results["proc"]["status"] == "pass", results["proc"]
    assert "/proc is mounted (proc" in results["proc"]["message"]


def test_mount_wrong_type_missing_option_and_not_a_mount(tmp_path: Path):
    results = run(
        {"name": "proc as ext4", "mount": {"path": "/proc", "fstype": ["ext4", "xfs"]}},
        {"name": "proc option", "mount": {"path": "/proc", "options": ["no-such-option"]}},
        {"name": "plain dir", "mount": {"path": str(tmp_path)}},
        {"name": "missing", "mount": {"path": str(tmp_path / "nope")}},
    )
    assert status_and_message(results["proc as ext4"]) == (
        "fail",
        "/proc: fstype is proc, expected ext4 or xfs",
    )
    assert results["proc option"]["status"] == "fail"
    assert "options lack no-such-option (have " in results["proc option"]["message"]
    assert results["plain dir"]["status"] == "fail"
    assert results["plain dir"]["message"].startswith(
        "%s is not a mount point (it is on " % tmp_path
    )
    assert status_and_message(results["missing"]) == (
        "fail",
        "%s does not exist" % (tmp_path / "nope"),
    )


def test_mount_writable_creates_and_removes_a_file_and_check_mode_skips_it():
    before = set(os.listdir("/dev/shm"))
    results = run({"name": "shm", "mount": {"path": "/dev/shm", "writable": True}})
    assert results["shm"]["status"] == "pass"
    assert results["shm"]["message"].endswith(", writable)")
    assert set(os.listdir("/dev/shm")) == before  # the probe file is gone

    results = run({"name": "shm", "mount": {"path": "/dev/shm", "writable": True}}, check_mode=True)
    assert results["shm"]["status"] == "pass"
    assert "write test skipped in check mode" in results["shm"]["message"]


def test_mount_not_writable_fails_with_the_reason():
    # /proc is mounted, but nobody can create a file in it, not even root.
    results = run({"name": "proc", "mount": {"path": "/proc", "writable": True}})
    assert results["proc"]["status"] == "fail"
    assert "cannot write to /proc" in results["proc"]["message"]


# --- disk -------------------------------------------------------------------------------
def test_disk_thresholds_both_ways():
    usage = os.statvfs("/")
    free = usage.f_bavail * usage.f_frsize
    results = run(
        {"name": "enough", "disk": {"path": "/", "min_free": "1M", "min_free_percent": 0.1}},
        {"name": "too much", "disk": {"path": "/", "min_free": free * 4}},
        {"name": "percent", "disk": {"path": "/", "min_free_percent": 100}},
        {"name": "inodes ok", "disk": {"path": "/", "min_free_inodes_percent": 0.01}},
    )
    assert results["enough"]["status"] == "pass"
    assert results["too much"]["status"] == "fail"
    assert " free on /, need " in results["too much"]["message"]
    assert "GiB" in results["too much"]["message"] or "TiB" in results["too much"]["message"]
    assert results["percent"]["status"] == "fail"
    assert results["percent"]["message"].endswith("free on /, need 100%")
    assert results["inodes ok"]["status"] == "pass"
    assert "inodes free" in results["inodes ok"]["message"]


def test_disk_missing_path_fails(tmp_path: Path):
    results = run({"name": "gone", "disk": {"path": str(tmp_path / "gone"), "min_free": 1}})
    assert status_and_message(results["gone"]) == (
        "fail",
        "%s does not exist" % (tmp_path / "gone"),
    )


def test_disk_inodes_on_a_filesystem_without_inode_counts_is_an_error():
    results = run({"name": "proc inodes", "disk": {"path": "/proc", "min_free_inodes_percent": 1}})
    assert results["proc inodes"]["status"] == "error"
    assert "does not report inode counts" in results["proc inodes"]["message"]


# --- env --------------------------------------------------------------------------------
ENV_FILE = """\
# comment line
; systemd-style comment
export DATABASE_URL="postgres://app:pw-v4lue@db/app"
QUOTED='single # not a comment'
PLAIN=value # trailing comment
EMPTY=
SPACED = spaced value
MULTI="line one
line two"
not a valid line
"""


def test_env_from_a_real_env_file(tmp_path: Path):
    env_file = tmp_path / "app.env"
    env_file.write_text(ENV_FILE)
    path = str(env_file)
    results = run(
        {"name": "db", "env": {"name": "DATABASE_URL", "file": path, "pattern": "^postgres://"}},
        {"name": "db mysql", "env": {"name": "DATABASE_URL", "file": path, "pattern": "^mysql://"}},
        {
            "name": "quoted",
            "env": {"name": "QUOTED", "file": path, "pattern": "^single # not a comment$"},
        },
        {"name": "plain", "env": {"name": "PLAIN", "file": path, "pattern": "^value$"}},
        {"name": "spaced", "env": {"name": "SPACED", "file": path, "pattern": "^spaced value$"}},
        {
            "name": "multi",
            "env": {"name": "MULTI", "file": path, "pattern": "^line one\nline two$"},
        },
        {"name": "empty", "env": {"name": "EMPTY", "file": path}},
        {"name": "empty allowed", "env": {"name": "EMPTY", "file": path, "allow_empty": True}},
        {"name": "missing key", "env": {"name": "REDIS_URL", "file": path}},
        {"name": "missing file", "env": {"name": "X", "file": str(tmp_path / "none.env")}},
    )
    assert results["db"]["status"] == "pass"
    assert status_and_message(results["db mysql"]) == (
        "fail",
        "DATABASE_URL in %s does not match ^mysql:// (value hidden)" % path,
    )
    for name in ("quoted", "plain", "spaced", "multi", "empty allowed"):
        assert results[name]["status"] == "pass", results[name]
    assert status_and_message(results["empty"]) == ("fail", "EMPTY is set but empty in %s" % path)
    assert status_and_message(results["missing key"]) == (
        "fail",
        "REDIS_URL is not set in %s" % path,
    )
    assert results["missing file"]["status"] == "fail"
    assert "does not exist" in results["missing file"]["message"]
    assert not any("pw-v4lue" in result["message"] for result in results.values())


def test_env_from_the_process_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMOKEGATE_TEST_TOKEN", "tok-123")
    results = run(
        {"name": "set", "env": {"name": "SMOKEGATE_TEST_TOKEN", "pattern": r"^tok-\d+$"}},
        {"name": "unset", "env": {"name": "SMOKEGATE_TEST_UNSET"}},
    )
    assert status_and_message(results["set"]) == (
        "pass",
        r"SMOKEGATE_TEST_TOKEN is set in the environment and matches ^tok-\d+$",
    )
    assert status_and_message(results["unset"]) == (
        "fail",
        "SMOKEGATE_TEST_UNSET is not set in the environment",
    )


def test_unreadable_env_file_is_an_error(tmp_path: Path):
    results = run({"name": "dir as file", "env": {"name": "X", "file": str(tmp_path)}})
    assert results["dir as file"]["status"] == "error"
    assert "cannot read env file" in results["dir as file"]["message"]


# --- binary -----------------------------------------------------------------------------
def test_binary_version_specifiers_both_ways():
    running = "%d.%d.%d" % sys.version_info[:3]
    major_minor = "%d.%d" % sys.version_info[:2]
    python = sys.executable
    results = run(
        {"name": "in range", "binary": {"name": python, "version": ">=3.8,<4"}},
        {
            "name": "too old",
            "binary": {"name": python, "version": ">=%d" % (sys.version_info[0] + 1)},
        },
        {"name": "exact", "binary": {"name": python, "version": "==" + running}},
        {"name": "not this one", "binary": {"name": python, "version": "!=%s.*" % major_minor}},
        {
            "name": "regex",
            "binary": {
                "name": python,
                "args": ["-c", "print('build v9.2p1 ok')"],
                "regex": r"v(\S+)",
                "version": ">9.2,<9.3",
            },
        },
        {"name": "on path", "binary": {"name": "sh"}},
    )
    assert status_and_message(results["in range"])[0] == "pass"
    assert results["in range"]["message"].startswith("%s %s satisfies >=3.8,<4" % (python, running))
    assert results["too old"]["status"] == "fail"
    assert "does not satisfy" in results["too old"]["message"]
    assert results["exact"]["status"] == "pass"
    assert results["not this one"]["status"] == "fail"
    assert results["regex"]["status"] == "pass", results["regex"]
    assert "9.2p1" in results["regex"]["message"]
    assert results["on path"]["status"] == "pass"


def test_binary_reads_stderr_too_like_ssh_dash_v():
    script = "import sys; sys.stderr.write('OpenSSH_9.2p1 Debian-2, OpenSSL 3.0\\n')"
    results = run(
        {
            "name": "stderr",
            "binary": {"name": sys.executable, "args": ["-c", script], "version": ">=9.2"},
        }
    )
    assert results["stderr"]["status"] == "pass", results["stderr"]


def test_binary_missing_and_no_version_in_output(tmp_path: Path):
    results = run(
        {"name": "missing", "binary": {"name": "smokegate-no-such-tool", "version": ">=1"}},
        {"name": "missing path", "binary": {"name": str(tmp_path / "tool")}},
        {
            "name": "no version",
            "binary": {"name": sys.executable, "args": ["-c", "print('hello')"], "version": ">=1"},
        },
    )
    assert status_and_message(results["missing"]) == (
        "fail",
        "smokegate-no-such-tool not found on PATH",
    )
    assert results["missing path"]["status"] == "fail"
    assert results["no version"]["status"] == "error"
    assert "no version found in the output" in results["no version"]["message"]


def test_binary_that_hangs_is_a_timeout_not_a_failure():
    results = run(
        {
            "name": "hangs",
            "binary": {"name": "/bin/sleep", "args": ["5"], "version": ">=1"},
            "timeout": 0.5,
        }
    )
    assert status_and_message(results["hangs"]) == ("timeout", "no result within 0.5 s")


def test_binary_never_runs_through_a_shell(tmp_path: Path):
    marker = tmp_path / "pwned"
    results = run(
        {
            "name": "injection",
            "binary": {
                "name": sys.executable,
                "args": ["-c", "print('1.0')", "; touch %s" % marker],
                "version": ">=1",
            },
        }
    )
    assert results["injection"]["status"] == "pass"
    assert not marker.exists()


# --- dns --------------------------------------------------------------------------------
def test_dns_localhost_passes_and_invalid_fails():
    results = run(
        {
            "name": "localhost",
            "dns": {"name": "localhost", "addresses": ["127.0.0.1"], "family": "ipv4"},
        },
        {
            "name": "wrong address",
            "dns": {"name": "localhost", "addresses": ["10.9.9.9"], "family": "ipv4"},
        },
        {"name": "invalid", "dns": {"name": "no-such-host.invalid"}},
    )
    assert status_and_message(results["localhost"]) == ("pass", "localhost resolves to 127.0.0.1")
    assert status_and_message(results["wrong address"]) == (
        "fail",
        "localhost resolves to 127.0.0.1; expected 10.9.9.9 among them",
    )
    assert results["invalid"]["status"] == "fail"
    assert results["invalid"]["message"].startswith("no-such-host.invalid does not resolve")


# --- tcp --------------------------------------------------------------------------------
def test_tcp_listening_and_closed_ports(listening_port: int, closed_port: int):
    results = run(
        {"name": "open", "tcp": {"host": "127.0.0.1", "port": listening_port}},
        {"name": "closed", "tcp": {"host": "127.0.0.1", "port": closed_port}},
    )
    assert results["open"]["status"] == "pass"
    assert "127.0.0.1:%d accepts connections" % listening_port in results["open"]["message"]
    assert status_and_message(results["closed"]) == (
        "fail",
        "connection to 127.0.0.1:%d refused" % closed_port,
    )


# --- http -------------------------------------------------------------------------------
def test_http_status_body_and_redirects(http_server: str):
    results = run(
        {"name": "health", "http": {"url": http_server + "/healthz", "body": "status: ok"}},
        {"name": "broken", "http": {"url": http_server + "/broken"}},
        {"name": "broken accepted", "http": {"url": http_server + "/broken", "status": [200, 500]}},
        {"name": "body mismatch", "http": {"url": http_server + "/healthz", "body": "^healthy$"}},
        {"name": "no follow", "http": {"url": http_server + "/moved"}},
        {
            "name": "follow",
            "http": {"url": http_server + "/moved", "follow_redirects": True, "body": "ok"},
        },
    )
    assert status_and_message(results["health"]) == (
        "pass",
        "GET %s/healthz returned 200 and the body matches status: ok" % http_server,
    )
    assert status_and_message(results["broken"]) == (
        "fail",
        "GET %s/broken returned 500, expected 200" % http_server,
    )
    assert results["broken accepted"]["status"] == "pass"
    assert results["body mismatch"]["status"] == "fail"
    assert "does not match ^healthy$" in results["body mismatch"]["message"]
    assert results["no follow"]["status"] == "fail"
    assert "returned 302" in results["no follow"]["message"]
    assert results["follow"]["status"] == "pass"


def test_http_headers_are_sent_and_never_shown(http_server: str):
    results = run(
        {
            "name": "with token",
            "http": {"url": http_server + "/private", "headers": {"X-Token": SECRET_HEADER}},
        },
        {
            "name": "wrong token",
            "http": {
                "url": http_server + "/private",
                "headers": {"X-Token": "nope-" + SECRET_HEADER},
            },
        },
    )
    assert results["with token"]["status"] == "pass"
    assert results["wrong token"]["status"] == "fail"
    assert "returned 403" in results["wrong token"]["message"]
    assert all(SECRET_HEADER not in result["message"] for result in results.values())


def test_http_connection_refused_and_credentials_in_url_are_redacted(closed_port: int):
    url = "http://deploy:pa55w0rd@127.0.0.1:%d/healthz" % closed_port
    results = run({"name": "down", "http": {"url": url}})
    assert results["down"]["status"] == "fail"
    assert "connection refused" in results["down"]["message"]
    assert "pa55w0rd" not in results["down"]["message"]
    assert "***@127.0.0.1:%d" % closed_port in results["down"]["message"]
