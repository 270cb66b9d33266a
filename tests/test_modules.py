"""The modules in-process, with ansible-core's own module-args helper; and their docs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from conftest import REPO, leaked_secrets, secret_checks

from ansible_collections.smokegate.core.plugins.module_utils.argspec import (
    check_options,
    smoke_argument_spec,
)
from ansible_collections.smokegate.core.plugins.module_utils.checks import CHECK_TYPES
from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot
from ansible_collections.smokegate.core.plugins.module_utils.schema import COMMON_FIELDS
from ansible_collections.smokegate.core.plugins.modules import release, release_info, smoke

MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))


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


def test_smoke_module_hides_header_values_and_url_credentials(
    capsys, tmp_path: Path, closed_port: int
):
    checks = [
        check
        for check in secret_checks(tmp_path, "http://127.0.0.1:%d" % closed_port, closed_port)
        if "http" in check
    ]
    result = run_module(smoke, {"checks": checks}, capsys)
    assert result["failed"] is True
    assert set(result["failed_checks"]) == {check["name"] for check in checks}
    # The invocation holds the URLs, their credentials masked.
    urls = [check["http"]["url"] for check in result["invocation"]["module_args"]["checks"]]
    assert "http://********@127.0.0.1:%d/basic" % closed_port in urls
    assert leaked_secrets(json.dumps(result)) == []


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


def test_release_info_reports_the_root_and_changes_nothing(capsys, tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    root = DeployRoot(str(tmp_path / "app"))
    for release_id in ("v1", "v2"):
        root.create(release_id, src=str(source))
        root.activate(release_id)
    root.lock("v3", "carol@bastion", pid=7)
    ledger_before = Path(root.ledger_path).read_bytes()
    result = run_module(release_info, {"root": root.root, "_ansible_check_mode": True}, capsys)
    assert result.pop("changed") is False
    result.pop("invocation")
    assert result == root.info()
    assert (result["current"], result["rollback_target"]) == ("v2", "v1")
    assert [entry["id"] for entry in result["releases"]] == ["v1", "v2"]
    assert result["lock"]["holder"] == "carol@bastion"
    assert Path(root.ledger_path).read_bytes() == ledger_before


def test_release_info_reads_a_missing_root_as_empty(capsys, tmp_path: Path):
    result = run_module(release_info, {"root": str(tmp_path / "nothing")}, capsys)
    assert result["changed"] is False
    assert (result["current"], result["rollback_target"], result["releases"], result["lock"]) == (
        None,
        None,
        [],
        None,
    )
    assert not (tmp_path / "nothing").exists()


def test_release_module_needs_a_state_and_only_reads_through_release_info(capsys, tmp_path: Path):
    result = run_module(release, {"root": str(tmp_path)}, capsys)
    assert result["failed"] is True
    assert result["msg"] == "missing required arguments: state"
    result = run_module(release, {"root": str(tmp_path), "state": "info"}, capsys)
    assert result["failed"] is True
    assert "value of state must be one of" in result["msg"]


def test_module_docs_match_the_argument_specs():
    documented = yaml.safe_load(smoke.DOCUMENTATION)["options"]
    spec = smoke_argument_spec()
    assert set(documented) == set(spec)
    assert documented["checks"]["suboptions"] == check_options(with_docs=True)


class _Captured(Exception):
    pass


def argument_spec_of(module) -> dict:
    """The argument_spec a module's main() builds, without running the module."""

    def capture(**kwargs):
        raise _Captured(kwargs["argument_spec"])

    with mock.patch.object(module, "AnsibleModule", capture), pytest.raises(_Captured) as caught:
        module.main()
    return caught.value.args[0]


def option_tree(options: dict) -> dict:
    """Option names, and under each the names of its nested options, all the way down."""
    return {name: option_tree(option.get("options") or {}) for name, option in options.items()}


def shown_options(module: str) -> dict:
    """The option tree that ansible-doc shows for the collection installed in this
    interpreter's environment: each option is a line "- name" ("= name" when required),
    indented under the option it belongs to."""
    text = subprocess.run(
        [Path(sys.executable).with_name("ansible-doc"), "smokegate.core." + module],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    ).stdout
    options = text.split("\nOPTIONS ", 1)[1]
    section = re.split(r"^[A-Z][A-Z ]*:$", options, maxsplit=1, flags=re.MULTILINE)[0]
    tree: dict = {}
    parents = [(-1, tree)]
    for indent, name in re.findall(r"^( *)[-=] (\w+)(?:\s|$)", section, re.MULTILINE):
        while parents[-1][0] >= len(indent):
            parents.pop()
        parents[-1][1][name] = {}
        parents.append((len(indent), parents[-1][1][name]))
    return tree


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_of_the_installed_collection_shows_every_option(name: str):
    import importlib

    module = importlib.import_module("ansible_collections.smokegate.core.plugins.modules." + name)
    assert shown_options(name) == option_tree(argument_spec_of(module))


def test_argument_spec_and_ansible_doc_show_exactly_the_registered_check_types_and_fields():
    registered: dict = {name: {} for name in COMMON_FIELDS}
    for name, check_type in CHECK_TYPES.items():
        registered[name] = {field: {} for field in check_type.fields}
    assert option_tree(smoke_argument_spec()["checks"]["options"]) == registered
    assert shown_options("smoke")["checks"] == registered


@pytest.mark.parametrize("role", ["smoke", "deploy", "rollback"])
def test_role_documents_every_public_variable_it_reads(role: str):
    """ansible-doc shows each role's entry points, and every smokegate_* variable the role
    reads (its defaults map them to the role's own names) is documented with a description."""
    completed = subprocess.run(
        [
            Path(sys.executable).with_name("ansible-doc"),
            "-t",
            "role",
            "--json",
            "smokegate.core.%s" % role,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    entry_points = json.loads(completed.stdout)["smokegate.core.%s" % role]["entry_points"]
    documented = {
        name: option
        for entry in entry_points.values()
        for name, option in entry.get("options", {}).items()
    }
    defaults = (REPO / "roles" / role / "defaults" / "main.yml").read_text()
    read = set(re.findall(r"\bsmokegate_\w+", defaults))
    assert read, defaults
    assert read <= set(documented), read - set(documented)
    assert all(option.get("description") for option in documented.values())
