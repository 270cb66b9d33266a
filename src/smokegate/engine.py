"""Where the check engine lives: the collection's module_utils, installed with the wheel.

Controller-side code imports the engine from here, so only this module knows its path.
"""

from __future__ import annotations

import os

from ansible_collections.smokegate.core.plugins.module_utils import (
    probes,
    releases,
    report,
    runner,
    spec,
)

ENGINE_DIR = os.path.dirname(spec.__file__)

__all__ = ["ENGINE_DIR", "probes", "releases", "report", "runner", "spec"]
