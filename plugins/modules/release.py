#!/usr/bin/python
# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Manage release directories, the release ledger and the deploy lock on a host
version_added: 0.1.0
description:
  - Manages a Capistrano-compatible deploy root, C(releases/<id>/), C(shared/) and
    C(current -> releases/<id>), plus a ledger, C(.smokegate/ledger.json), that records which
    release was active before which, and a deploy lock, C(.smokegate/lock).
  - Rollback targets come from the ledger, never from directory names or mtimes. A release
    marked failed is never a rollback target and does not count against O(keep).
  - The switch of C(current) is atomic (a symlink under a temporary name renamed over it).
author:
  - smokegate contributors (@smokegate)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows C(current) and the lock before and after.
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
options:
  root:
    description: The deploy root on the host.
    type: path
    required: true
  state:
    description:
      - V(present) creates O(release) from O(src) or O(archive) (a no-op when it exists).
      - V(active) switches C(current) to O(release) and records the release it replaced.
      - V(good) records that O(release), which must be current, passed its smoke checks.
      - V(rolled_back) abandons O(release) (default the current release) and switches to its
        recorded previous good release, or to O(to). The abandoned release is marked failed.
        Running it again changes nothing.
      - Without O(to) and without a recorded previous good release it fails, naming the
        releases on disk, rather than leave the host without a release; only a deploy
        abandoning its own first release (O(release) given, activated when the host had no
        C(current)) removes C(current), as it was before.
      - V(pruned) removes old releases, keeping the newest O(keep) that did not fail, the
        current one, its rollback target and the newest failed one.
      - V(locked) takes the deploy lock for O(release); a lock held by another release fails
        with the holder's details. V(unlocked) releases it when O(release) (and O(holder), when
        given) holds it, or with O(force).
      - To read the deploy root without changing it, use M(smokegate.core.release_info).
    type: str
    required: true
    choices: [present, active, good, rolled_back, pruned, locked, unlocked]
  release:
    description: Release id (a directory name under C(releases/)).
    type: str
  src:
    description: With O(state=present), a directory on the host whose contents become the release.
    type: path
  archive:
    description: With O(state=present), a C(.tar.gz) on the host whose contents become the release.
    type: path
  shared:
    description:
      - With O(state=present), paths relative to the release that are replaced by links into C(shared/).
      - A path ending in C(/) is a directory and is created in C(shared/) when missing; any
        other path must already exist there.
      - A shared path may not be, or pass through, a symlink of the release.
    type: list
    elements: str
    default: []
  max_unpacked:
    description:
      - With O(state=present) and O(archive), refuse an archive whose contents are larger than
        this (bytes, or a size such as V(500M) or V(2GiB)).
      - Every member is checked before anything is written; absolute names, C(..), links out
        of the release, devices and FIFOs are refused too, an archive that unpacks to more than
        200 times its size (past 256 MiB) is refused as a decompression bomb, and so is one that
        does not fit in the free space or inodes of the filesystem.
    type: str
    default: 20GiB
  to:
    description: With O(state=rolled_back), the release to switch to instead of the recorded one.
    type: str
  reason:
    description: With O(state=rolled_back), why the abandoned release failed (kept in the ledger).
    type: str
    default: rolled back
  keep:
    description: With O(state=pruned), how many releases that did not fail to keep.
    type: int
    default: 5
  holder:
    description:
      - With O(state=locked), who holds the lock (shown to anyone refused); C(smokegate) when
        not given. Give each run a holder of its own (the playbooks add a run id), so that a
        retried run can neither take nor release another run's lock.
      - With O(state=unlocked), release the lock only if this holder holds it.
    type: str
  pid:
    description: With O(state=locked), the process id of the deploy on the controller.
    type: int
  force:
    description: With O(state=unlocked), remove the lock whoever holds it (a stuck lock).
    type: bool
    default: false
seealso:
  - module: smokegate.core.release_info
  - module: smokegate.core.smoke
"""

EXAMPLES = r"""
- name: Take the deploy lock for the new release
  smokegate.core.release:
    root: /srv/app
    release: "20261121T120000Z"
    holder: deploy@ci1
    state: locked

- name: Create the release from an archive already on the host, with logs/ kept in shared/
  smokegate.core.release:
    root: /srv/app
    release: "20261121T120000Z"
    archive: /tmp/app-20261121T120000Z.tar.gz
    shared: [logs/]
    state: present

- name: Switch current to it
  smokegate.core.release:
    root: /srv/app
    release: "20261121T120000Z"
    state: active

- name: Record that it passed its smoke checks
  smokegate.core.release:
    root: /srv/app
    release: "20261121T120000Z"
    state: good

- name: Release the deploy lock
  smokegate.core.release:
    root: /srv/app
    release: "20261121T120000Z"
    state: unlocked

