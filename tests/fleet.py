"""A fleet of local-connection hosts with their own deploy roots, driven by ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent

# The spec every fleet test uses: the release itself says which hosts it works on
# (health.env inside the artifact), so a release can be made to fail on chosen hosts.
HEALTH_SPEC = {
    "checks": [
        {"name": "root space", "disk": {"path": "{{ smokegate_deploy_root }}", "min_free": "1M"}},
        {
            "name": "release healthy here",
            "env": {
                "name": "{{ inventory_hostname | upper }}_OK",
                "file": "{{ smokegate_deploy_root }}/current/health.env",
            },
        },
    ]
}

# The same verdict for a spec that is not templated: the "service" is healthy on the hosts
# its release lists, judged by the host's own name.
FAB_SPEC = {
    "checks": [
        {"name": "root space", "disk": {"path": "/srv/app", "min_free": "1M"}},
        {
            "name": "release healthy here",
            "env": {"name": "HEALTHY", "file": "/srv/app/current/status.env"},
        },
    ]
}
RESTART_SCRIPT = """#!/bin/sh
if grep -qx "$(hostname)" healthy-on; then echo HEALTHY=yes; else echo HEALTHY=; fi > status.env
"""


class Fleet:
    """Hosts web1..webN: ``ansible_connection: local``, roots under ``<dir>/hosts/<name>``."""

    ansible_env = {
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
    }

    def __init__(
        self, directory: Path, count: int = 3, host_vars: dict[str, dict] | None = None
    ) -> None:
        self.dir = directory
        self.hosts = ["web%d" % index for index in range(1, count + 1)]
        self.inventory = directory / "inventory.yml"
        self.spec_file = directory / "smoke.yml"
        self.spec_file.write_text(yaml.safe_dump(HEALTH_SPEC, sort_keys=False))
        inventory = {
            "all": {
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "fleet_dir": str(directory),
                    "smokegate_deploy_root": "{{ fleet_dir }}/hosts/{{ inventory_hostname }}",
                },
                "hosts": {host: dict((host_vars or {}).get(host, {})) for host in self.hosts},
            }
        }
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def artifact(self, name: str, healthy_on: list[str] | None = None, extra: Any = None) -> Path:
        """A .tar.gz release that passes the health check on ``healthy_on`` (default all),
        with ``extra`` members when given.

        Two ways to tell, one per spec: health.env names the healthy hosts (HEALTH_SPEC,
        templated per host by Ansible), and bin/restart writes status.env from the
        host's own hostname (FAB_SPEC, the same file on every host).
        """
        hosts = self.hosts if healthy_on is None else healthy_on
        files = {
            "VERSION": (name + "\n", 0o644),
            "health.env": ("".join("%s_OK=yes\n" % host.upper() for host in hosts), 0o644),
            "healthy-on": ("".join(host + "\n" for host in hosts), 0o644),
            "bin/restart": (RESTART_SCRIPT, 0o755),
        }
        path = self.dir / ("%s.tar.gz" % name)
        with tarfile.open(path, "w:gz") as archive:
            for member, (content, mode) in files.items():
                data = content.encode()
                info = tarfile.TarInfo(member)
                info.size = len(data)
                info.mode = mode
                info.mtime = int(time.time())
                archive.addfile(info, BytesIO(data))
            if extra is not None:  # more members: an evil.Archive
                extra.add_to(archive)
        return path

    def command(self, name: str, extra_vars: dict[str, Any], *options: str) -> list[str]:
        """The ``ansible-playbook smokegate.core.<name>`` command line, extra vars as JSON."""
        vars_file = self.dir / ("vars-%d.json" % time.monotonic_ns())
        vars_file.write_text(json.dumps(extra_vars))
        return [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "smokegate.core.%s" % name,
            "-i",
            str(self.inventory),
            "-e",
            "@%s" % vars_file,
            *options,
        ]

    def playbook(
        self, name: str, *options: str, env: dict[str, str] | None = None, **extra_vars: Any
    ) -> subprocess.CompletedProcess:
        """Run ``ansible-playbook smokegate.core.<name>`` with extra vars."""
        completed = subprocess.run(
            self.command(name, extra_vars, *options),
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **self.ansible_env, **(env or {})},
            check=False,
        )
        completed.output = completed.stdout + completed.stderr  # type: ignore[attr-defined]
        return completed

    def deploy_vars(
        self,
        release: str,
        healthy_on: list[str] | None = None,
        extra: Any = None,
        **extra_vars: Any,
    ) -> dict[str, Any]:
        settings = {
            "smokegate_release": release,
            "smokegate_artifact": str(self.artifact(release, healthy_on, extra)),
            "smokegate_checks_file": str(self.spec_file),
        }
        settings.update(extra_vars)
        return settings

    def deploy(
        self,
        release: str,
        healthy_on: list[str] | None = None,
        extra: Any = None,
        env: dict[str, str] | None = None,
        **extra_vars: Any,
    ) -> subprocess.CompletedProcess:
        """A rolling deploy of a new artifact (with ``extra`` members, an evil.Archive)."""
        return self.playbook(
            "rolling_deploy", env=env, **self.deploy_vars(release, healthy_on, extra, **extra_vars)
        )

    def root(self, host: str) -> Path:
        return self.dir / "hosts" / host

    def current(self, host: str) -> str | None:
        link = self.root(host) / "current"
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def ledger(self, host: str) -> dict:
        path = self.root(host) / ".smokegate" / "ledger.json"
        return json.loads(path.read_text()) if path.exists() else {"releases": {}}

    def state(self, host: str, release: str) -> str | None:
        return self.ledger(host)["releases"].get(release, {}).get("state")

    def releases_on_disk(self, host: str) -> list[str]:
        directory = self.root(host) / "releases"
        return (
            sorted(name for name in os.listdir(directory) if not name.startswith("."))
            if directory.exists()
            else []
        )

    def locked(self, host: str) -> bool:
        return (self.root(host) / ".smokegate" / "lock").exists()


class LabFleet(Fleet):
    """The lab's SSH hosts (tests/lab/lab), deploying to /srv/app on each."""

    def __init__(
        self, directory: Path, lab_dir: Path, host_vars: dict[str, dict] | None = None
    ) -> None:
        self.dir = directory
        self.lab_dir = lab_dir
        self.lab_hosts = json.loads((lab_dir / "hosts.json").read_text())
        self.hosts = [host["name"] for host in self.lab_hosts]
        self.inventory = directory / "inventory.yml"
        self.spec_file = directory / "smoke.yml"
        self.spec_file.write_text(yaml.safe_dump(HEALTH_SPEC, sort_keys=False))
        self.fab_spec_file = directory / "fab-smoke.json"
        self.fab_spec_file.write_text(json.dumps(FAB_SPEC))
        key = str(lab_dir / "id_ed25519")
        hosts = {}
        for host in self.lab_hosts:
            hosts[host["name"]] = {
                "ansible_host": host["address"],
                **(host_vars or {}).get(host["name"], {}),
            }
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": key,
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5",
                    "smokegate_deploy_root": "/srv/app",
                },
                "hosts": hosts,
            }
        }
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def root(self, host: str) -> Path:
        return (
            Path(next(entry["root"] for entry in self.lab_hosts if entry["name"] == host))
            / "srv"
            / "app"
        )

    def _sshd_log(self, host: str) -> str:
        root = Path(next(entry["root"] for entry in self.lab_hosts if entry["name"] == host))
        log = root / "sshd.log"
        return log.read_text() if log.exists() else ""

    def ssh_sessions(self, host: str) -> int:
        """SSH connections the host accepted so far."""
        return self._sshd_log(host).count("Accepted publickey")

    def ssh_execs(self, host: str) -> int:
        """Commands the host ran over SSH so far (one per exec channel)."""
        return self._sshd_log(host).count("Starting session: command")

    def fab(
        self,
        *args: str,
        hosts: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """``fab -H <hosts> <args>`` with the repository's fabfile and the lab's ssh_config."""
        completed = subprocess.run(
            [
                str(Path(sys.executable).with_name("fab")),
                "--search-root",
                str(REPO),
                "--ssh-config",
                str(self.lab_dir / "ssh_config"),
                "--hosts",
                ",".join(hosts or self.hosts),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        completed.output = completed.stdout + completed.stderr  # type: ignore[attr-defined]
        return completed

    def fab_deploy(
        self, release: str, healthy_on: list[str] | None = None, *options: str, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        return self.fab(
            "deploy",
            "--artifact",
            str(self.artifact(release, healthy_on)),
            "--root",
            "/srv/app",
            "--checks",
            str(self.fab_spec_file),
            "--release",
            release,
            *(() if "--restart" in options else ("--restart", "bin/restart")),
            *options,
            **kwargs,
        )
