"""The benchmark's smoke spec as testinfra tests: one test per check, run on every --hosts host.

    SMOKEGATE_BENCH_SPEC=smoke.json py.test -p no:cacheprovider -q bench/testinfra_checks.py \
        --hosts=paramiko://root@web1,paramiko://root@web2 --ssh-config=ssh_config

Written with testinfra's own modules where it has one (mount_point, file, environment, addr)
and host.run otherwise, as testinfra suites usually are: each property read is a remote command.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

SPEC = os.environ.get("SMOKEGATE_BENCH_SPEC")
if not SPEC:
    pytest.skip("set SMOKEGATE_BENCH_SPEC to the spec file", allow_module_level=True)
CHECKS = json.loads(Path(SPEC).read_text())["checks"]
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def of_type(kind: str) -> list:
    return [pytest.param(check[kind], id=check["name"]) for check in CHECKS if kind in check]


def size(text: str | int) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", str(text)).groups()
    return int(number) * UNITS[unit.upper()]


@pytest.mark.parametrize("check", of_type("mount"))
def test_mount(host, check):
    mount = host.mount_point(check["path"])
    assert mount.exists
    if "fstype" in check:
        wanted = check["fstype"] if isinstance(check["fstype"], list) else [check["fstype"]]
        assert mount.filesystem in wanted
    assert set(check.get("options", [])) <= set(mount.options)
    if check.get("writable"):
        assert host.run('t=$(mktemp -p %s) && rm "$t"' % check["path"]).rc == 0


@pytest.mark.parametrize("check", of_type("disk"))
def test_disk(host, check):
    output = host.check_output("df -B1 --output=avail,size,ipcent %s" % check["path"])
    avail, total, inodes_used = output.splitlines()[-1].split()
    if "min_free" in check:
        assert int(avail) >= size(check["min_free"])
    if "min_free_percent" in check:
        assert 100 * int(avail) / int(total) >= check["min_free_percent"]
    if "min_free_inodes_percent" in check:
        used = 0 if inodes_used == "-" else int(inodes_used.rstrip("%"))
        assert 100 - used >= check["min_free_inodes_percent"]


@pytest.mark.parametrize("check", of_type("env"))
def test_env(host, check):
    if "file" in check:
        pairs = dict(
            line.split("=", 1)
            for line in host.file(check["file"]).content_string.splitlines()
            if "=" in line
        )
        value = pairs.get(check["name"], "")
    else:
        value = host.environment().get(check["name"], "")
    assert value
    assert re.search(check.get("pattern", ""), value)


@pytest.mark.parametrize("check", of_type("binary"))
def test_binary(host, check):
    run = host.run("%s %s 2>&1" % (check["name"], " ".join(check.get("args", ["--version"]))))
    assert run.rc == 0
    if "version" in check:
        version = re.search(r"\d+(\.\d+)+", run.stdout).group(0)
        assert version in SpecifierSet(check["version"])


@pytest.mark.parametrize("check", of_type("dns"))
def test_dns(host, check):
    address = host.addr(check["name"])
    assert address.is_resolvable
    assert set(check.get("addresses", [])) <= set(address.ip_addresses)


@pytest.mark.parametrize("check", of_type("tcp"))
def test_tcp(host, check):
    assert host.addr(check["host"]).port(check["port"]).is_reachable