- name: Remove old releases, keeping the newest three that did not fail
  smokegate.core.release:
    root: /srv/app
    keep: 3
    state: pruned

- name: Go back to the recorded previous good release
  smokegate.core.release:
    root: /srv/app
    reason: manual rollback
    state: rolled_back
"""

RETURN = r"""
root:
  description: The deploy root.
  returned: always
  type: str
  sample: /srv/app
current:
  description: The current release after the operation, or null when there is none.
  returned: always
  type: str
  sample: "20261121T120000Z"
previous_current:
  description: The current release before the operation.
  returned: always
  type: str
  sample: "20261120T090000Z"
rollback_target:
  description: The release a rollback from the current one would go to.
  returned: always
  type: str
  sample: "20261120T090000Z"
releases:
  description:
    - Every release the ledger knows (oldest first) and any unknown directory.
    - The fields of each are those of RV(smokegate.core.release_info#module:releases).
  returned: always
  type: list
  elements: dict
  sample:
    - {id: "20261121T120000Z", state: good, current: true, present: true,
       created_at: "2026-11-21T12:00:03Z", activated_at: "2026-11-21T12:00:04Z",
       previous: "20261120T090000Z", seq: 2, failed_at: null, reason: null}
lock:
  description: The lock holder after the operation, or null.
  returned: always
  type: dict
  sample: {holder: deploy@ci1, pid: 4242, host: web1, since: "2026-11-21T12:00:00Z", release: "20261121T120000Z"}
removed:
  description: Release ids removed by O(state=pruned).
  returned: when O(state=pruned)
  type: list
  elements: str
  sample: ["20261101T090000Z"]
abandoned:
  description: The release given up by O(state=rolled_back).
  returned: when O(state=rolled_back)
  type: str
  sample: "20261121T120000Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smokegate.core.plugins.module_utils.protocol import MAX_UNPACKED
from ansible_collections.smokegate.core.plugins.module_utils.releases import (
    DeployRoot,
    ReleaseError,
    failure,
)

NEEDS_RELEASE = ("present", "active", "good", "locked")


def _snapshot(root: DeployRoot) -> dict:
    return {"current": root.current(), "lock": root.lock_holder()}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "required": True,
                "choices": [
                    "present",
                    "active",
                    "good",
                    "rolled_back",
                    "pruned",
                    "locked",
                    "unlocked",
                ],
            },
            "release": {"type": "str"},
            "src": {"type": "path"},
            "archive": {"type": "path"},
            "shared": {"type": "list", "elements": "str", "default": []},
            "max_unpacked": {"type": "str", "default": MAX_UNPACKED},
            "to": {"type": "str"},
            "reason": {"type": "str", "default": "rolled back"},
            "keep": {"type": "int", "default": 5},
            "holder": {"type": "str"},
            "pid": {"type": "int"},
            "force": {"type": "bool", "default": False},
        },
        required_if=[("state", state_name, ["release"]) for state_name in NEEDS_RELEASE]
        + [("state", "present", ["src", "archive"], True)],
        mutually_exclusive=[("src", "archive")],
        supports_check_mode=True,
    )
    params = module.params
    root = DeployRoot(params["root"])
    dry_run = module.check_mode
    state, release = params["state"], params["release"]
    extra: dict = {}
    try:
        before = _snapshot(root)
        predicted = dict(before)  # what check mode reports as "after"
        if state == "present":
            changed = root.create(
                release,
                src=params["src"],
                archive=params["archive"],
                shared=params["shared"],
                max_unpacked=params["max_unpacked"],
                dry_run=dry_run,
            )
        elif state == "active":
            changed = root.activate(release, dry_run=dry_run)
            predicted["current"] = release
        elif state == "good":
            changed = root.mark_good(release, dry_run=dry_run)
        elif state == "rolled_back":
            outcome = root.rollback(
                release=release, to=params["to"], reason=params["reason"], dry_run=dry_run
            )
            changed = outcome["changed"]
            extra["abandoned"] = outcome["abandoned"]
            predicted["current"] = outcome["to"]
        elif state == "pruned":
            extra["removed"] = root.prune(params["keep"], dry_run=dry_run)
            changed = bool(extra["removed"])
        elif state == "locked":
            holder = params["holder"] or "smokegate"
            changed = root.lock(release, holder, pid=params["pid"], dry_run=dry_run)
            predicted["lock"] = before["lock"] or {"holder": holder, "release": release}
        else:  # unlocked
            changed = root.unlock(
                release, holder=params["holder"], force=params["force"], dry_run=dry_run
            )
            predicted["lock"] = None if changed else before["lock"]
        info = root.info()
    except (ReleaseError, OSError) as exc:
        module.fail_json(**failure(exc, params["root"]))

    after = predicted if dry_run else _snapshot(root)
    result = dict(info, changed=changed, previous_current=before["current"], **extra)
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
