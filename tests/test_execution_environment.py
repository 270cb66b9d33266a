"""An execution environment with smokegate.core: what ansible-builder makes of the collection.

The README's execution-environment.yml goes through ``ansible-builder create``; the build
context it writes is then taken through the steps of its Containerfile that need no
container: the galaxy stage installs the collection from the context, and the builder
stage's introspection merges the requirements the collection declares.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import AWX_SECTION, REPO, readme_files

BIN = Path(sys.executable).parent
# Where the Containerfile's stages keep things, and where this test keeps them instead.
IMAGE_COLLECTIONS = "/usr/share/ansible/collections"
IMAGE_SCRIPTS = "/output/scripts/"
IMAGE_SOURCES = "/tmp/src/"
# What the collection's controller side may import without declaring it: ansible-core and
# what ansible-core itself requires.
ANSIBLE_CORE = {"ansible", "ansible_collections", "jinja2", "yaml"}


def build_collection(directory: Path) -> Path:
    """The collection artifact, as the README builds it (`ansible-galaxy collection build`)."""
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", directory, REPO],
        check=True,
        capture_output=True,
    )
    (tarball,) = directory.glob("smokegate-core-*.tar.gz")
    return tarball


def containerfile_step(containerfile: str, command: str) -> str:
    """The one RUN step of the Containerfile that runs ``command``, without RUN."""
    (step,) = [
        line[4:]
        for line in containerfile.splitlines()
        if line.startswith("RUN ") and command in line
    ]
    return step


def run_step(step: str, cwd: Path, image: dict[str, str], env: dict[str, str]) -> None:
    """A Containerfile step run here, the image's paths replaced by the test's."""
    for image_path, local_path in image.items():
        step = step.replace(image_path, local_path)
    completed = subprocess.run(
        ["sh", "-c", step], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_ansible_builder_create_makes_a_context_that_installs_the_collection(tmp_path: Path):
    ee_dir = tmp_path / "ee"
    tarball = build_collection(ee_dir)
    definition = readme_files(AWX_SECTION)["execution-environment.yml"]
    assert tarball.name in definition, "the README's definition names another version"
    (ee_dir / "execution-environment.yml").write_text(definition)
    created = subprocess.run(
        [BIN / "ansible-builder", "create", "--output-filename", "Containerfile"],
        cwd=ee_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    context = ee_dir / "context"
    build = context / "_build"
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.17 ansible-runner>=2.4"' in containerfile
    assert "COPY _build /build\nWORKDIR /build\n" in containerfile
    assert (build / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    assert yaml.safe_load((build / "requirements.yml").read_text()) == {
        "collections": [{"name": "collections/" + tarball.name, "type": "file"}]
    }

    # The galaxy stage: the collection installed from the context into an image of its own.
    collections = tmp_path / "image" / "collections"
    env = {
        "PATH": "%s:/usr/bin:/bin" % BIN,
        "HOME": str(tmp_path),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",  # not the copy pip installed here
        "ANSIBLE_GALAXY_CLI_COLLECTION_OPTS": "",
        "PYCMD": sys.executable,
    }
    image = {
        IMAGE_COLLECTIONS: str(collections),
        IMAGE_SCRIPTS: "%s/" % (build / "scripts"),
        IMAGE_SOURCES: "%s/" % (tmp_path / "src"),
    }
    run_step(
        containerfile_step(containerfile, "ansible-galaxy collection install"), build, image, env
    )
    installed = collections / "ansible_collections" / "smokegate" / "core"
    assert (installed / "MANIFEST.json").is_file()

    # The builder stage: the requirements of every installed collection, merged.
    introspect = containerfile_step(containerfile, "introspect.py introspect")
    run_step(introspect + " " + IMAGE_COLLECTIONS, build, image, env)
    merged = (tmp_path / "src" / "bindep.txt").read_text().splitlines()
    assert merged == [
        "openssh-clients [platform:rpm]  # from collection smokegate.core",
        "openssh-client [platform:dpkg]  # from collection smokegate.core",
        "hostname [platform:rpm]  # from collection smokegate.core",
    ]
    assert not (tmp_path / "src" / "requirements.txt").exists()  # no Python package needed
    # The assemble step hands that file to bindep, which picks this platform's packages.
    listed = subprocess.run(
        [BIN / "bindep", "--file", tmp_path / "src" / "bindep.txt", "--list_all", "newline"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) <= {"openssh-clients", "openssh-client", "hostname"}
    assert listed.stdout.split()


def third_party_imports(directory: Path) -> set[str]:
    """Top-level modules the Python files under ``directory`` import, less the stdlib's."""
    modules = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__"}


def test_the_controller_side_needs_no_python_package_beyond_ansible_core():
    """What meta/execution-environment.yml says: the EE gets no Python package from the
    collection, because its controller side imports none beyond ansible-core (the engine on
    the hosts is held to the stdlib in test_packaging.py)."""
    declared = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    imported = set()
    for side in ("action", "callback", "filter", "plugin_utils"):
        imported |= third_party_imports(REPO / "plugins" / side)
    assert imported - ANSIBLE_CORE == set(), (
        "declare these in the EE's python requirements (dependencies.python)"
    )
    assert "python" not in declared["dependencies"]
    assert (REPO / declared["dependencies"]["system"]).is_file()
