"""End-to-end over real SSH: ansible-playbook against the lab's hosts, under faults.

Every test asserts on the hosts' own files (current, ledger, releases) through their roots.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import SECRET_HEADER, lab_command
from fleet import LabFleet

pytestmark = pytest.mark.lab


@pytest.fixture
def fleet(lab_fleet: LabFleet) -> LabFleet:
    return lab_fleet


def test_a_check_failing_on_one_host_rolls_back_every_switched_host(fleet: LabFleet):
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy(
        "v2", healthy_on=["web1", "web2", "web4"]
    )  # batches: web1 | web2 web3 | web4
    assert run.returncode != 0
    for host in ("web1", "web2", "web3"):
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host
    assert fleet.current("web4") == "v1"
    assert fleet.releases_on_disk("web4") == ["v1"]
    assert (
        "FAILED web3: smoke checks failed: release healthy here: WEB3_OK is not set" in run.output
    )


def test_a_host_lost_after_the_canary_halts_and_converges_when_back(
    fleet: LabFleet, lab: Path, tmp_path: Path
):
    hook = tmp_path / "lose_web2.yml"
    hook.write_text(
        "- name: Stop web2's sshd\n"
        "  ansible.builtin.command: %s stop-ssh %s web2\n"
        "  delegate_to: localhost\n"
        "  changed_when: true\n"
        "  when: inventory_hostname == 'web1'\n" % (Path(__file__).parent / "lab" / "lab", lab)
    )
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy("v2", smokegate_after_verify_tasks_file=str(hook))
    assert run.returncode != 0
    assert "UNREACHABLE web2" in run.output
    for host in ("web1", "web3"):
        assert fleet.current(host) == "v1", host
    assert fleet.releases_on_disk("web4") == ["v1"]  # the last batch never started
    lab_command("start-ssh", str(lab), "web2")
    again = fleet.playbook(
        "rollback", smokegate_rollback_to="v1", smokegate_checks_file=str(fleet.spec_file)
    )
    assert again.returncode == 0, again.output
    assert all(fleet.current(host) == "v1" for host in fleet.hosts)


def test_disk_full_while_unpacking_on_one_host(fleet: LabFleet, lab: Path):
    assert fleet.deploy("v1").returncode == 0
    web2_srv = Path(fleet.root("web2")).parent
    saved = web2_srv.parent / "srv-saved"
    shutil.copytree(web2_srv, saved, symlinks=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(web2_srv)], check=True)
    try:
        shutil.copytree(saved, web2_srv, symlinks=True, dirs_exist_ok=True)
        lab_command("stop-ssh", str(lab), "web2")
        lab_command("start-ssh", str(lab), "web2")  # its /srv is now the small tmpfs
        artifact_vars = fleet.deploy_vars("v2")
        # 8 MiB of zeros: a few KiB to upload, too big to unpack into 3 MiB.
        with tarfile.open(artifact_vars["smokegate_artifact"], "w:gz") as archive:
            for name, data in (
                (
                    "health.env",
                    "".join("%s_OK=yes\n" % host.upper() for host in fleet.hosts).encode(),
                ),
                ("blob", b"\0" * (8 * 1024 * 1024)),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        run = fleet.playbook("rolling_deploy", **artifact_vars)
        assert run.returncode != 0
        assert re.search(
            r"disk full: the archive needs 8(\.\d)? MiB in /srv/app/releases, \d(\.\d)? MiB free",
            run.output,
        )
        assert fleet.current("web2") == "v1"
        assert fleet.releases_on_disk("web2") == ["v1"]
        assert fleet.current("web1") == "v1" and fleet.state("web1", "v2") == "failed"
    finally:
        lab_command("stop-ssh", str(lab), "web2")
        subprocess.run(["umount", str(web2_srv)], check=False)
        shutil.rmtree(saved, ignore_errors=True)
        lab_command("start-ssh", str(lab), "web2")


def test_a_dns_name_that_never_answers_times_out_within_its_timeout(fleet: LabFleet):
    started = time.monotonic()
    run = fleet.playbook(
        "smoke",
        "-v",
        smokegate_checks=[{"name": "hang", "dns": {"name": "hang.lab.test"}, "timeout": 1.5}],
        smokegate_smoke_fail_on="never",
    )
    assert run.returncode == 0, run.output
    assert time.monotonic() - started < 60
    reports = [
        json.loads(line.split("=> ", 1)[1])
        for line in run.stdout.splitlines()
        if line.startswith("ok: [web") and '"smoke":' in line
    ]
    assert len(reports) == 4
    for report in reports:
        (result,) = report["smoke"]["results"]
        assert result["status"] == "timeout"
        assert result["duration_ms"] < 2000


def test_two_deploys_at_once_one_is_refused_by_the_lock(fleet: LabFleet):
    assert fleet.deploy("v1").returncode == 0
    commands = [
        fleet.command("rolling_deploy", fleet.deploy_vars(release)) for release in ("v2", "v3")
    ]
    env = {**os.environ, **fleet.ansible_env}
    processes = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for command in commands
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    codes = [process.returncode for process in processes]
    assert any(
        code != 0 and "deploy lock" in output and "is held by" in output
        for code, output in zip(codes, outputs)
    )
    winners = {release for release, code in zip(("v2", "v3"), codes) if code == 0}
    expected = winners.pop() if winners else "v1"
    for host in fleet.hosts:
        assert fleet.current(host) == expected, host
        assert not fleet.locked(host), host


def test_a_killed_rollback_converges_when_run_again(fleet: LabFleet):
    for release in ("v1", "v2"):
        assert fleet.deploy(release).returncode == 0
    settings = {"smokegate_rollback_to": "v1", "smokegate_checks_file": str(fleet.spec_file)}
    process = subprocess.Popen(
        fleet.command("rollback", settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **fleet.ansible_env},
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("changed: [web"):  # the first host has switched back
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    again = fleet.playbook("rollback", **settings)
    assert again.returncode == 0, again.output
    assert all(
        fleet.current(host) == "v1" and fleet.state(host, "v2") == "failed" for host in fleet.hosts
    )


def test_a_malformed_spec_is_refused_before_any_host_is_contacted(fleet: LabFleet):
    before = {host: fleet.ssh_sessions(host) for host in fleet.hosts}
    fleet.spec_file.write_text("checks:\n  - name: peers\n    tcp: {host: web1, prot: 22}\n")
    run = fleet.deploy("v1")
    assert run.returncode != 0
    assert "tcp.prot is not a known field; did you mean port?" in run.output
    for host in fleet.hosts:
        assert not fleet.root(host).exists(), host
        assert fleet.ssh_sessions(host) == before[host], host


def test_cross_host_reachability_by_lab_name(fleet: LabFleet, lab: Path):
    checks = [
        {"name": "sshd on %s" % peer, "tcp": {"host": peer, "port": 22}, "timeout": 2}
        for peer in fleet.hosts
    ]
    run = fleet.playbook("smoke", smokegate_checks=checks)
    assert run.returncode == 0, run.output
    lab_command("stop-ssh", str(lab), "web4")
    try:
        run = fleet.playbook("smoke", "--limit", "web1,web2,web3", smokegate_checks=checks)
    finally:
        lab_command("start-ssh", str(lab), "web4")
    assert run.returncode != 0
    assert "sshd on web4: connection to web4:22 refused" in run.output


def test_secrets_stay_out_of_verbose_output(fleet: LabFleet):
    env_secret = "labenv-s3cr3t-value"
    run = fleet.deploy("v1")
    assert run.returncode == 0, run.output
    for host in fleet.hosts:
        (fleet.root(host) / "shared").mkdir(parents=True, exist_ok=True)
        (fleet.root(host) / "shared" / "app.env").write_text(
            "DATABASE_URL=postgres://u:%s@db/app\n" % env_secret
        )
    checks = [
        {
            "name": "db url",
            "env": {
                "name": "DATABASE_URL",
                "file": "/srv/app/shared/app.env",
                "pattern": "^mysql://",
            },
        },
        {
            "name": "api",
            "http": {
                "url": "http://web1:22/",
                "headers": {"Authorization": "Bearer " + SECRET_HEADER},
            },
            "timeout": 2,
        },
    ]
    run = fleet.playbook("smoke", "-vvv", smokegate_checks=checks)
    assert run.returncode != 0  # both checks fail, naming what was wrong
    assert "does not match ^mysql:// (value hidden)" in run.output
    assert env_secret not in run.output
    assert SECRET_HEADER not in run.output


def test_a_second_lab_does_not_collide_and_down_is_idempotent(lab: Path, tmp_path: Path):
    other = tmp_path / "other-lab"
    lab_command("up", "1", str(other))
    try:
        first = json.loads((lab / "hosts.json").read_text())
        second = json.loads((other / "hosts.json").read_text())
        tag = json.loads((other / "lab.json").read_text())["tag"]
        assert first[0]["address"].rsplit(".", 1)[0] != second[0]["address"].rsplit(".", 1)[0]
        probe = subprocess.run(
            ["ssh", "-F", str(other / "ssh_config"), "web1", "hostname; ls /srv"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert probe.stdout.split() == ["web1"]  # its own, empty /srv
        fab = Path(sys.executable).with_name("fab")
        completed = subprocess.run(
            [str(fab), "-S", str(other / "ssh_config"), "-H", "web1", "--", "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.stdout.strip() == "web1", completed.stderr
    finally:
        lab_command("down", str(other))
    lab_command("down", str(other))  # again: nothing left, no error
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = [line.split(": ")[1].split("@")[0] for line in links.splitlines()]
    assert not [name for name in names if name.startswith(tag)]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert tag + "-web1" not in namespaces.stdout
