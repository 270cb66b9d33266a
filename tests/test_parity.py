"""The two front ends, held to one behaviour: the same rolling deploy through
``ansible-playbook smokegate.core.rolling_deploy`` and ``fab deploy`` leaves the same hosts
and says the same things, and what one leaves the other can finish.

Deploys run on the lab's SSH hosts with one spec and one artifact for both front ends (the
release's bin/restart writes the status the spec reads), each front end from empty hosts.
"""

from __future__ import annotations

import inspect
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from fleet import LabFleet

from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot
from smokegate.engine import protocol

pytestmark = pytest.mark.lab
FRONT_ENDS = ("ansible", "fab")
# Changes every run: times, and the lock holder, which names the run.
VOLATILE = {"at", "created_at", "activated_at", "failed_at", "adopted_at"}


def deploy(fleet: LabFleet, front_end: str, release: str, healthy_on: list[str], **options: Any):
    """One rolling deploy of ``release`` (healthy on ``healthy_on``) through ``front_end``."""
    artifact = str(fleet.artifact(release, healthy_on))
    serial = options.get("serial", [1, "50%", "100%"])
    if front_end == "fab":
        flags = ["--serial", ",".join(map(str, serial))]
        if "scope" in options:
            flags += ["--rollback-scope", options["scope"]]
        if "restart_timeout" in options:
            flags += ["--restart-timeout", str(options["restart_timeout"])]
        return fleet.fab(
            "deploy",
            "--artifact",
            artifact,
            "--root",
            "/srv/app",
            "--checks",
            str(fleet.fab_spec_file),
            "--release",
            release,
            "--restart",
            options.get("restart", "bin/restart"),
            *flags,
        )
    extra = {
        "smokegate_release": release,
        "smokegate_artifact": artifact,
        "smokegate_checks_file": str(fleet.fab_spec_file),
        "smokegate_restart_command": options.get("restart", "bin/restart"),
        "smokegate_serial": serial,
        "smokegate_rollback_scope": options.get("scope", "all"),
    }
    if "restart_timeout" in options:
        extra["smokegate_restart_timeout"] = options["restart_timeout"]
    return fleet.playbook("rolling_deploy", **extra)


def summary(front_end: str, output: str) -> list[str]:
    """The summary lines of a halted deploy, without the recovery command (front-end specific)."""
    if front_end == "fab":
        start = output.rindex("smokegate: release ")
        lines = [line for line in output[start:].splitlines() if line.strip()]
        lines = [line for line in lines if line.startswith(("smokegate: release", "  "))]
    else:
        fatal = [
            json.loads(line.split("=> ", 1)[1])["msg"]
            for line in output.splitlines()
            if line.startswith("fatal: [") and '"msg": ["smokegate: release' in line
        ]
        assert len(fatal) == 1, output
        lines = fatal[0]
    return [line.rstrip() for line in lines if not line.startswith("  when ")]


def ledger(fleet: LabFleet, host: str) -> dict[str, Any]:
    def stable(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: stable(item) for key, item in value.items() if key not in VOLATILE}
        if isinstance(value, list):
            return [stable(item) for item in value]
        return value

    return stable(fleet.ledger(host))


def state_of(fleet: LabFleet) -> dict[str, Any]:
    return {
        host: {
            "current": fleet.current(host),
            "ledger": ledger(fleet, host),
            "locked": fleet.locked(host),
            "left": sorted(os.listdir(fleet.root(host) / ".smokegate")),
        }
        for host in fleet.hosts
    }


def wipe(fleet: LabFleet) -> None:
    for host in fleet.hosts:
        subprocess.run(["rm", "-rf", str(fleet.root(host))], check=True)


