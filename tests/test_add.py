"""`smokegate add`: every kind of check it writes passes when run right away, on real
things of this machine; the spec file keeps its comments and layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from pki import tls_server
from test_process_port_checks import server

HEAD = """\
# Smoke checks for the app: keep this comment.
budget: 5   # seconds
checks:
    # the disk first
    -   name: root space
        disk: {path: /, min_free: 1}   # a trailing comment
"""
TAIL = """
# after the checks: notes for whoever edits this
"""


def added_and_passing(
    spec: Path, *target: str, env: dict[str, str] | None = None, notes: dict | None = None
) -> str:
    """Add a check for ``target``; assert it passes when run right away; its name. What add
    noted on stderr goes into ``notes`` under that name."""
    added = run_cli("add", *target, "-f", str(spec), env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added to %s:\n  - name: " % spec)
    name = yaml.safe_load(added.stdout.split("\n", 1)[1])[0]["name"]
    if notes is not None:
        notes[name] = added.stderr
    checked = run_cli("check", "-f", str(spec), "--only", name, "--format", "json", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [result] = [item for item in json.loads(checked.stdout)["results"] if item["name"] == name]
    assert result["status"] == "pass", result
    return name


def test_every_add_writes_a_check_that_passes_right_away(
    tmp_path: Path,
    http_server: str,
    listening_port: int,
    systemctl: Path,
    pki: Path,
):
    spec = tmp_path / "smoke.yml"
    spec.write_text(HEAD + TAIL)
    config = tmp_path / "app.json"
    config.write_text('{"db": "postgres://db/app"}')
    (tmp_path / "current").symlink_to(config)
    env = {"PATH": os.environ["PATH"]}  # the stand-in systemctl comes first
    names: list[str] = []
    notes: dict[str, str] = {}
    with server(tmp_path, "sg-add-worker", "tcp", "127.0.0.1"), tls_server(pki, "valid") as tls:
        for target in (
            ("binary", "ls"),
            ("mount", "/proc"),
            ("disk", str(tmp_path)),
            ("service", "nginx"),
            ("port", str(listening_port)),
            ("process", "sg-add-worker"),
            ("file", str(config)),
            ("file", str(tmp_path / "current")),
            ("file", str(tmp_path / "not-yet")),
            ("tls", "127.0.0.1:%d" % tls),
            ("http", http_server + "/healthz"),
        ):
            names.append(added_and_passing(spec, *target, env=env, notes=notes))
        text = spec.read_text()
        assert text.startswith(HEAD) and text.endswith(TAIL)
        document = yaml.safe_load(text)
        assert document["budget"] == 5
        checks = {check["name"]: check for check in document["checks"]}
        assert list(checks) == ["root space", *names]
        whole = run_cli("check", "-f", str(spec), env=env)
        assert whole.returncode == 0, whole.stdout + whole.stderr
    assert checks["binary ls"]["binary"]["version"].startswith(">=")
    assert checks["mount /proc"]["mount"]["fstype"] == "proc"
    assert checks["service nginx"]["service"] == {
        "name": "nginx.service",
        "active": True,
        "enabled": True,
    }
    assert checks["file %s" % config]["file"] == {
        "path": str(config),
        "type": "file",
        "format": "json",
    }
    assert checks["file %s" % (tmp_path / "current")]["file"]["type"] == "symlink"
    assert checks["file %s" % (tmp_path / "not-yet")]["file"]["exists"] is False
    assert checks["tls 127.0.0.1:%d" % tls]["tls"]["verify"] is False  # a test CA: not trusted here
    assert notes["tls 127.0.0.1:%d" % tls].startswith(
        "smokegate: note: its certificate does not verify here (unable to get local issuer"
        " certificate): the check has verify: false"
    )
    assert notes["file %s" % (tmp_path / "not-yet")] == (
        "smokegate: note: %s does not exist now: the check says so\n" % (tmp_path / "not-yet")
    )
    assert notes["binary ls"] == ""
    assert checks["http %s/healthz" % http_server]["http"]["max_latency"] >= 0.1
    again = run_cli("add", "port", str(listening_port), "-f", str(spec))
    assert again.returncode == 0
    assert "name: port %d (2)" % listening_port in again.stdout


def test_add_refuses_what_is_not_true_here_and_writes_nothing(tmp_path: Path, closed_port: int):
    spec = tmp_path / "smoke.yml"
    spec.write_text(HEAD)
    for target, reason in (
        (("port", str(closed_port)), "nothing listens on tcp port %d now" % closed_port),
        (("process", "sg-never-started"), "no process named sg-never-started is running"),
        (("mount", str(tmp_path)), "%s is not a mount point (it is on " % tmp_path),
        (("binary", "sg-no-such-tool"), "sg-no-such-tool is not found on PATH"),
        (("tls", "127.0.0.1:%d" % closed_port), "cannot read the certificate of"),
        (
            ("http", "http://127.0.0.1:%d/" % closed_port),
            "GET http://127.0.0.1:%d/ failed" % closed_port,
        ),
    ):
        completed = run_cli("add", *target, "-f", str(spec))
        assert completed.returncode == 2, completed.stdout
        assert completed.stderr.startswith("smokegate: nothing added to %s: %s" % (spec, reason))
    assert spec.read_text() == HEAD


def test_add_to_json_a_bare_list_a_new_file_and_refusing_flow_style(tmp_path: Path):
    as_json = tmp_path / "smoke.json"
    as_json.write_text(
        json.dumps({"checks": [{"name": "root", "disk": {"path": "/", "min_free": 1}}]})
    )
    added_and_passing(as_json, "file", "/etc/hostname")
    assert [check["name"] for check in json.loads(as_json.read_text())["checks"]] == [
        "root",
        "file /etc/hostname",
    ]
    bare = tmp_path / "bare.yml"
    bare.write_text("- name: root  # first\n  disk: {path: /, min_free: 1}\n")
    added_and_passing(bare, "file", "/etc/hostname")
    assert bare.read_text().startswith(
        "- name: root  # first\n  disk: {path: /, min_free: 1}\n- name: file"
    )
    new = tmp_path / "new.yml"
    added_and_passing(new, "disk", "/")
    assert new.read_text().startswith("checks:\n  - name: disk /\n")
    linked = tmp_path / "linked.yml"
    linked.symlink_to(new)
    added_and_passing(linked, "file", "/etc/hostname")
    assert linked.is_symlink() and "name: file /etc/hostname" in new.read_text()
    flow = tmp_path / "flow.yml"
    flow.write_text("checks: [{name: root, disk: {path: /, min_free: 1}}]\n")
    completed = run_cli("add", "disk", "/", "-f", str(flow))
    assert completed.returncode == 2
    assert "written in flow style" in completed.stderr
    taken = run_cli("add", "disk", "/", "-f", str(new), "--name", "disk /")
    assert taken.returncode == 2 and "already has a check named 'disk /'" in taken.stderr


@pytest.mark.parametrize("broken", ["checks:\n  - name: [unclosed\n", "checks: 3\n"])
def test_add_to_a_broken_spec_changes_nothing(tmp_path: Path, broken: str):
    spec = tmp_path / "smoke.yml"
    spec.write_text(broken)
    completed = run_cli("add", "disk", "/", "-f", str(spec))
    assert completed.returncode == 2
    assert completed.stderr.startswith("smokegate: nothing added to %s: " % spec)
    assert spec.read_text() == broken
