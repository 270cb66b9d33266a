"""Where the check engine lives: the collection's module_utils, installed with the wheel.

Controller-side code imports the engine from here; ENGINE_DIR is the one the collection's
plugin_utils/shipping bundles for hosts.
"""

from __future__ import annotations

from ansible_collections.smokegate.core.plugins.module_utils import (
    extract,
    probes,
    protocol,
    releases,
    report,
    runner,
    spec,
    units,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import ENGINE_DIR

__all__ = [
    "ENGINE_DIR",
    "extract",
    "probes",
    "protocol",
    "releases",
    "report",
    "runner",
    "spec",
    "units",
]