SCENARIOS = {
    # v1 goes out; v2 fails on the last host of the last batch: every host goes back.
    "last batch fails": dict(healthy_on=["web1", "web2", "web3"]),
    # v2 fails on the canary: only the canary changed, the rest are untouched.
    "canary fails": dict(healthy_on=["web2", "web3", "web4"]),
    # Only the failed host goes back; the hosts that passed keep v2.
    "rollback scope failed": dict(healthy_on=["web1", "web2", "web4"], scope="failed"),
    # A restart that hangs is killed at its timeout, the same on both.
    "restart hangs": dict(healthy_on=None, restart="sleep 30", restart_timeout=1, serial=[2]),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_same_deploy_through_both_front_ends_leaves_the_same_hosts_and_summary(
    lab_fleet: LabFleet, scenario: str
):
    options = dict(SCENARIOS[scenario])
    healthy_on = options.pop("healthy_on") or lab_fleet.hosts
    seen: dict[str, Any] = {}
    for front_end in FRONT_ENDS:
        wipe(lab_fleet)
        first = deploy(lab_fleet, front_end, "v1", lab_fleet.hosts)
        assert first.returncode == 0, first.output
        second = deploy(lab_fleet, front_end, "v2", healthy_on, **options)
        assert second.returncode != 0, second.output
        seen[front_end] = {
            "summary": summary(front_end, second.output),
            "hosts": state_of(lab_fleet),
        }
    assert seen["ansible"]["summary"] == seen["fab"]["summary"]
    assert seen["ansible"]["hosts"] == seen["fab"]["hosts"]
    for host, state in seen["fab"]["hosts"].items():
        assert not state["locked"], host
        assert not [name for name in state["left"] if protocol.is_upload(name)], host


@pytest.mark.parametrize("finisher", FRONT_ENDS)
def test_what_one_front_end_leaves_the_other_finishes(lab_fleet: LabFleet, finisher: str):
    # A deploy that lost web1 after its upload: the upload, the switch and the lock remain.
    assert deploy(lab_fleet, "fab", "v1", lab_fleet.hosts).returncode == 0
    root = lab_fleet.root("web1")
    host = DeployRoot(str(root))
    host.lock("v2", holder="someone@ci run 1")
    source = lab_fleet.dir / "v2"
    source.mkdir()
    host.create("v2", src=str(source))
    host.activate("v2")
    left = Path(protocol.upload_path(str(root / ".smokegate"), "v2"))
    left.write_bytes(b"an upload its deploy never unpacked")
    if finisher == "fab":
        run = lab_fleet.fab("rollback", "--root", "/srv/app", "--release", "v2", hosts=["web1"])
    else:
        run = lab_fleet.playbook("rollback", "--limit", "web1", smokegate_rollback_release="v2")
    assert run.returncode == 0, run.output
    assert lab_fleet.current("web1") == "v1" and lab_fleet.state("web1", "v2") == "failed"
    assert not left.exists() and not lab_fleet.locked("web1")


def test_the_defaults_are_the_protocols_everywhere():
    roles = REPO / "roles"
    specs = {
        role: yaml.safe_load((roles / role / "meta" / "argument_specs.yml").read_text())[
            "argument_specs"
        ]["main"]["options"]
        for role in ("deploy", "rollback")
    }
    assert specs["deploy"]["smokegate_restart_timeout"]["default"] == protocol.RESTART_TIMEOUT
    assert specs["rollback"]["smokegate_restart_timeout"]["default"] == protocol.RESTART_TIMEOUT
    assert specs["deploy"]["smokegate_keep_releases"]["default"] == protocol.KEEP_RELEASES
    assert specs["deploy"]["smokegate_max_unpacked"]["default"] == protocol.MAX_UNPACKED
    assert specs["rollback"]["smokegate_rollback_reason"]["default"] == protocol.BY_HAND
    defaults = (roles / "deploy" / "defaults" / "main.yml").read_text()
    assert "smokegate_restart_timeout | default(%g)" % protocol.RESTART_TIMEOUT in defaults
    assert "smokegate_max_unpacked | default('%s')" % protocol.MAX_UNPACKED in defaults
    playbook = (REPO / "playbooks" / "rolling_deploy.yml").read_text()
    assert "fmt='%s'" % protocol.RELEASE_ID_FORMAT in playbook
    assert "smokegate_serial | default(%s)" % [1, "50%", "100%"] in playbook
    assert list(protocol.SERIAL) == [1, "50%", "100%"]
    assert "smokegate_keep_releases | default(%d)" % protocol.KEEP_RELEASES in playbook
    assert protocol.DEPLOY_FAILED == "failed the smoke gate of its rolling deploy"
    assert protocol.DEPLOY_FAILED in playbook

    from smokegate.fabric import tasks

    fab_defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(tasks.deploy.body).parameters.items()
    }
    assert fab_defaults["keep"] == protocol.KEEP_RELEASES
    assert fab_defaults["restart_timeout"] == protocol.RESTART_TIMEOUT
    assert fab_defaults["serial"] == "1,50%,100%"
    assert fab_defaults["max_unpacked"] == protocol.MAX_UNPACKED


def in_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with its stdout on a pseudo-terminal; its exit status and what it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        argv, stdout=follower, stderr=subprocess.STDOUT, env=env, cwd=REPO, close_fds=True
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("environment", "coloured"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False)],
    ids=["a terminal", "NO_COLOR", "TERM=dumb"],
)
def test_both_front_ends_colour_by_the_same_rule(
    lab_fleet: LabFleet, environment: dict[str, str], coloured: bool
):
    env = {name: value for name, value in os.environ.items() if name != "NO_COLOR"}
    env.update({"TERM": "xterm", **environment})
    spec = str(lab_fleet.fab_spec_file)
    smokegate = [str(Path(sys.executable).with_name("smokegate")), "check", "-f", spec]
    fab = [
        str(Path(sys.executable).with_name("fab")),
        "--search-root",
        str(REPO),
        "-S",
        str(lab_fleet.lab_dir / "ssh_config"),
        "-H",
        "web1",
        "smoke",
        "--checks",
        spec,
    ]
    for argv in (smokegate, fab):
        _status, output = in_a_terminal(argv, env)
        assert ("\x1b[" in output) == coloured, (argv[0], environment, output)
        piped = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        assert "\x1b[" not in piped.stdout  # not a terminal: never


def test_both_front_ends_suggest_the_same_name_for_an_unknown_only(lab_fleet: LabFleet):
    spec = str(lab_fleet.fab_spec_file)
    checked = subprocess.run(
        [
            str(Path(sys.executable).with_name("smokegate")),
            "check",
            "-f",
            spec,
            "--only",
            "root spaec",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    smoked = lab_fleet.fab("smoke", "--checks", spec, "--only", "root spaec", hosts=["web1"])
    expected = "--only: no check named 'root spaec' in %s; did you mean 'root space'?" % spec
    assert checked.returncode == smoked.returncode == 2
    assert expected in checked.stderr and expected in smoked.stderr
    assert re.search(r"\bweb1\b", smoked.stderr) is None  # refused before any host was contacted
