"""smokegate's Fabric tasks: ``fab --list``; ``fab --help deploy``.

fabric.yaml beside this file selects the executor that gives each task the whole -H list.
"""

from smokegate.fabric.tasks import deploy, releases, rollback, smoke

__all__ = ["deploy", "releases", "rollback", "smoke"]
