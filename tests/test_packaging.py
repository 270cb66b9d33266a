"""The wheel is both the Python package and the Ansible collection smokegate.core."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

import smokegate
from smokegate.engine import ENGINE_DIR


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(outdir),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = outdir.glob("smokegate-*.whl")
    return built


def test_wheel_carries_the_collection_and_declares_its_dependencies(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("smokegate-%s.dist-info/METADATA" % smokegate.__version__).decode()
    collection = "ansible_collections/smokegate/core/"
    for required in (
        "galaxy.yml",
        "meta/runtime.yml",
        "plugins/module_utils/spec.py",
        "plugins/module_utils/runner.py",
    ):
        assert collection + required in names, required
    assert "smokegate/cli.py" in names
    assert not [name for name in names if "__pycache__" in name]
    requires = {
        line.split()[1].split(">")[0]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert {name.lower() for name in requires} == {
        "ansible-core",
        "fabric",
        "paramiko",
        "psutil",
        "pyyaml",
    }


def test_galaxy_version_matches_the_package_version():
    galaxy = (REPO / "galaxy.yml").read_text()
    assert "version: %s\n" % smokegate.__version__ in galaxy


def test_a_fresh_venv_imports_the_engine_from_the_collection_path(wheel: Path, tmp_path: Path):
    # --no-deps: the engine and a JSON spec must need nothing beyond the stdlib,
    # which also exercises the statvfs and mountinfo fallbacks (no psutil here).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    imported = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util, sys\n"
            "from ansible_collections.smokegate.core.plugins.module_utils import runner, spec\n"
            "assert importlib.util.find_spec('psutil') is None\n"
            "report = runner.run_checks(spec.parse_spec([{'name': 'root', 'mount': {'path': '/'}}]))\n"
            "print(report['results'][0]['status'], runner.__file__)\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    status, location = imported.stdout.split()
    assert status == "pass"
    assert location.startswith(str(env_dir))
    assert "site-packages/ansible_collections/smokegate/core/plugins/module_utils/" in location

    spec_file = tmp_path / "smoke.json"
    spec_file.write_text(
        json.dumps(
            {
                "checks": [
                    {
                        "name": "space",
                        "disk": {"path": "/", "min_free": "1M", "min_free_inodes_percent": 1},
                    }
                ]
            }
        )
    )
    completed = subprocess.run(
        [env_dir / "bin" / "smokegate", "check", "-f", str(spec_file), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["ok"] is True


def test_ansible_finds_the_installed_collection_without_configuration():
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    completed = subprocess.run(
        [galaxy, "collection", "list", "smokegate.core"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert completed.returncode == 0, completed.stderr
    assert "smokegate.core" in completed.stdout


@pytest.mark.parametrize("module", ["units", "spec", "probes", "checks", "runner", "report"])
def test_engine_docstring_examples_run(module: str):
    import importlib

    loaded = importlib.import_module(
        "ansible_collections.smokegate.core.plugins.module_utils." + module
    )
    result = doctest.testmod(loaded)
    assert result.attempted > 0
    assert result.failed == 0


def test_engine_imports_nothing_from_ansible():
    for path in Path(ENGINE_DIR).glob("*.py"):
        text = path.read_text()
        assert "import ansible" not in text and "from ansible" not in text, path
