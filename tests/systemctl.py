"""A stand-in `systemctl` that answers `systemctl show` as systemd 252 prints it.

No systemd runs where the tests run, and none may be booted for them (its tmpfiles service
would empty the machine's /tmp), so the service check's reading of `systemctl show` is
tested end to end through this program on PATH.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

# `systemctl show --property=Id,LoadState,ActiveState,SubState,UnitFileState,NRestarts,
# ActiveEnterTimestampMonotonic UNIT` as systemd 252 prints it: the service's own
# properties first, then the unit's. {entered} is replaced by a CLOCK_MONOTONIC timestamp.
SHOW = {
    "nginx.service": """\
        NRestarts=0
        Id=nginx.service
        LoadState=loaded
        ActiveState=active
        SubState=running
        UnitFileState=enabled
        ActiveEnterTimestampMonotonic={entered_an_hour_ago}
        """,
    "worker.service": """\
        NRestarts=14
        Id=worker.service
        LoadState=loaded
        ActiveState=active
        SubState=running
        UnitFileState=enabled
        ActiveEnterTimestampMonotonic={entered_just_now}
        """,
    "crashing.service": """\
        NRestarts=5
        Id=crashing.service
        LoadState=loaded
        ActiveState=activating
        SubState=auto-restart
        UnitFileState=disabled
        ActiveEnterTimestampMonotonic=0
        """,
    "broken.service": """\
        NRestarts=0
        Id=broken.service
        LoadState=loaded
        ActiveState=failed
        SubState=failed
        UnitFileState=enabled
        ActiveEnterTimestampMonotonic=0
        """,
    "masked.service": """\
        NRestarts=0
        Id=masked.service
        LoadState=masked
        ActiveState=inactive
        SubState=dead
        UnitFileState=masked
        ActiveEnterTimestampMonotonic=0
        """,
}
NOT_FOUND = """\
    NRestarts=0
    Id={unit}
    LoadState=not-found
    ActiveState=inactive
    SubState=dead
    UnitFileState=
    ActiveEnterTimestampMonotonic=0
    """

STAND_IN = '''\
#!{python}
"""systemctl show, as systemd 252 answers it, for the units of this test."""
import sys, time
shows = {shows!r}
assert sys.argv[1] == "show" and sys.argv[2].startswith("--property=") and sys.argv[3] == "--", sys.argv
unit = sys.argv[4]
now = int(time.monotonic() * 1e6)
text = shows.get(unit, {not_found!r}.replace("{{unit}}", unit))
print(text.replace("{{entered_an_hour_ago}}", str(now - 3600 * 10**6))
          .replace("{{entered_just_now}}", str(now - 4 * 10**6)), end="")
'''


def install(directory: Path) -> Path:
    """Write the stand-in as ``directory``/systemctl; returns its path."""
    directory.mkdir(exist_ok=True)
    program = directory / "systemctl"
    shows = {unit: textwrap.dedent(text) for unit, text in SHOW.items()}
    program.write_text(
        STAND_IN.format(python=sys.executable, shows=shows, not_found=textwrap.dedent(NOT_FOUND))
    )
    program.chmod(0o755)
    return program
