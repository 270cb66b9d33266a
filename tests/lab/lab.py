"""A lab of real SSH hosts on this machine: one network namespace per host.

    tests/lab/lab up N DIR     hosts web1..webN (root needed)
    tests/lab/lab down DIR     idempotent; also cleans up after a crashed run
    tests/lab/lab stop-ssh DIR NAME / start-ssh DIR NAME   a host stops / starts answering SSH

Each host has its own namespace with an address on a private bridge, its own hostname and
/srv and /root (binds of DIR/hosts/<name>/{srv,home}, private to its mount namespace) and a real sshd
that accepts DIR/id_ed25519 for root, sgdeploy (passwordless sudo) and sgpass (sudo with password lab-sudo-pw), and logs to DIR/hosts/<name>/sshd.log (VERBOSE).
A dnsmasq on the bridge answers <name>.lab.test and never answers hang.lab.test.
Writes DIR/hosts.json, DIR/inventory.ini and DIR/ssh_config. See tests/lab/README.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DOMAIN = "lab.test"
HANG_NAME = "hang." + DOMAIN
SUBNET_PREFIX = "10.231"  # 10.231.<n>.0/24, one <n> per lab


def run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kwargs)


def ensure_packages() -> None:
    wanted = (
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/sbin/dnsmasq", "dnsmasq-base"),
        ("/usr/bin/sudo", "sudo"),
    )
    missing = [pkg for binary, pkg in wanted if not os.path.exists(binary)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", *missing, env=env)


# Non-root logins (the same key as root): one may sudo without a password, the other
# only with its password.
SUDO_USER, PASSWORD_USER, SUDO_PASSWORD = "sgdeploy", "sgpass", "lab-sudo-pw"


def ensure_users(public_key: str) -> None:
    """Create the lab's two non-root users once (every lab shares them) and let this
    lab's key log in as them: sshd reads a user's keys as that user, from their home."""
    for user in (SUDO_USER, PASSWORD_USER):
        if run("id", user, check=False).returncode != 0:
            run("useradd", "--create-home", "--shell", "/bin/sh", user)
        # A locked password ("!") makes sshd refuse even key logins when PAM is off.
        run("usermod", "-p", "*", user)
    run("chpasswd", input="%s:%s\n" % (PASSWORD_USER, SUDO_PASSWORD))
    for user in (SUDO_USER, PASSWORD_USER):
        ssh_dir = Path(os.path.expanduser("~" + user)) / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        known = keys.read_text() if keys.exists() else ""
        if public_key not in known:
            keys.write_text(known + public_key)
        shutil.chown(ssh_dir, user, user)
        shutil.chown(keys, user, user)
        os.chmod(keys, 0o600)
    rule = Path("/etc/sudoers.d/smokegate-lab")
    rule.write_text("%s ALL=(ALL) NOPASSWD: ALL\n%s ALL=(ALL) ALL\n" % (SUDO_USER, PASSWORD_USER))
    os.chmod(rule, 0o440)


class Lab:
    def __init__(self, directory: str) -> None:
        self.dir = Path(directory).resolve()
        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()
        self.tag = "sg" + digest[:5]  # interface names are limited to 15 characters
        self.bridge = self.tag + "br"
        self.state_file = self.dir / "lab.json"

    def namespace(self, index: int) -> str:
        return "%s-web%d" % (self.tag, index)

    def _free_subnet(self) -> str:
        used = run("ip", "-o", "-4", "addr", "show").stdout
        for octet in range(10, 250):
            subnet = "%s.%d" % (SUBNET_PREFIX, octet)
            if subnet + "." not in used:
                return subnet
        raise SystemExit("lab: no free %s.x.0/24 subnet" % SUBNET_PREFIX)

    def up(self, count: int) -> None:
        ensure_packages()
        self.down(quiet=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        subnet = self._free_subnet()
        gateway = subnet + ".1"
        key = self.dir / "id_ed25519"
        if not key.exists():
            run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smokegate-lab", "-f", str(key)
            )
        authorized = self.dir / "authorized_keys"
        shutil.copy(str(key) + ".pub", authorized)
        os.chmod(authorized, 0o600)
        ensure_users(authorized.read_text())
        os.makedirs("/run/sshd", exist_ok=True)
        os.makedirs("/srv", exist_ok=True)

        hosts = [
            {
                "name": "web%d" % index,
                "address": "%s.%d" % (subnet, 10 + index),
                "root": str(self.dir / "hosts" / ("web%d" % index)),
            }
            for index in range(1, count + 1)
        ]
        state = {
            "tag": self.tag,
            "bridge": self.bridge,
            "subnet": subnet,
            "hosts": hosts,
            "pids": [],
        }
        self.state_file.write_text(json.dumps(state))

        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", gateway + "/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

        etc_hosts = "127.0.0.1 localhost\n" + "".join(
            "%s %s %s.%s\n" % (host["address"], host["name"], host["name"], DOMAIN)
            for host in hosts
        )
        for index, host in enumerate(hosts, start=1):
            self._host_up(index, host, gateway, etc_hosts, key, authorized, state)
        self._dns_up(subnet, hosts, state)
        self.state_file.write_text(json.dumps(state))
        self._write_client_files(hosts, key)
        self._wait_for_ssh(hosts, key)

    def _host_up(self, index, host, gateway, etc_hosts, key, authorized, state) -> None:  # type: ignore[no-untyped-def]
        namespace = self.namespace(index)
        root = Path(host["root"])
        (root / "srv").mkdir(parents=True, exist_ok=True)
        outside, inside = "%sw%da" % (self.tag, index), "%sw%db" % (self.tag, index)
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "link", "set", inside, "netns", namespace)
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "-n", namespace, "addr", "add", host["address"] + "/24", "dev", inside)
        run("ip", "-n", namespace, "link", "set", inside, "up")
        run("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        netns_etc = Path("/etc/netns") / namespace
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "hosts").write_text(etc_hosts)
        (netns_etc / "resolv.conf").write_text(
            "nameserver %s\noptions timeout:5 attempts:1\n" % gateway
        )
        (netns_etc / "hostname").write_text(host["name"] + "\n")

        host_key = root / "ssh_host_ed25519_key"
        if not host_key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        pidfile = root / "sshd.pid"
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress %s" % host["address"],
                    "HostKey %s" % host_key,
                    "PidFile %s" % pidfile,
                    "AuthorizedKeysFile %s .ssh/authorized_keys" % authorized,
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "LogLevel VERBOSE",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        state["pids"].append(self.start_sshd(index, host))

    def start_sshd(self, index: int, host: dict) -> int:
        """Start the host's sshd (again); returns its pid."""
        root = Path(host["root"])
        pidfile = root / "sshd.pid"
        if pidfile.exists():
            pidfile.unlink()
        # Its own mount and UTS namespace: /srv is this host's directory, the hostname its name,
        # and root's home its own, so a session does not run this machine's shell startup
        # files (a pyenv init adds ~100 ms to every exec, which no real host pays).
        (root / "home").mkdir(exist_ok=True)
        script = (
            "mount --bind %s /srv && mount --bind %s /root && hostname %s && exec /usr/sbin/sshd -f %s -E %s"
            % (
                root / "srv",
                root / "home",
                host["name"],
                root / "sshd_config",
                root / "sshd.log",
            )
        )
        run(
            "ip",
            "netns",
            "exec",
            self.namespace(index),
            "unshare",
            "-m",
            "-u",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        )
        for _attempt in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                return int(pidfile.read_text())
            time.sleep(0.05)
        raise SystemExit(
            "lab: sshd of %s did not start; see %s" % (host["name"], root / "sshd.log")
        )

    def _find(self, name: str) -> tuple:
        state = json.loads(self.state_file.read_text())
        for index, host in enumerate(state["hosts"], start=1):
            if host["name"] == name:
                return index, host, state
        raise SystemExit("lab: no host %s in %s" % (name, self.dir))

    def stop_host_ssh(self, name: str) -> None:
        """A fault: the host stops answering SSH (its sshd and every session are killed)."""
        index = self._find(name)[0]
        for pid in run("ip", "netns", "pids", self.namespace(index), check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)

    def start_host_ssh(self, name: str) -> None:
        index, host, state = self._find(name)
        state["pids"].append(self.start_sshd(index, host))
        self.state_file.write_text(json.dumps(state))

    def _dns_up(self, subnet, hosts, state) -> None:  # type: ignore[no-untyped-def]
        pidfile = self.dir / "dnsmasq.pid"
        records = [
            "--host-record=%s.%s,%s" % (host["name"], DOMAIN, host["address"]) for host in hosts
        ]
        run(
            "dnsmasq",
            "--listen-address=%s.1" % subnet,
            "--bind-interfaces",
            "--port=53",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=%s" % pidfile,
            "--log-facility=%s" % (self.dir / "dnsmasq.log"),
            # Forwarded to an address on the bridge that no host holds: never answered.
            "--server=/%s/%s.250" % (HANG_NAME, subnet),
            *records,
        )
        state["pids"].append(int(pidfile.read_text()))

    def _write_client_files(self, hosts, key) -> None:  # type: ignore[no-untyped-def]
        (self.dir / "hosts.json").write_text(json.dumps(hosts, indent=2))
        lines = ["[web]"]
        for host in hosts:
            lines.append(
                "%s ansible_host=%s ansible_user=root ansible_ssh_private_key_file=%s "
                "ansible_python_interpreter=/usr/bin/python3 "
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"
                % (host["name"], host["address"], key)
            )
        (self.dir / "inventory.ini").write_text("\n".join(lines) + "\n")
        (self.dir / "ssh_config").write_text(
            "".join(
                "Host %s\n  HostName %s\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n"
                "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n\n"
                % (host["name"], host["address"], key)
                for host in hosts
            )
        )

    def _wait_for_ssh(self, hosts, key) -> None:  # type: ignore[no-untyped-def]
        for host in hosts:
            for _attempt in range(100):
                probe = run(
                    "ssh",
                    "-F",
                    str(self.dir / "ssh_config"),
                    "-o",
                    "ConnectTimeout=2",
                    host["name"],
                    "hostname",
                    check=False,
                )
                if probe.returncode == 0 and probe.stdout.strip() == host["name"]:
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(
                    "lab: %s did not answer over SSH: %s" % (host["name"], probe.stderr)
                )

    def down(self, quiet: bool = False) -> None:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        for pid in state.get("pids", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        # Also what a crashed run left without a state file: everything carrying this lab's tag.
        for name in run("ip", "netns", "list", check=False).stdout.split():
            if name.startswith(self.tag + "-"):
                for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
                run("ip", "netns", "delete", name, check=False)
                shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        links = run("ip", "-o", "link", "show", check=False).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(self.tag):
                run("ip", "link", "delete", name, check=False)
        if self.state_file.exists():
            self.state_file.unlink()
        if not quiet:
            print("lab %s is down" % self.dir)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "up" and argv[1].isdigit():
        if os.geteuid() != 0:
            print("lab: needs root (network namespaces, bridges, mounts)", file=sys.stderr)
            return 2
        Lab(argv[2]).up(int(argv[1]))
        print("lab %s is up: %s" % (argv[2], Path(argv[2], "hosts.json")))
        return 0
    if len(argv) == 3 and argv[0] in ("stop-ssh", "start-ssh"):
        lab = Lab(argv[1])
        (lab.stop_host_ssh if argv[0] == "stop-ssh" else lab.start_host_ssh)(argv[2])
        return 0
    if len(argv) == 2 and argv[0] == "down":
        if os.geteuid() != 0:
            print("lab: needs root", file=sys.stderr)
            return 2
        Lab(argv[1]).down()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
