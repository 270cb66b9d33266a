"""The new check types on real SSH hosts: one `fab smoke` whose checks read each host's own
socket table, processes, files and programs, in its network namespace and its /srv."""

from __future__ import annotations

import json

import pytest
from fleet import LabFleet

pytestmark = pytest.mark.lab


def test_fab_smoke_reads_each_hosts_own_sockets_processes_and_files(lab_fleet: LabFleet):
    fleet = lab_fleet
    web1, web2 = fleet.hosts[:2]
    for host, text in ((web1, '{"db": "ok"}'), (web2, '{"db": ')):
        (fleet.root(host).parent / "app.json").write_text(text)
    spec = fleet.dir / "new-types.json"
    spec.write_text(
        json.dumps(
            {
                "budget": 30,
                "checks": [
                    {"name": "sshd listens", "port": {"port": 22}},
                    {"name": "sshd on loopback", "port": {"port": 22, "address": "127.0.0.1"}},
                    {"name": "sshd runs", "process": {"name": "sshd", "user": "root"}},
                    {"name": "hostname", "command": {"argv": ["hostname"], "stdout": "^web"}},
                    {"name": "config", "file": {"path": "/srv/app.json", "format": "json"}},
                    {"name": "nginx", "service": {"name": "nginx"}, "severity": "warning"},
                ],
            }
        )
    )
    run = fleet.fab("smoke", "--checks", str(spec), "--format", "json", hosts=[web1, web2])
    assert run.returncode == 1, run.output
    assert run.stdout, run.output
    reports = {report["host"]: report for report in json.loads(run.stdout)["hosts"]}
    addresses = {entry["name"]: entry["address"] for entry in fleet.lab_hosts}
    for host in (web1, web2):
        results = {result["name"]: result for result in reports[host]["results"]}
        # Each host sees its own namespace: its sshd listens on its own address only.
        assert results["sshd listens"]["message"] == (
            "tcp port 22 is listened on at %s:22" % addresses[host]
        )
        assert results["sshd on loopback"]["message"] == (
            "tcp port 22 is listened on at %s:22 only, not at 127.0.0.1" % addresses[host]
        )
        assert results["sshd runs"]["status"] == "pass"
        assert results["hostname"]["message"] == "hostname exited 0 and matches ^web"
        assert results["nginx"]["status"] == "error"  # the lab hosts run no systemd
        assert reports[host]["budget"] == dict(reports[host]["budget"], exceeded=False)
    assert {name: reports[name]["results"][4]["status"] for name in (web1, web2)} == {
        web1: "pass",
        web2: "fail",
    }
    assert reports[web2]["results"][4]["message"] == (
        "/srv/app.json does not parse as json: line 1: Expecting value"
    )
