"""smokegate.core.rolling_deploy and smokegate.core.rollback on local-connection hosts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from evil import FILTERLESS_SITE, Archive, attack, setuid_members
from fleet import Fleet

from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    counters = {}
    for host, rest in re.findall(r"^(web\d+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", rest)}
    return counters


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


def test_success_everywhere(fleet: Fleet):
    run = fleet.deploy("v1")
    assert run.returncode == 0, run.output
    assert "release v1 is live on web1, web2, web3" in run.output
    for host in fleet.hosts:
        assert fleet.current(host) == "v1"
        assert fleet.state(host, "v1") == "good"
        assert not fleet.locked(host)
        assert not list((fleet.root(host) / ".smokegate").glob("upload-*"))  # artifact cleaned up


def test_failure_in_the_last_batch_rolls_back_every_batch(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy("v2", healthy_on=["web1", "web2"])  # batches: web1 | web2 | web3
    assert run.returncode != 0
    for host in fleet.hosts:
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host
        assert fleet.state(host, "v1") == "good", host
        assert not fleet.locked(host), host
    assert (
        "FAILED web3: smoke checks failed: release healthy here: WEB3_OK is not set in"
        in run.output
    )
    for host in fleet.hosts:
        assert "ROLLED BACK %s: v2 -> v1, verified" % host in run.output


def test_failure_in_the_canary_touches_only_the_canary(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy("v2", healthy_on=["web2", "web3"])
    assert run.returncode != 0
    assert fleet.current("web1") == "v1"
    assert fleet.state("web1", "v2") == "failed"
    for host in ("web2", "web3"):
        assert fleet.current(host) == "v1"
        assert fleet.releases_on_disk(host) == ["v1"]
        assert "v2" not in fleet.ledger(host)["releases"]
        assert "UNTOUCHED %s: its batch never started" % host in run.output


def test_rollback_scope_failed_keeps_the_hosts_that_passed(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy(
        "v2",
        healthy_on=["web1", "web3"],
        smokegate_serial=[1, 1, 1],
        smokegate_rollback_scope="failed",
    )
    assert run.returncode != 0
    assert fleet.current("web1") == "v2" and fleet.state("web1", "v2") == "good"
    assert "KEPT web1: stays on v2" in run.output
    assert fleet.current("web2") == "v1" and fleet.state("web2", "v2") == "failed"
    assert fleet.releases_on_disk("web3") == ["v1"]
    assert not any(fleet.locked(host) for host in fleet.hosts)


def test_first_deploy_that_fails_removes_current(fleet: Fleet):
    run = fleet.deploy("v1", healthy_on=["web1", "web2"])
    assert run.returncode != 0
    for host in fleet.hosts:
        assert fleet.current(host) is None, host
        assert not (fleet.root(host) / "current").exists()
    assert fleet.state("web3", "v1") == "failed"
    assert "ROLLED BACK web1: v1 -> (no current: removed)" in run.output


def test_a_failed_task_that_is_not_a_check_rolls_back(tmp_path: Path):
    restarts = {"web1": "true", "web2": "echo restart broke >&2; exit 3", "web3": "true"}
    fleet = Fleet(
        tmp_path,
        host_vars={
            host: {"smokegate_restart_command": command} for host, command in restarts.items()
        },
    )
    run = fleet.deploy("v1", smokegate_serial=[1, 1, 1])
    assert run.returncode != 0
    assert "FAILED web2: restart command exited 3: restart broke" in run.output
    assert fleet.current("web1") is None and fleet.current("web2") is None  # back to no release
    assert fleet.state("web1", "v1") == "failed" and fleet.state("web2", "v1") == "failed"
    assert fleet.releases_on_disk("web3") == []


def test_a_host_that_becomes_unreachable_mid_deploy_halts_and_rolls_back(
    tmp_path: Path, closed_port: int
):
    # web2's connection is read from a file on the controller: "local" until the canary's
    # after-verify hook switches it to SSH on a closed port, so web2 drops out mid-run.
    connection_file = tmp_path / "web2-connection"
    connection_file.write_text("local")
    hook = tmp_path / "cut_web2.yml"
    hook.write_text(
        "- name: Cut web2 off\n"
        "  ansible.builtin.copy: {content: ssh, dest: '%s', mode: '0644'}\n"
        "  when: inventory_hostname == 'web1'\n" % connection_file
    )
    fleet = Fleet(
        tmp_path,
        host_vars={
            "web2": {
                "ansible_connection": "{{ lookup('ansible.builtin.file', '%s') }}"
                % connection_file,
                "ansible_host": "127.0.0.1",
                "ansible_port": closed_port,
            }
        },
    )
    assert fleet.deploy("v1").returncode == 0
    connection_file.write_text("local")
    run = fleet.deploy(
        "v2", smokegate_after_verify_tasks_file=str(hook), smokegate_serial=[1, 1, 1]
    )
    assert run.returncode != 0
    assert fleet.current("web1") == "v1"
    assert fleet.state("web1", "v2") == "failed"
    assert "UNREACHABLE web2" in run.output
    assert fleet.current("web2") == "v1"  # never switched: its lock failed to even connect
    assert fleet.releases_on_disk("web3") == ["v1"]  # the batch after never started


def test_a_malformed_spec_is_refused_before_any_host_changes(fleet: Fleet):
    fleet.spec_file.write_text("checks:\n  - name: free space\n    disk: {path: /, min_fre: 1G}\n")
    run = fleet.deploy("v1")
    assert run.returncode != 0
    assert "disk.min_fre is not a known field; did you mean min_free?" in run.output
    for host in fleet.hosts:
        assert not fleet.root(host).exists(), host


def test_a_bad_setting_is_refused_before_any_host_changes(fleet: Fleet):
    run = fleet.deploy("v1", smokegate_restart_timeout="soon")
    assert run.returncode != 0
    assert "smokegate_restart_timeout" in run.output
    for host in fleet.hosts:
        assert not fleet.root(host).exists(), host  # not even locked


def test_warning_failures_do_not_roll_back(fleet: Fleet):
    fleet.spec_file.write_text(
        "checks:\n"
        "  - name: optional feature\n"
        "    env: {name: 'FEATURE_{{ inventory_hostname | upper }}', file: '{{ smokegate_deploy_root }}/current/health.env'}\n"
        "    severity: warning\n"
    )
    run = fleet.deploy("v1")
    assert run.returncode == 0, run.output
    assert all(fleet.current(host) == "v1" for host in fleet.hosts)


def test_a_held_lock_refuses_a_second_deploy_and_names_the_holder(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    DeployRoot(str(fleet.root("web2"))).lock("other-run", holder="alice@ci7", pid=4242)
    run = fleet.deploy("v2")
    assert run.returncode != 0
    assert "held by alice@ci7 (release other-run, since " in run.output
    assert "; controller pid 4242)" in run.output
    for host in fleet.hosts:
        assert fleet.current(host) == "v1"
        assert fleet.releases_on_disk(host) == ["v1"]
    assert fleet.locked("web2")  # the other run's lock is not ours to remove
    assert not fleet.locked("web1") and not fleet.locked("web3")


def test_a_rerun_of_a_deployed_release_uploads_nothing_and_changes_nothing(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.playbook("rolling_deploy", "-v", **fleet.deploy_vars("v1"))
    assert run.returncode == 0, run.output
    assert '"upload": ' not in run.output  # the release is on every host already
    assert {
        host: counters["changed"] for host, counters in recap(run.output).items()
    } == dict.fromkeys(fleet.hosts, 0)
    for host in fleet.hosts:
        assert fleet.current(host) == "v1" and fleet.state(host, "v1") == "good"
        assert not fleet.locked(host)


def test_explicit_rollback_converges_and_a_rerun_changes_nothing(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    assert fleet.deploy("v2").returncode == 0
    settings = {"smokegate_rollback_to": "v1", "smokegate_checks_file": str(fleet.spec_file)}
    first = fleet.playbook("rollback", **settings)
    assert first.returncode == 0, first.output
    assert all(
        fleet.current(host) == "v1" and fleet.state(host, "v2") == "failed" for host in fleet.hosts
    )
    second = fleet.playbook("rollback", **settings)
    assert second.returncode == 0, second.output
    assert {
        host: counters["changed"] for host, counters in recap(second.output).items()
    } == dict.fromkeys(fleet.hosts, 0)


def test_rollback_without_target_goes_to_the_recorded_previous_release(fleet: Fleet):
    for release in ("v1", "v2", "v3"):
        assert fleet.deploy(release).returncode == 0
    run = fleet.playbook("rollback", smokegate_checks_file=str(fleet.spec_file))
    assert run.returncode == 0, run.output
    assert all(fleet.current(host) == "v2" for host in fleet.hosts)


def test_smoke_playbook_reports_and_fails_on_a_critical_check(fleet: Fleet):
    assert fleet.deploy("v1").returncode == 0
    (fleet.root("web3") / "current" / "health.env").write_text("SOMETHING_ELSE=1\n")
    run = fleet.playbook("smoke", smokegate_checks_file=str(fleet.spec_file))
    assert run.returncode != 0
    assert "fatal: [web3]: FAILED!" in run.output and "WEB3_OK is not set" in run.output
    assert recap(run.output)["web1"]["failed"] == 0


def test_the_callback_writes_junit_and_json(fleet: Fleet, tmp_path: Path):
    import json
    import xml.etree.ElementTree as ET

    junit, report = tmp_path / "smoke.xml", tmp_path / "smoke.json"
    run = fleet.playbook(
        "smoke",
        env={
            "ANSIBLE_CALLBACKS_ENABLED": "smokegate.core.smoke_report",
            "SMOKEGATE_REPORT_JUNIT": str(junit),
            "SMOKEGATE_REPORT_JSON": str(report),
        },
        smokegate_checks=[{"name": "root", "disk": {"path": "/", "min_free": 1}}],
    )
    assert run.returncode == 0, run.output
    assert "SMOKE REPORT (Smokegate | smoke checks)" in run.output
    assert len(ET.parse(junit).getroot().findall("testsuite")) == 3
    assert {entry["host"] for entry in json.loads(report.read_text())["reports"]} == set(
        fleet.hosts
    )


def test_a_second_rolling_deploy_in_one_ansible_playbook_run_is_refused(tmp_path: Path):
    # Host facts of the first import would carry its release id into the second one.
    fleet = Fleet(tmp_path, count=2)
    playbook = tmp_path / "twice.yml"
    imports = [
        {
            "name": "Deploy %s" % release,
            "ansible.builtin.import_playbook": "smokegate.core.rolling_deploy",
            "vars": fleet.deploy_vars(release),
        }
        for release in ("v1", "v2")
    ]
    playbook.write_text(yaml.safe_dump(imports, sort_keys=False))
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(fleet.inventory),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **fleet.ansible_env},
        check=False,
    )
    assert completed.returncode != 0
    assert "already ran in this ansible-playbook run (release v1)" in completed.stdout
    assert [fleet.current(host) for host in fleet.hosts] == ["v1", "v1"]
    assert fleet.releases_on_disk("web1") == ["v1"]


def test_relative_artifact_and_spec_are_read_from_the_working_directory(fleet: Fleet):
    """As the README types it: -e smokegate_artifact=build/app.tar.gz -e
    smokegate_checks_file=smoke.yml, from the deploy directory. ``smoke.yml`` is also the
    name of one of the collection's playbooks, which must not be what is read."""
    (fleet.dir / "build").mkdir()
    fleet.artifact("v1").rename(fleet.dir / "build" / "app.tar.gz")
    (fleet.dir / "smoke.yml").write_text(fleet.spec_file.read_text())
    command = fleet.command(
        "rolling_deploy",
        {
            "smokegate_release": "v1",
            "smokegate_artifact": "build/app.tar.gz",
            "smokegate_checks_file": "smoke.yml",
        },
    )
    env = {**os.environ, **fleet.ansible_env}
    run = subprocess.run(
        command, cwd=fleet.dir, capture_output=True, text=True, env=env, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert {fleet.current(host) for host in fleet.hosts} == {"v1"}

    smoke = subprocess.run(
        fleet.command("smoke", {"smokegate_checks_file": "smoke.yml"}),
        cwd=fleet.dir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "failed=0" in smoke.stdout and "not a known key" not in smoke.stdout


@pytest.mark.parametrize(
    ("name", "filterless"),
    [
        ("realpath overflow", False),
        ("realpath overflow", True),
        ("symlink chain", True),
        ("hard link", True),
    ],
    ids=lambda value: (
        value if isinstance(value, str) else ("no data filter" if value else "data filter")
    ),
)
def test_an_artifact_that_writes_outside_its_release_changes_no_host(
    tmp_path: Path, name: str, filterless: bool
):
    fleet = Fleet(tmp_path, count=2)
    assert fleet.deploy("v1").returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    # The unpack directory is <fleet>/hosts/web1/releases/.evil.tmp-<pid>: four levels down.
    archive, refusal = attack(name, str(fleet.root("web1")), 4, "victim")
    env = {}
    if filterless:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(FILTERLESS_SITE)
        env["PYTHONPATH"] = str(site)
    run = fleet.playbook(
        "rolling_deploy",
        env=env,
        smokegate_release="evil",
        smokegate_artifact=str(archive.write(tmp_path / "evil.tar.gz")),
        smokegate_checks_file=str(fleet.spec_file),
    )
    assert run.returncode != 0
    assert "refused release evil: archive member" in run.output and refusal in run.output
    assert victim.read_text() == "original\n" and not (tmp_path / "victim.new").exists()
    for host in fleet.hosts:
        assert fleet.current(host) == "v1" and fleet.releases_on_disk(host) == ["v1"]
        assert "evil" not in fleet.ledger(host)["releases"] and not fleet.locked(host)
        assert not [
            name for name in os.listdir(fleet.root(host) / "releases") if name.startswith(".")
        ]


def test_an_artifact_is_unpacked_without_setuid_bits_owners_or_bombs(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FILTERLESS_SITE)
    fleet = Fleet(tmp_path, count=1)
    run = fleet.deploy("v1", extra=setuid_members(), env={"PYTHONPATH": str(site)})
    assert run.returncode == 0, run.output
    tool = fleet.root("web1") / "releases" / "v1" / "bin" / "su-tool"
    assert oct(tool.stat().st_mode & 0o7777) == oct(0o755)
    assert (tool.stat().st_uid, tool.stat().st_gid) == (os.getuid(), os.getgid())
    assert oct((tool.parent.parent / "spool").stat().st_mode & 0o7777) == oct(0o755)
    run = fleet.deploy("v2", smokegate_max_unpacked="100")
    assert run.returncode != 0
    assert "refused release v2: the archive unpacks to" in run.output
    assert "more than max_unpacked (100 B)" in run.output
    assert fleet.current("web1") == "v1" and fleet.releases_on_disk("web1") == ["v1"]


def test_a_shared_path_through_a_symlink_of_the_artifact_is_refused(fleet: Fleet, tmp_path: Path):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy(
        "v2",
        extra=Archive().directory("elsewhere").symlink("logs", "elsewhere"),
        smokegate_shared_paths=["logs/"],
    )
    assert run.returncode != 0
    assert "shared path 'logs' is a symlink of the archive" in run.output
    assert all(fleet.current(host) == "v1" for host in fleet.hosts)


def test_a_rollback_by_hand_never_takes_an_adopted_hosts_only_release(tmp_path: Path):
    fleet = Fleet(tmp_path, count=2)
    for host in fleet.hosts:
        root = fleet.root(host)
        for release in ("20261101000000", "20261102000000"):
            (root / "releases" / release).mkdir(parents=True)
            (root / "releases" / release / "health.env").write_text(
                "".join("%s_OK=yes\n" % name.upper() for name in fleet.hosts)
            )
        (root / "shared").mkdir()
        (root / "current").symlink_to(root / "releases" / "20261102000000")  # as ansistrano
    run = fleet.playbook("rollback", smokegate_checks_file=str(fleet.spec_file))
    assert run.returncode != 0
    for host in fleet.hosts:
        assert fleet.current(host) == "20261102000000"
    assert "no earlier good release of %s is recorded" % fleet.root("web1") in run.output
    assert "releases on disk: 20261101000000 (unrecorded)" in run.output
    assert "-e smokegate_rollback_to=ID (ansible-playbook) or --to ID (fab rollback)" in run.output
    info = fleet.playbook(
        "rollback",
        smokegate_rollback_to="20261101000000",
        smokegate_checks_file=str(fleet.spec_file),
    )
    assert info.returncode == 0, info.output
    assert all(fleet.current(host) == "20261101000000" for host in fleet.hosts)
    ledger = fleet.ledger("web1")["releases"]
    assert ledger["20261102000000"]["state"] == "failed" and ledger["20261102000000"]["adopted_at"]
    # A deploy over the adopted tree goes back to what was current before it.
    assert fleet.deploy("v3", healthy_on=["web2"]).returncode != 0
    assert all(fleet.current(host) == "20261101000000" for host in fleet.hosts)
