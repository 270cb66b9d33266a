"""The Molecule scenarios without root: local-connection hosts instead of lab hosts.

The test command runs `molecule test --all` itself (on lab hosts when root, as in CI); this
covers the other way create.yml can bring hosts up, which machines without root take.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_rollback_scenario_passes_on_local_hosts():
    bin_dir = str(Path(sys.executable).parent)
    completed = subprocess.run(
        [os.path.join(bin_dir, "molecule"), "test", "-s", "rollback"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ["PATH"],
            "SMOKEGATE_MOLECULE_HOSTS": "local",
            "ANSIBLE_NOCOLOR": "1",
            "NO_COLOR": "1",
        },
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    # The hosts really were local ones, and every stage of the sequence ran.
    assert re.search(
        r"Write the instance config for local hosts\]\W+changed: \[localhost\]", output
    )
    assert re.search(r"Bring up one lab host per platform\]\W+skipping: \[localhost\]", output)
    for stage in ("create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert "[rollback > %s] Executed: Successful" % stage in output, stage
