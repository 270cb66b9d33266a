"""The Fabric tasks over real SSH: ``fab smoke``, ``deploy``, ``rollback``, ``releases``.

Every test drives the real ``fab`` program against the lab's sshd hosts and asserts on
the hosts' own files and sshd logs.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import lab_command
from evil import attack, setuid_members
from fleet import LabFleet
from formats import parse_nagios, parse_prometheus, parse_tap

pytestmark = pytest.mark.lab
ENV_SECRET = "tok-5e3c7b1d"


@pytest.fixture
def fleet(lab_fleet: LabFleet) -> LabFleet:
    return lab_fleet


def host_srv(fleet: LabFleet, host: str) -> Path:
    """The host's /srv, seen from this machine."""
    return fleet.root(host).parent


def write_spec(fleet: LabFleet, checks: list[dict], name: str = "spec.json") -> str:
    path = fleet.dir / name
    path.write_text(json.dumps({"checks": checks}))
    return str(path)


def peer_checks(fleet: LabFleet) -> list[dict]:
    """Checks of every kind that read the host itself and reach its peers by name."""
    web2 = next(entry for entry in fleet.lab_hosts if entry["name"] == "web2")
    return [
        {"name": "srv mount", "mount": {"path": "/srv", "options": ["rw"], "writable": True}},
        {"name": "srv space", "disk": {"path": "/srv", "min_free": "1M", "min_free_percent": 1}},
        {"name": "path set", "env": {"name": "PATH", "pattern": "/usr/bin"}},
        {"name": "python", "binary": {"name": "python3", "version": ">=3.8"}},
        {"name": "web2 resolves", "dns": {"name": "web2.lab.test", "addresses": [web2["address"]]}},
        {"name": "web2 sshd", "tcp": {"host": "web2", "port": 22}},
    ]


def test_smoke_runs_every_host_in_one_ssh_session_and_one_exec(fleet: LabFleet):
    three = fleet.hosts[:3]
    sessions = {host: fleet.ssh_sessions(host) for host in fleet.hosts}
    execs = {host: fleet.ssh_execs(host) for host in fleet.hosts}
    run = fleet.fab(
        "smoke", "--checks", write_spec(fleet, peer_checks(fleet)), "--format", "json", hosts=three
    )
    assert run.returncode == 0, run.output
    document = json.loads(run.stdout)
    assert document["ok"] is True
    assert [report["host"] for report in document["hosts"]] == three
    for report in document["hosts"]:
        assert report["summary"]["passed"] == 6, report
    for host in three:
        assert fleet.ssh_sessions(host) == sessions[host] + 1, host
        assert fleet.ssh_execs(host) == execs[host] + 1, host
    assert fleet.ssh_sessions("web4") == sessions["web4"]  # not in -H: never contacted


def test_smoke_failing_on_one_host_names_it_and_keeps_the_secret(fleet: LabFleet):
    three = fleet.hosts[:3]
    for host in ("web1", "web3"):
        (host_srv(fleet, host) / "app.env").write_text("TOKEN=%s\n" % ENV_SECRET)
    spec = write_spec(
        fleet,
        [
            {"name": "srv space", "disk": {"path": "/srv", "min_free": "1M"}},
            {"name": "token", "env": {"name": "TOKEN", "file": "/srv/app.env", "pattern": "^tok-"}},
        ],
    )
    human = fleet.fab("smoke", "--checks", spec, hosts=three)
    assert human.returncode == 1, human.output
    assert "web1: OK" in human.stdout and "web3: OK" in human.stdout
    assert "web2: FAILED" in human.stdout
    assert "fleet: 2 of 3 hosts ok; failing: web2 (token)" in human.stdout
    junit = fleet.fab("smoke", "--checks", spec, "--format", "junit", hosts=three)
    assert junit.returncode == 1
    suites = {
        suite.get("hostname"): suite for suite in ET.fromstring(junit.stdout).iter("testsuite")
    }
    assert {host: suites[host].get("failures") for host in three} == {
        "web1": "0",
        "web2": "1",
        "web3": "0",
    }
    nagios = fleet.fab("smoke", "--checks", spec, "--format", "nagios", hosts=three)
    assert nagios.returncode == 2, nagios.output
    status = parse_nagios(nagios.stdout)
    assert status.status == "CRITICAL" and "token on web2" in status.summary
    assert status.perfdata["web2 token"][1] == "s"
    tap = fleet.fab("smoke", "--checks", spec, "--format", "tap", hosts=three)
    assert tap.returncode == 1
    assert [(point.ok, point.description) for point in parse_tap(tap.stdout) if not point.ok] == [
        (False, "web2: token")
    ]
    prometheus = fleet.fab("smoke", "--checks", spec, "--format", "prometheus", hosts=three)
    assert prometheus.returncode == 1
    gates = parse_prometheus(prometheus.stdout)["smokegate_ok"]
    assert {labels["host"]: value for labels, value in gates} == {"web1": 1, "web2": 0, "web3": 1}
    unknown = fleet.fab("smoke", "--checks", "/nonexistent.yml", "--format", "nagios", hosts=three)
    assert unknown.returncode == 3 and parse_nagios(unknown.stdout).status == "UNKNOWN"
    for run in (human, junit, nagios, tap, prometheus):
        assert ENV_SECRET not in run.output


