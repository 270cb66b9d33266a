# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A systemd unit's state, read with ``systemctl show`` (no D-Bus library needed).

>>> state = parse_show("Id=nginx.service\\nLoadState=loaded\\nActiveState=active\\n"
...                    "SubState=running\\nUnitFileState=enabled\\nNRestarts=2\\n"
...                    "ActiveEnterTimestampMonotonic=5000000\\n", monotonic_now=65.0)
>>> state.active_state, state.uptime, state.restarts, state.enabled
('active', 60.0, 2, True)
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "NRestarts",
    "ActiveEnterTimestampMonotonic",
)
# The unit file states for which `systemctl is-enabled` succeeds.
ENABLED_STATES = ("enabled", "enabled-runtime", "alias", "static", "indirect", "generated")


class ServiceState(NamedTuple):
    unit: str
    load_state: str  # loaded, not-found, masked, bad-setting, error
    active_state: str  # active, inactive, failed, activating, deactivating, reloading
    sub_state: str  # running, exited, dead, auto-restart, ...
    unit_file_state: str  # enabled, disabled, static, masked, ... ("" without a unit file)
    uptime: Optional[float]  # seconds since it last became active; None unless active
    restarts: Optional[int]  # automatic restarts (NRestarts); None for other unit types

    @property
    def enabled(self) -> bool:
        return self.unit_file_state in ENABLED_STATES


def parse_show(text: str, monotonic_now: float) -> ServiceState:
    """``systemctl show --property=...`` output (KEY=VALUE lines) as a ServiceState.

    ``monotonic_now`` is CLOCK_MONOTONIC in seconds (time.monotonic() on Linux), the clock
    of systemd's ...TimestampMonotonic properties.
    """
    values: Dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if separator:
            values[key] = value
    if "ActiveState" not in values or "LoadState" not in values:
        raise ValueError("systemctl show printed no unit state")
    entered = values.get("ActiveEnterTimestampMonotonic", "0")
    restarts = values.get("NRestarts", "")
    uptime = None
    if values["ActiveState"] == "active" and entered.isdigit() and int(entered) > 0:
        uptime = max(0.0, monotonic_now - int(entered) / 1e6)
    return ServiceState(
        unit=values.get("Id", ""),
        load_state=values["LoadState"],
        active_state=values["ActiveState"],
        sub_state=values.get("SubState", ""),
        unit_file_state=values.get("UnitFileState", ""),
        uptime=uptime,
        restarts=int(restarts) if restarts.isdigit() else None,
    )
