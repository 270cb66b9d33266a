"""The wheel is both the Python package and the Ansible collection smokegate.core."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
import tarfile
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
        "meta/execution-environment.yml",
        "meta/ee-bindep.txt",
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
        check=False,
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
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "smokegate.core" in completed.stdout


@pytest.mark.parametrize(
    "module",
    [
        "units",
        "urls",
        "spec",
        "probes",
        "matcher",
        "procfs",
        "systemd",
        "certs",
        "configs",
        "jsonpath",
        "checks",
        "runner",
        "report",
        "argspec",
        "releases",
        "extract",
        "protocol",
        "stages",
        "agent",
    ],
)
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


def test_galaxy_artifact_installs_and_runs_the_smoke_module_and_role(tmp_path: Path):
    """The collection as Galaxy users get it: built, installed into a collections path of its
    own, and run with ansible told to look nowhere else (not at the copy pip installed)."""
    bin_dir = Path(sys.executable).parent
    built = tmp_path / "built"
    subprocess.run(
        [bin_dir / "ansible-galaxy", "collection", "build", "--output-path", built, REPO],
        check=True,
        capture_output=True,
    )
    (tarball,) = built.glob("smokegate-core-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for wanted in (
        "plugins/modules/smoke.py",
        "roles/smoke/tasks/main.yml",
        "meta/runtime.yml",
        "meta/execution-environment.yml",
        "meta/ee-bindep.txt",
        "playbooks/rolling_deploy.yml",
        "docs/checks.md",
        "CHANGELOG.md",
    ):
        assert wanted in names, wanted
    assert not [
        name for name in names if name.split("/")[0] in ("src", "tests", "scripts", ".venv")
    ]

    collections = tmp_path / "collections"
    # Only this collections path: ansible must not see the copy pip installed.
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
    }
    subprocess.run(
        [bin_dir / "ansible-galaxy", "collection", "install", "-p", collections, tarball],
        check=True,
        capture_output=True,
        env=env,
    )
    installed = collections / "ansible_collections" / "smokegate" / "core"
    assert (installed / "MANIFEST.json").is_file()

    env_file = tmp_path / "app.env"
    env_file.write_text("APP_TOKEN=galaxy-secret-value\n")
    playbook = tmp_path / "smoke.yml"
    playbook.write_text(
        f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The module, straight
      smokegate.core.smoke:
        checks:
          - {{name: root, mount: {{path: /}}}}
          - {{name: token, env: {{name: APP_TOKEN, file: {env_file}}}}}
      register: direct
    - name: The role
      ansible.builtin.include_role:
        name: smokegate.core.smoke
      vars:
        smokegate_checks: [{{name: python, binary: {{name: {sys.executable}, version: ">=3.9"}}}}]
    - name: Both ran from the installed artifact
      ansible.builtin.assert:
        that:
          - direct.smoke.ok and direct.smoke.summary.passed == 2
          - smoke_result.smoke.ok and smoke_result.smoke.summary.passed == 1
"""
    )
    completed = subprocess.run(
        [
            bin_dir / "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            playbook,
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-v",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert str(installed) in completed.stdout  # -v names where the role came from
    assert "galaxy-secret-value" not in completed.stdout + completed.stderr