def test_hosts_are_checked_concurrently(fleet: LabFleet):
    # A lookup that is never answered: each host spends its whole timeout on it.
    spec = write_spec(
        fleet,
        [{"name": "slow", "dns": {"name": "hang.lab.test"}, "timeout": 1.5, "severity": "warning"}],
    )
    started = time.monotonic()
    assert fleet.fab("smoke", "--checks", spec, hosts=["web1"]).returncode == 0
    one = time.monotonic() - started
    started = time.monotonic()
    assert fleet.fab("smoke", "--checks", spec, hosts=fleet.hosts[:3]).returncode == 0
    three = time.monotonic() - started
    # One after another would take at least 2 * 1.5 s longer than one host.
    assert three < one + 1.5, (one, three)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted(
        [(start, 1) for start, _end in intervals] + [(end, -1) for _start, end in intervals]
    )
    most = running = 0
    for _moment, change in edges:
        running += change
        most = max(most, running)
    return most


def test_parallel_bounds_how_many_hosts_are_worked_on_at_once(fleet: LabFleet):
    # Each host records when its check starts and ends (the hosts share this clock).
    marks = "/srv/parallel-marks"
    spec = write_spec(
        fleet,
        [
            {
                "name": "hold",
                "command": {
                    "argv": [
                        "sh",
                        "-c",
                        "date +%%s.%%N >> %s; sleep 1; date +%%s.%%N >> %s" % (marks, marks),
                    ],
                },
            }
        ],
    )

    def intervals() -> list[tuple[float, float]]:
        spans = []
        for host in fleet.hosts:
            path = host_srv(fleet, host) / "parallel-marks"
            start, end = (float(line) for line in path.read_text().split())
            path.unlink()
            spans.append((start, end))
        return spans

    assert fleet.fab("smoke", "--checks", spec).returncode == 0
    assert most_at_once(intervals()) == len(fleet.hosts)  # the default: all four at once
    run = fleet.fab("smoke", "--parallel", "2", "--checks", spec)
    assert run.returncode == 0, run.output
    assert most_at_once(intervals()) == 2
    sessions = {host: fleet.ssh_sessions(host) for host in fleet.hosts}
    refused = fleet.fab("smoke", "--parallel", "0", "--checks", spec)
    assert refused.returncode == 2
    assert "--parallel must be a number of hosts, 1 or more" in refused.output
    assert {host: fleet.ssh_sessions(host) for host in fleet.hosts} == sessions


def test_deploy_goes_out_everywhere_over_one_connection_per_host(fleet: LabFleet):
    sessions = {host: fleet.ssh_sessions(host) for host in fleet.hosts}
    run = fleet.fab_deploy("v1")
    assert run.returncode == 0, run.output
    assert "release v1 is live on web1, web2, web3, web4" in run.stdout
    assert "batches: web1 | web2 web3 | web4" in run.stdout
    for host in fleet.hosts:
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v1") == "good", host
        assert not fleet.locked(host), host
        assert (fleet.root(host) / "current" / "status.env").read_text() == "HEALTHY=yes\n"
        assert fleet.ssh_sessions(host) == sessions[host] + 1, host
        assert not list((fleet.root(host) / ".smokegate").glob("upload-*")), host
    again = fleet.fab_deploy("v1")
    assert again.returncode == 0, again.output
    assert "uploaded" not in again.stdout  # already there: nothing sent, nothing switched


