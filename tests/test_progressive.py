"""Progressive delivery through both front ends: a bake catches the release whose service
dies after its first pass, a failure budget rolls back a broken host alone, and a baseline
refuses to blame a release for what was broken before it.

``fab deploy`` runs on the lab's SSH hosts; ``ansible-playbook smokegate.core.rolling_deploy``
on local-connection hosts (tests/fleet.py), both with a release whose bin/restart starts the
"service" (it writes the status the spec reads) and, in the dying release, kills it again two
seconds later.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from evil import Archive
from fleet import HEALTH_SPEC, RESTART_SCRIPT, Fleet, LabFleet

# The service passes its first check, then dies: what a snapshot gate lets through.
DYING = RESTART_SCRIPT + "(sleep 2; echo HEALTHY= > status.env) >/dev/null 2>&1 </dev/null &\n"
DYING_ON_LOCAL_HOSTS = "(sleep 2; : > health.env) >/dev/null 2>&1 </dev/null &\n"


def dying() -> Archive:
    return Archive().file("bin/restart", DYING.encode(), mode=0o755)


@pytest.fixture
def lab(lab_fleet: LabFleet) -> LabFleet:
    return lab_fleet


def spec_with(fleet: LabFleet, *checks: dict) -> str:
    document = json.loads(fleet.fab_spec_file.read_text())
    document["checks"].extend(checks)
    path = fleet.dir / "spec-more.json"
    path.write_text(json.dumps(document))
    return str(path)


def fab_deploy(
    fleet: LabFleet, release: str, *options: str, healthy_on=None, extra=None, checks=None
):
    return fleet.fab(
        "deploy",
        "--artifact",
        str(fleet.artifact(release, healthy_on, extra)),
        "--root",
        "/srv/app",
        "--checks",
        checks or str(fleet.fab_spec_file),
        "--release",
        release,
        "--restart",
        "bin/restart",
        *options,
    )


@pytest.mark.lab
def test_fab_a_bake_catches_what_one_snapshot_lets_through(lab: LabFleet):
    assert fab_deploy(lab, "v1").returncode == 0
    through = fab_deploy(lab, "v2", extra=dying())
    assert through.returncode == 0, through.output  # one snapshot: out everywhere...
    time.sleep(2.5)
    status = lab.root("web1") / "current" / "status.env"
    assert status.read_text() == "HEALTHY=\n"  # ...and dead everywhere seconds later
    back = lab.fab("rollback", "--root", "/srv/app", "--to", "v1", "--restart", "bin/restart")
    assert back.returncode == 0, back.output
    caught = fab_deploy(lab, "v3", "--bake", "4", "--bake-interval", "1", extra=dying())
    assert caught.returncode == 1, caught.output
    assert "FAILED web1: bake failed " in caught.stdout and "(round " in caught.stdout
    assert "ROLLED BACK web1: v3 -> v1, restarted" in caught.stdout
    assert "UNTOUCHED web2: its batch never started" in caught.stdout
    assert [lab.current(host) for host in lab.hosts] == ["v1"] * 4
    assert all("v3" not in lab.releases_on_disk(host) for host in lab.hosts[1:])


@pytest.mark.lab
def test_fab_one_broken_host_within_the_budget_is_rolled_back_alone(lab: LabFleet):
    assert fab_deploy(lab, "v1").returncode == 0
    broken = [host for host in lab.hosts if host != "web3"]  # batches: web1 | web2 web3 | web4
    run = fab_deploy(lab, "v2", "--max-fail", "1", healthy_on=broken)
    assert run.returncode == 3, run.output
    assert "is live on web1, web2, web4; rolled back within the failure budget: web3" in run.stdout
    assert "ROLLED BACK (tolerated) web3: v2 -> v1, restarted, verified" in run.stdout
    assert [lab.current(host) for host in lab.hosts] == ["v2", "v2", "v1", "v2"]
    assert lab.state("web3", "v2") == "failed" and not any(map(lab.locked, lab.hosts))


@pytest.mark.lab
def test_fab_failures_past_the_budget_or_on_the_canary_roll_everything_back(lab: LabFleet):
    assert fab_deploy(lab, "v1").returncode == 0
    run = fab_deploy(lab, "v2", "--max-fail", "1", healthy_on=["web1", "web2"])
    assert run.returncode == 1, run.output
    assert "ROLLED BACK (tolerated) web3" in run.stdout and "FAILED web4" in run.stdout
    assert [lab.current(host) for host in lab.hosts] == ["v1"] * 4
    canary = fab_deploy(lab, "v3", "--max-fail", "75%", healthy_on=["web2", "web3", "web4"])
    assert canary.returncode == 1 and "FAILED web1" in canary.stdout
    assert "UNTOUCHED web2" in canary.stdout and lab.current("web1") == "v1"


@pytest.mark.lab
def test_fab_a_check_failing_before_the_deploy_refuses_it_or_does_not_judge(lab: LabFleet):
    assert fab_deploy(lab, "v1").returncode == 0
    for host in lab.hosts:
        if host != "web2":  # web2 was broken before this deploy
            (lab.root(host) / "shared" / "ready.env").write_text("READY=yes\n")
    checks = spec_with(
        lab, {"name": "ready", "env": {"name": "READY", "file": "/srv/app/shared/ready.env"}}
    )
    refused = fab_deploy(lab, "v2", checks=checks)
    assert refused.returncode == 1, refused.output
    assert "checks already fail before this deploy (baseline: refuse); no host was changed" in (
        refused.stdout
    )
    assert "ALREADY FAILING web2: ready: env file /srv/app/shared/ready.env does not exist" in (
        refused.stdout
    )
    for host in lab.hosts:
        assert lab.releases_on_disk(host) == ["v1"] and not lab.locked(host)
    ignored = fab_deploy(lab, "v2", "--baseline", "ignore", checks=checks)
    assert ignored.returncode == 0, ignored.output
    assert all(lab.current(host) == "v2" for host in lab.hosts)
    off = fab_deploy(lab, "v3", "--baseline", "off", checks=checks)
    assert off.returncode == 1 and "FAILED web2: smoke checks failed: ready" in off.stdout


# --- the same through ansible-playbook, on local-connection hosts ---------------------------
def local(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path, count=4)


def dying_locally() -> Archive:
    return Archive().file("bin/restart", DYING_ON_LOCAL_HOSTS.encode(), mode=0o755)


def test_ansible_a_bake_catches_what_one_snapshot_lets_through(tmp_path: Path):
    fleet = local(tmp_path)
    restart = {"smokegate_restart_command": "bin/restart"}
    assert fleet.deploy("v1", **restart).returncode == 0
    through = fleet.deploy("v2", extra=dying_locally(), **restart)
    assert through.returncode == 0, through.output  # one snapshot: out everywhere...
    time.sleep(2.5)
    assert (fleet.root("web1") / "current" / "health.env").read_text() == ""  # ...and dead
    back = fleet.playbook(
        "rollback", smokegate_rollback_to="v1", smokegate_checks_file=str(fleet.spec_file)
    )
    assert back.returncode == 0, back.output
    caught = fleet.deploy(
        "v3", extra=dying_locally(), smokegate_bake=4, smokegate_bake_interval=1, **restart
    )
    assert caught.returncode != 0
    assert "FAILED web1: bake failed " in caught.output
    assert "ROLLED BACK web1: v3 -> v1, restarted" in caught.output
    assert [fleet.current(host) for host in fleet.hosts] == ["v1"] * 4
    assert all("v3" not in fleet.releases_on_disk(host) for host in fleet.hosts[1:])


def test_ansible_the_failure_budget_tolerates_one_broken_host_not_two(tmp_path: Path):
    fleet = local(tmp_path)
    assert fleet.deploy("v1").returncode == 0
    run = fleet.deploy("v2", healthy_on=["web1", "web2", "web4"], smokegate_max_fail=1)
    assert run.returncode != 0  # a run that tolerated a host is never a full success
    assert "is live on web1, web2, web4; rolled back within the failure budget: web3" in run.output
    assert "ROLLED BACK (tolerated) web3: v2 -> v1, verified" in run.output
    assert [fleet.current(host) for host in fleet.hosts] == ["v2", "v2", "v1", "v2"]
    assert not any(map(fleet.locked, fleet.hosts))
    past = fleet.deploy("v3", healthy_on=["web1", "web2"], smokegate_max_fail=1)
    assert past.returncode != 0 and "FAILED web4" in past.output
    assert [fleet.current(host) for host in fleet.hosts] == ["v2", "v2", "v1", "v2"]
    assert all(fleet.state(host, "v3") == "failed" for host in fleet.hosts)


def test_ansible_a_check_failing_before_the_deploy_refuses_it_or_does_not_judge(tmp_path: Path):
    fleet = local(tmp_path)
    assert fleet.deploy("v1").returncode == 0
    spec = json.loads(json.dumps(HEALTH_SPEC))
    spec["checks"].append(
        {
            "name": "ready",
            "env": {"name": "READY", "file": "{{ smokegate_deploy_root }}/shared/ready.env"},
        }
    )
    spec_file = tmp_path / "ready.json"
    spec_file.write_text(json.dumps(spec))
    for host in fleet.hosts:
        if host != "web2":
            (fleet.root(host) / "shared" / "ready.env").write_text("READY=yes\n")
    refused = fleet.deploy("v2", smokegate_checks_file=str(spec_file))
    assert refused.returncode != 0
    assert (
        "ALREADY FAILING web2: ready: env file %s/shared/ready.env does not exist"
        % (fleet.root("web2"))
        in refused.output
    )
    for host in fleet.hosts:
        assert fleet.releases_on_disk(host) == ["v1"] and not fleet.locked(host)
    ignored = fleet.deploy("v2", smokegate_checks_file=str(spec_file), smokegate_baseline="ignore")
    assert ignored.returncode == 0, ignored.output
    assert all(fleet.current(host) == "v2" for host in fleet.hosts)


BAKE_ERRORS = "smokegate_test_bake_error_ratio"


def test_ansible_a_metric_that_goes_bad_during_the_bake_halts_the_deploy(
    tmp_path: Path, prometheus
):
    """Prometheus as the bake's metric provider: the canary's error ratio rises seconds
    after it passed its smoke checks, and the bake sends it back before any other host."""
    fleet = local(tmp_path)
    for host in fleet.hosts[:-1]:
        prometheus.exporter.set(BAKE_ERRORS, 0.0, host=host)
    prometheus.set(BAKE_ERRORS, 0.0, host=fleet.hosts[-1])  # scraped with the others
    spec = json.loads(json.dumps(HEALTH_SPEC))
    query = 'max(%s{host="{host}"})' % BAKE_ERRORS
    spec["checks"].append(
        {
            "name": "error ratio",
            "prometheus": {"url": prometheus.url, "query": query, "max": 0.01},
            # Prometheus scrapes every second: the retries let the check after the rollback
            # see the scrape that follows the recovery.
            "retries": 3,
        }
    )
    spec_file = tmp_path / "metric.json"
    spec_file.write_text(json.dumps(spec))
    assert fleet.deploy("v1", smokegate_checks_file=str(spec_file)).returncode == 0

    def degrade_the_canary() -> None:
        deadline = time.monotonic() + 120
        while fleet.current("web1") != "v2" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # past its smoke checks (milliseconds on a local host), into the bake
        prometheus.set(BAKE_ERRORS, 0.5, host="web1")
        while fleet.current("web1") != "v1" and time.monotonic() < deadline:
            time.sleep(0.05)
        prometheus.exporter.set(BAKE_ERRORS, 0.0, host="web1")  # v1 serves without errors

    degrader = threading.Thread(target=degrade_the_canary)
    degrader.start()
    try:
        run = fleet.deploy(
            "v2",
            smokegate_checks_file=str(spec_file),
            smokegate_bake=12,
            smokegate_bake_interval=1,
        )
    finally:
        degrader.join()
        prometheus.exporter.remove(BAKE_ERRORS, host="web1")
    assert run.returncode != 0, run.output
    assert "FAILED web1: bake failed " in run.output
    assert "error ratio: 0.5 for {}, want <= 0.01" in run.output
    assert "ROLLED BACK web1: v2 -> v1, verified" in run.output
    assert [fleet.current(host) for host in fleet.hosts] == ["v1"] * 4
    assert all("v2" not in fleet.releases_on_disk(host) for host in fleet.hosts[1:])
