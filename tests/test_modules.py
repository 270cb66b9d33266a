"""The modules in-process, with ansible-core's own module-args helper; and their docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from conftest import REPO

from ansible_collections.smokegate.core.plugins.module_utils.argspec import (
    check_options,
    smoke_argument_spec,
)
from ansible_collections.smokegate.core.plugins.modules import release, smoke


def run_module(module, args: dict, capsys: pytest.CaptureFixture) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_smoke_module_reports_and_fails_naming_the_check(capsys, closed_port: int):
    result = run_module(
        smoke,
        {
            "checks": [
                {"name": "root", "disk": {"path": "/", "min_free": "1M"}},
                {"name": "db port", "tcp": {"host": "127.0.0.1", "port": str(closed_port)}},
            ]
        },
        capsys,
    )
    assert result["failed"] is True
    assert result["failed_checks"] == ["db port"]
    assert (
        result["msg"]
        == "smoke checks failed: db port: connection to 127.0.0.1:%d refused" % closed_port
    )
    assert result["smoke"]["summary"]["passed"] == 1


def test_smoke_module_fail_on_never_and_check_mode_skip_the_write_test(capsys, tmp_path: Path):
    result = run_module(
        smoke,
        {
            "checks": [{"name": "shm", "mount": {"path": "/dev/shm", "writable": True}}],
            "fail_on": "never",
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result.get("failed") is not True
    assert "write test skipped in check mode" in result["smoke"]["results"][0]["message"]


def test_smoke_module_hides_header_values(capsys, closed_port: int):
    secret = "module-hdr-secret-31"
    result = run_module(
        smoke,
        {
            "checks": [
                {
                    "name": "api",
                    "http": {
                        "url": "http://127.0.0.1:%d/" % closed_port,
                        "headers": {"X-Token": secret},
                    },
                }
            ]
        },
        capsys,
    )
    assert result["failed"] is True
    assert secret not in json.dumps(result)


def test_release_module_check_mode_changes_nothing_and_diff_shows_the_switch(
    capsys, tmp_path: Path
):
    source = tmp_path / "src"
    source.mkdir()
    root = tmp_path / "app"
    result = run_module(
        release,
        {"root": str(root), "release": "v1", "src": str(source), "state": "present"},
        capsys,
    )
    assert result["changed"] is True
    result = run_module(
        release,
        {
            "root": str(root),
            "release": "v1",
            "state": "active",
            "_ansible_check_mode": True,
            "_ansible_diff": True,
        },
        capsys,
    )
    assert result["changed"] is True
    assert result["diff"] == {
        "before": {"current": None, "lock": None},
        "after": {"current": "v1", "lock": None},
    }
    assert not (root / "current").exists()


def test_release_module_refuses_a_held_lock_with_the_holder(capsys, tmp_path: Path):
    args = {"root": str(tmp_path), "release": "r1", "holder": "carol@bastion", "state": "locked"}
    assert run_module(release, args, capsys)["changed"] is True
    result = run_module(release, dict(args, release="r2", holder="dave@laptop"), capsys)
    assert result["failed"] is True
    assert "held by carol@bastion" in result["msg"]
    assert result["lock"]["release"] == "r1"


def test_module_docs_match_the_argument_specs():
    documented = yaml.safe_load(smoke.DOCUMENTATION)["options"]
    spec = smoke_argument_spec()
    assert set(documented) == set(spec)
    assert documented["checks"]["suboptions"] == check_options(with_docs=True)
    release_docs = yaml.safe_load(release.DOCUMENTATION)["options"]
    assert set(release_docs) == {
        "root",
        "state",
        "release",
        "src",
        "archive",
        "shared",
        "to",
        "reason",
        "keep",
        "holder",
        "pid",
        "force",
    }


def test_generated_check_docs_are_up_to_date():
    import subprocess

    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sync-module-docs"), "--check"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