def test_a_check_failing_on_the_last_host_rolls_every_host_back(fleet: LabFleet):
    assert fleet.fab_deploy("v1").returncode == 0
    # One host at a time (--parallel 1) changes the pace, never the outcome.
    run = fleet.fab_deploy(
        "v2", ["web1", "web2", "web3"], "--parallel", "1"
    )  # web1 | web2 web3 | web4
    assert run.returncode == 1, run.output
    for host in fleet.hosts:
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host
        assert not fleet.locked(host), host
    assert (
        "FAILED web4: smoke checks failed: release healthy here: "
        "HEALTHY is set but empty in /srv/app/current/status.env" in run.stdout
    )
    for host in ("web1", "web2", "web3", "web4"):
        assert "ROLLED BACK %s: v2 -> v1, restarted, verified" % host in run.stdout


def test_rollback_scope_failed_keeps_the_hosts_that_passed(fleet: LabFleet):
    assert fleet.fab_deploy("v1").returncode == 0
    run = fleet.fab_deploy("v2", ["web1", "web2", "web4"], "--rollback-scope", "failed")
    assert run.returncode == 1, run.output
    assert [fleet.current(host) for host in fleet.hosts] == ["v2", "v2", "v1", "v1"]
    assert fleet.releases_on_disk("web4") == ["v1"]
    assert "KEPT web1" in run.stdout and "UNTOUCHED web4" in run.stdout
    assert not any(fleet.locked(host) for host in fleet.hosts)


def test_an_unreachable_host_is_reported_by_name_and_nothing_changes(fleet: LabFleet, lab: Path):
    lab_command("stop-ssh", str(lab), "web2")
    address = next(entry["address"] for entry in fleet.lab_hosts if entry["name"] == "web2")
    smoke = fleet.fab("smoke", "--checks", str(fleet.fab_spec_file))
    assert smoke.returncode == 1
    assert "web2: NOT RUN, unreachable: cannot connect to %s:22" % address in smoke.stdout
    run = fleet.fab_deploy("v1")
    assert run.returncode == 1, run.output
    assert "UNREACHABLE web2: unreachable: cannot connect" in run.stdout
    for host in ("web1", "web3", "web4"):
        assert fleet.releases_on_disk(host) == [], host
        assert not fleet.locked(host), host


def test_a_held_lock_refuses_the_deploy_and_names_its_holder(fleet: LabFleet):
    state = fleet.root("web3") / ".smokegate"
    state.mkdir(parents=True)
    (state / "lock").write_text(
        json.dumps({"holder": "alice@ops1", "pid": 77, "host": "web3", "release": "r9"})
    )
    run = fleet.fab_deploy("v1")
    assert run.returncode == 1, run.output
    assert (
        "NOT LOCKED web3: deploy lock /srv/app/.smokegate/lock is held by alice@ops1" in run.stdout
    )
    for host in fleet.hosts:
        assert fleet.releases_on_disk(host) == [], host
    assert [fleet.locked(host) for host in fleet.hosts] == [False, False, True, False]


def test_ansible_deploy_then_fab_rollback(fleet: LabFleet):
    assert fleet.deploy("v1").returncode == 0
    assert fleet.deploy("v2").returncode == 0
    run = fleet.fab(
        "rollback",
        "--root",
        "/srv/app",
        "--restart",
        "bin/restart",
        "--checks",
        str(fleet.fab_spec_file),
    )
    assert run.returncode == 0, run.output
    for host in fleet.hosts:
        assert "ROLLED BACK %s: v2 -> v1, restarted, verified" % host in run.stdout
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host


def test_fab_deploy_then_ansible_rollback(fleet: LabFleet):
    assert fleet.fab_deploy("v1").returncode == 0
    assert fleet.fab_deploy("v2").returncode == 0
    run = fleet.playbook("rollback", smokegate_checks_file=str(fleet.spec_file))
    assert run.returncode == 0, run.output
    for host in fleet.hosts:
        assert fleet.current(host) == "v1", host
        assert fleet.state(host, "v2") == "failed", host


