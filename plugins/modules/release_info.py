#!/usr/bin/python
# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: Read the releases, the current release, the rollback target and the deploy lock of a host
version_added: 0.2.0
description:
  - Reads a deploy root managed by M(smokegate.core.release) and changes nothing.
  - The rollback target is the release a rollback from the current one would go to, found in
    the ledger, C(.smokegate/ledger.json), by walking back past failed and removed releases.
  - A deploy root that does not exist yet reads as empty, with no current release.
author:
  - smokegate contributors (@smokegate)
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
options:
  root:
    description: The deploy root on the host.
    type: path
    required: true
seealso:
  - module: smokegate.core.release
"""

EXAMPLES = r"""
- name: Read the releases of the app
  smokegate.core.release_info:
    root: /srv/app
  register: app_releases

- name: Stop while another deploy holds the host
  ansible.builtin.assert:
    that: app_releases.lock is none
    fail_msg: "another deploy holds the host: {{ app_releases.lock }}"

- name: Show where a rollback would go
  ansible.builtin.debug:
    msg: "current {{ app_releases.current }}, rollback target {{ app_releases.rollback_target }}"
"""

RETURN = r"""
root:
  description: The deploy root, as an absolute path.
  returned: always
  type: str
  sample: /srv/app
current:
  description: The release C(current) points to, or null when there is none.
  returned: always
  type: str
  sample: "20261121T120000Z"
rollback_target:
  description: The release a rollback from the current one would go to, or null when there is none.
  returned: always
  type: str
  sample: "20261120T090000Z"
releases:
  description:
    - Every release the ledger knows, oldest first, then every directory under C(releases/)
      the ledger does not know (with only RV(releases[].id), RV(releases[].state),
      RV(releases[].current) and RV(releases[].present)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The release id, its directory name under C(releases/).
      type: str
      sample: "20261121T120000Z"
    state:
      description:
        - V(staged) (created, never current), V(deployed) (made current, not yet marked good),
          V(good) (passed its smoke checks, or adopted), V(failed) (abandoned; never a rollback
          target), or V(unrecorded) (a directory the ledger does not know; listed, a valid
          explicit rollback target, never chosen by itself).
      type: str
      choices: [staged, deployed, good, failed, unrecorded]
      sample: good
    current:
      description: Whether C(current) points to this release.
      type: bool
      sample: true
    present:
      description: Whether the release directory exists (false once pruned or removed).
      type: bool
      sample: true
    seq:
      description: Order in which the ledger learnt of the release (0 for a release it learnt of late).
      type: int
      sample: 2
    created_at:
      description: When the release was created (UTC), or null.
      type: str
      sample: "2026-11-21T12:00:03Z"
    activated_at:
      description: When the release was last made current (UTC), or null.
      type: str
      sample: "2026-11-21T12:00:04Z"
    previous:
      description: The release that was current when this one was made current, or null.
      type: str
      sample: "20261120T090000Z"
    failed_at:
      description: When the release was marked failed (UTC), or null.
      type: str
      sample: null
    reason:
      description: Why the release was marked failed, or null.
      type: str
      sample: null
    adopted_at:
      description:
        - When the ledger adopted this release (UTC). It was current when smokegate first met
          the deploy root (a tree Capistrano or ansistrano left) and is recorded as good.
      returned: for an adopted release
      type: str
      sample: "2026-11-21T12:00:00Z"
lock:
  description: The deploy lock's holder, or null when the host is not locked.
  returned: always
  type: dict
  contains:
    holder:
      description: Who holds the lock.
      type: str
      sample: deploy@ci1
    pid:
      description: The process id of the deploy on the controller, or null.
      type: int
      sample: 4242
    host:
      description: The host name of the machine the lock was taken on.
      type: str
      sample: web1
    since:
      description: When the lock was taken (UTC).
      type: str
      sample: "2026-11-21T12:00:00Z"
    release:
      description: The release being deployed under the lock.
      type: str
      sample: "20261121T120000Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smokegate.core.plugins.module_utils.releases import (
    DeployRoot,
    ReleaseError,
    failure,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"root": {"type": "path", "required": True}},
        supports_check_mode=True,
    )
    try:
        info = DeployRoot(module.params["root"]).info()
    except (ReleaseError, OSError) as exc:
        module.fail_json(**failure(exc, module.params["root"]))
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