def test_rollback_to_an_explicit_release_twice_changes_nothing_the_second_time(
    fleet: LabFleet,
):
    assert fleet.fab_deploy("v1").returncode == 0
    assert fleet.fab_deploy("v2").returncode == 0
    first = fleet.fab("rollback", "--root", "/srv/app", "--to", "v1", "--restart", "bin/restart")
    assert first.returncode == 0, first.output
    ledgers = {host: fleet.ledger(host) for host in fleet.hosts}
    second = fleet.fab("rollback", "--root", "/srv/app", "--to", "v1", "--restart", "bin/restart")
    assert second.returncode == 0, second.output
    for host in fleet.hosts:
        assert "UNCHANGED %s: already on v1, nothing changed" % host in second.stdout
        assert fleet.ledger(host) == ledgers[host], host
        assert fleet.current(host) == "v1"


def test_rollback_without_an_earlier_release_refuses_and_keeps_current(fleet: LabFleet):
    assert fleet.fab_deploy("v1").returncode == 0
    run = fleet.fab("rollback", "--root", "/srv/app", hosts=["web1"])
    assert run.returncode == 1
    assert "NOT ROLLED BACK web1: no earlier good release" in run.stdout
    assert fleet.current("web1") == "v1" and fleet.state("web1", "v1") == "good"


def test_a_malformed_spec_is_refused_before_any_host_is_touched(fleet: LabFleet):
    sessions = {host: fleet.ssh_sessions(host) for host in fleet.hosts}
    bad = write_spec(fleet, [{"name": "space", "disk": {"path": "/srv", "min_fre": "1M"}}])
    run = fleet.fab(
        "deploy",
        "--artifact",
        str(fleet.artifact("v1")),
        "--root",
        "/srv/app",
        "--checks",
        bad,
    )
    assert run.returncode == 2, run.output
    assert "check 'space': disk.min_fre is not a known field; did you mean min_free?" in run.stderr
    for host in fleet.hosts:
        assert fleet.ssh_sessions(host) == sessions[host], host
        assert not fleet.root(host).exists(), host


def test_releases_lists_every_host(fleet: LabFleet):
    assert fleet.fab_deploy("v1").returncode == 0
    assert fleet.fab_deploy("v2", ["web1", "web2", "web3"]).returncode == 1
    run = fleet.fab("releases", "--root", "/srv/app", hosts=["web1", "web4"])
    assert run.returncode == 0, run.output
    rows = [line.split() for line in run.stdout.splitlines()]
    assert rows[0] == ["HOST", "RELEASE", "STATE", "ACTIVATED", "AT", "CURRENT"]
    assert [row[:3] for row in rows[1:]] == [
        ["web1", "v1", "good"],
        ["web1", "v2", "failed"],
        ["web4", "v1", "good"],
        ["web4", "v2", "failed"],
    ]
    assert [row[-1] == "*" for row in rows[1:]] == [True, False, True, False]
    as_json = json.loads(fleet.fab("releases", "--root", "/srv/app", "--format", "json").stdout)
    assert as_json["web3"]["current"] == "v1"


def root_only_secret(fleet: LabFleet, host: str) -> str:
    path = host_srv(fleet, host) / "secret.env"
    path.write_text("TOKEN=%s\n" % ENV_SECRET)
    path.chmod(0o600)
    return write_spec(
        fleet, [{"name": "token", "env": {"name": "TOKEN", "file": "/srv/secret.env"}}], "sec.json"
    )


def test_sudo_runs_the_engine_as_root_for_a_login_user(fleet: LabFleet):
    spec = root_only_secret(fleet, "web1")
    plain = fleet.fab("smoke", "--checks", spec, hosts=["sgdeploy@web1"])
    assert plain.returncode == 1
    assert "cannot read env file /srv/secret.env: Permission denied" in plain.stdout
    assert fleet.fab("smoke", "--checks", spec, "--sudo", hosts=["sgdeploy@web1"]).returncode == 0
    deploy = fleet.fab_deploy("v1", None, "--sudo", hosts=["sgdeploy@web1", "sgdeploy@web2"])
    assert deploy.returncode == 0, deploy.output
    assert fleet.current("web1") == "v1" and fleet.state("web2", "v1") == "good"
    assert (fleet.root("web1") / "current" / "status.env").stat().st_uid == 0


def test_sudo_with_a_password_explains_what_is_missing_and_hides_the_password(fleet: LabFleet):
    spec = root_only_secret(fleet, "web1")
    runs = {}
    for password in (None, "wrong-pw", "lab-sudo-pw"):
        env = {"FABRIC_SUDO_PASSWORD": password} if password else {}
        runs[password] = fleet.fab(
            "smoke", "--checks", spec, "--sudo", hosts=["sgpass@web1"], env=env
        )
    assert runs[None].returncode == 1
    assert "web1: NOT RUN, sudo needs a password" in runs[None].stdout
    assert runs["wrong-pw"].returncode == 1
    assert "web1: NOT RUN, sudo rejected the password" in runs["wrong-pw"].stdout
    assert runs["lab-sudo-pw"].returncode == 0, runs["lab-sudo-pw"].output
    for run in runs.values():
        assert "lab-sudo-pw" not in run.output and "wrong-pw" not in run.output
        assert ENV_SECRET not in run.output


def test_a_host_lost_mid_deploy_halts_it_and_converges_when_back(fleet: LabFleet, lab: Path):
    assert fleet.fab_deploy("v1").returncode == 0
    # web2's restart takes its own sshd and sessions down: the host drops mid-request.
    lose_web2 = 'if [ "$(hostname)" = web2 ]; then %s stop-ssh %s web2; fi; bin/restart' % (
        Path(__file__).parent / "lab" / "lab",
        lab,
    )
    run = fleet.fab_deploy("v2", None, "--restart", lose_web2)
    assert run.returncode == 1, run.output
    assert "UNREACHABLE web2: unreachable: the connection was lost mid-request" in run.stdout
    assert (
        "when web2 answers again: fab -H web2 rollback --root /srv/app --release v2" in run.stdout
    )
    assert [fleet.current(host) for host in ("web1", "web3", "web4")] == ["v1", "v1", "v1"]
    assert fleet.releases_on_disk("web4") == ["v1"]
    assert fleet.current("web2") == "v2" and fleet.locked("web2")

    lab_command("start-ssh", str(lab), "web2")
    back = ("rollback", "--root", "/srv/app", "--release", "v2", "--restart", "bin/restart")
    first = fleet.fab(*back, hosts=["web2"])
    assert first.returncode == 0, first.output
    assert "ROLLED BACK web2: v2 -> v1, restarted" in first.stdout
    assert fleet.current("web2") == "v1" and fleet.state("web2", "v2") == "failed"
    assert not fleet.locked("web2")
    second = fleet.fab(*back, hosts=["web2"])
    assert second.returncode == 0 and "UNCHANGED web2" in second.stdout


def test_a_good_deploy_prunes_to_keep_but_never_the_rollback_target(fleet: LabFleet):
    for release in ("v1", "v2", "v3"):
        assert fleet.fab_deploy(release, None, "--keep", "1", hosts=["web1"]).returncode == 0
    assert fleet.releases_on_disk("web1") == ["v2", "v3"]
    assert sorted(fleet.ledger("web1")["releases"]) == ["v2", "v3"]


def test_auth_failure_and_a_missing_python_are_named_per_host(fleet: LabFleet):
    spec = str(fleet.fab_spec_file)
    stranger = fleet.fab("smoke", "--checks", spec, hosts=["nobody@web1", "web2"])
    assert stranger.returncode == 1
    assert "web1: NOT RUN, authentication failed for nobody" in stranger.stdout
    no_python = fleet.fab("smoke", "--checks", spec, "--python", "/opt/python9", hosts=["web1"])
    assert no_python.returncode == 1
    assert "web1: NOT RUN, no /opt/python9 on the host" in no_python.stdout
    assert "Traceback" not in stranger.output + no_python.output


def test_a_failed_first_deploy_leaves_no_current_and_no_lock(fleet: LabFleet):
    run = fleet.fab_deploy("v1", ["web2", "web3", "web4"])  # the canary, web1, fails
    assert run.returncode == 1, run.output
    assert "ROLLED BACK web1: v1 -> (no current: removed)" in run.stdout
    assert fleet.current("web1") is None and fleet.state("web1", "v1") == "failed"
    assert not any(fleet.locked(host) for host in fleet.hosts)
    assert [fleet.releases_on_disk(host) for host in ("web2", "web3", "web4")] == [[], [], []]


@pytest.mark.parametrize("name", ["realpath overflow", "symlink chain", "hard link"])
def test_an_artifact_that_writes_outside_its_release_changes_no_host(fleet: LabFleet, name: str):
    # The lab's hosts run Debian's Python 3.11.2, whose tarfile has no extraction filter.
    assert fleet.fab_deploy("v1", None, "--serial", "2").returncode == 0
    victim = host_srv(fleet, "web1") / "victim"
    victim.write_text("original\n")
    # The unpack directory is /srv/app/releases/.evil.tmp-<pid>: three levels below /srv.
    archive, refusal = attack(name, "/srv/app", 3, "victim")
    run = fleet.fab(
        "deploy",
        "--artifact",
        str(archive.write(fleet.dir / "evil.tar.gz")),
        "--root",
        "/srv/app",
        "--checks",
        str(fleet.fab_spec_file),
        "--release",
        "evil",
    )
    assert run.returncode == 1
    assert "refused release evil: archive member" in run.stdout and refusal in run.stdout
    assert victim.read_text() == "original\n" and not victim.with_name("victim.new").exists()
    for host in fleet.hosts:
        assert fleet.current(host) == "v1" and fleet.releases_on_disk(host) == ["v1"]
        assert "evil" not in fleet.ledger(host)["releases"] and not fleet.locked(host)


def test_deploy_unpacks_without_setuid_bits_or_owners_and_bounds_the_size(fleet: LabFleet):
    hosts = fleet.hosts[:2]
    run = fleet.fab(
        "deploy",
        "--artifact",
        str(fleet.artifact("v1", extra=setuid_members())),
        "--root",
        "/srv/app",
        "--checks",
        str(fleet.fab_spec_file),
        "--release",
        "v1",
        "--restart",
        "bin/restart",
        hosts=hosts,
    )
    assert run.returncode == 0, run.output
    for host in hosts:
        tool = fleet.root(host) / "releases" / "v1" / "bin" / "su-tool"
        assert oct(tool.stat().st_mode & 0o7777) == oct(0o755)
        assert (tool.stat().st_uid, tool.stat().st_gid) == (0, 0)
    run = fleet.fab_deploy("v2", None, "--max-unpacked", "100", hosts=hosts)
    assert run.returncode == 1
    assert "refused release v2: the archive unpacks to" in run.stdout
    assert "more than max_unpacked (100 B)" in run.stdout
    assert all(fleet.current(host) == "v1" for host in hosts)
    refused = fleet.fab_deploy("v2", None, "--max-unpacked", "lots", hosts=hosts)
    assert refused.returncode == 2 and "'lots' is not a size" in refused.stderr


def test_rollback_of_an_adopted_tree_refuses_with_the_releases_on_disk(fleet: LabFleet):
    root = fleet.root("web1")
    for release in ("20261101000000", "20261102000000"):
        (root / "releases" / release).mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "current").symlink_to("/srv/app/releases/20261102000000")  # as ansistrano
    run = fleet.fab("rollback", "--root", "/srv/app", hosts=["web1"])
    assert run.returncode == 1
    assert "releases on disk: 20261101000000 (unrecorded)" in run.stdout
    assert "--to ID (fab rollback)" in run.stdout
    assert fleet.current("web1") == "20261102000000"
    listing = fleet.fab("releases", "--root", "/srv/app", hosts=["web1"])
    assert re.search(r"web1\s+20261102000000\s+good\s", listing.stdout), listing.stdout
    assert re.search(r"web1\s+20261101000000\s+unrecorded\s", listing.stdout), listing.stdout
    run = fleet.fab("rollback", "--root", "/srv/app", "--to", "20261101000000", hosts=["web1"])
    assert run.returncode == 0, run.output
    assert fleet.current("web1") == "20261101000000"
