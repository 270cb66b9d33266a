#!/usr/bin/python
# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stages
short_description: Run deploy stages on a host in one request (unpack, switch, restart, smoke-check, record good; or roll back)
version_added: 0.3.0
description:
  - Runs the given O(stages) of a deploy or a rollback on the host, in order, in one process,
    as the C(smokegate.core.rolling_deploy) and C(smokegate.core.rollback) playbooks and
    C(fab deploy) do; the first stage that fails stops the rest.
  - "Deploy stages: V(create) (unpack the uploaded O(artifact) as O(release), link
    O(shared) paths), V(activate) (switch C(current)), V(restart) (run O(restart_command) when
    the switch changed something), V(smoke) (run the checks, when there are any), V(good) (record the release as
    good). With pipelining the action uploads O(artifact) once and runs them all in one exec,
    without Ansible's module wrapper."
  - "V(bake) (after V(smoke), the checks again every O(bake_interval) until O(bake) seconds
    after the first pass; every round is returned) and V(baseline) (the checks on the release
    that is current now, reporting which already fail; it never fails itself)."
  - "Other stages: V(lock) and V(unlock) (the deploy lock, for O(release) and O(holder)),
    V(rollback) (abandon O(release), default the current one, for the recorded previous good
    release or O(to); then V(restart) runs when it changed something, V(smoke) while there is a
    current release, and the stages after a failed one still run), V(prune) (keep O(keep)
    releases), V(discard) (remove an O(upload) a failed deploy left)."
  - Every stage's outcome is returned in RV(steps); the smoke report in RV(smoke), where the
    C(smokegate.core.smoke_report) callback finds it.
author:
  - smokegate contributors (@smokegate)
attributes:
  check_mode:
    support: full
    details: Each stage reports what it would change and changes nothing; no restart runs.
  diff_mode:
    support: full
    details: Shows C(current) and the lock before and after.
  platform:
    platforms: posix
  action:
    support: full
    details: The action plugin uploads O(artifact), reads O(checks_file) and ships the engine.
  async:
    support: none
  bypass_host_loop:
    support: none
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.flow
options:
  root:
    description: The deploy root on the host.
    type: path
    required: true
  stages:
    description: The stages to run, in this order.
    type: list
    elements: str
    required: true
    choices: [lock, baseline, create, activate, restart, smoke, bake, good, rollback, prune, unlock, discard]
  release:
    description:
      - The release id; V(rollback) abandons it (only where it is current; it is marked failed
        everywhere), default the current release.
    type: str
  artifact:
    description:
      - A C(.tar.gz) on the controller whose contents become the release (V(create)). The
        action uploads it once, under a name nobody can guess, and the engine removes it.
    type: path
  archive:
    description: A C(.tar.gz) already on the host, instead of O(artifact).
    type: path
  shared:
    description: With V(create), paths of the release linked into C(shared/) (a trailing C(/) creates a directory).
    type: list
    elements: str
    default: []
  max_unpacked:
    description: With V(create), refuse an artifact whose contents are larger (see M(smokegate.core.release)).
    type: str
    default: 20GiB
  restart_command:
    description: With V(restart), the shell command run in the current release.
    type: str
  restart_timeout:
    description: Seconds the restart command may take; past that it is killed with what it started.
    type: float
    default: 300
  checks:
    description:
      - With V(smoke), the checks (see M(smokegate.core.smoke) for every type and field).
      - Header values and URL credentials are masked in everything returned.
    type: list
    elements: dict
  checks_file:
    description: With V(smoke), a spec file on the controller, read and templated by the action.
    type: path
  host:
    description:
      - With V(smoke), the host's name as the checks know it (C({host}) in a prometheus query)
        and as the smoke report names it.
      - The action plugin sets it to the host's C(inventory_hostname) unless it is given.
    type: str
  budget:
    description:
      - With V(smoke), seconds the checks should take at most; a slower run warns and never
        fails for that. The action takes it from the top-level C(budget) of O(checks_file).
    type: float
  holder:
    description: With V(lock) and V(unlock), who holds the lock (a run of its own).
    type: str
  to:
    description: With V(rollback), the release to switch to instead of the recorded one.
    type: str
  reason:
    description: With V(rollback), why the abandoned release failed (kept in the ledger).
    type: str
    default: rolled back by hand
  keep:
    description: With V(prune), how many releases that did not fail to keep.
    type: int
    default: 5
  upload:
    description: With V(discard), the upload a deploy left on the host.
    type: str
  bake:
    description:
      - With V(bake), seconds to keep checking after the smoke stage passed; the checks run
        again every O(bake_interval), and the first round in which a critical check fails
        fails the stage. 0 leaves the stage out.
    type: float
    default: 0
  bake_interval:
    description: With V(bake), seconds between rounds.
    type: float
    default: 10
  preexisting:
    description:
      - With V(smoke) and V(bake), checks that already failed on this host before the deploy
        (what V(baseline) found). Reported C(preexisting), they do not judge the release.
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - V(critical) fails the task when a critical check of the V(smoke) stage does not pass.
      - V(never) only reports it (a verification whose outcome a summary reports); a failed
        stage of any other kind still fails the task.
    type: str
    choices: [critical, never]
    default: critical
seealso:
  - module: smokegate.core.release
  - module: smokegate.core.smoke
"""

EXAMPLES = r"""
- name: Upload the artifact once, then unpack, switch, smoke-check and record it, in one request
  smokegate.core.stages:
    root: /srv/app
    release: "20261121T120000Z"
    artifact: /tmp/app-20261121T120000Z.tar.gz
    stages: [create, activate, restart, smoke, good]
    checks:
      - name: app health
        http: {url: "http://127.0.0.1:8000/healthz", body: ok}

- name: Roll it back, verify with the spec and release its deploy lock, in one request
  smokegate.core.stages:
    root: /srv/app
    release: "20261121T120000Z"
    stages: [rollback, restart, smoke, unlock]
    reason: failed the smoke gate of its rolling deploy
    checks_file: smoke.yml
"""

RETURN = r"""
steps:
  description: Each stage that ran, in order, with its outcome.
  returned: always
  type: list
  elements: dict
  sample:
    - {stage: create, ok: true, changed: true}
    - {stage: activate, ok: true, changed: true}
    - {stage: smoke, ok: true}
smoke:
  description: The smoke report, when V(smoke) ran (see M(smokegate.core.smoke)).
  returned: when the smoke stage ran
  type: dict
current:
  description: The current release after the request, or null.
  returned: always
  type: str
  sample: "20261121T120000Z"
releases:
  description: The releases on the host, as M(smokegate.core.release_info) returns them.
  returned: always
  type: list
  elements: dict
lock:
  description: The deploy lock's holder after the request, or null.
  returned: always
  type: dict
rollback_target:
  description: The release a rollback from the current one would go to, or null.
  returned: always
  type: str
preexisting:
  description: The checks the V(baseline) stage found failing on the current release.
  returned: when the baseline stage ran
  type: list
  elements: str
  sample: [payments url]
upload:
  description: Where the action uploaded O(artifact) on the host (removed once unpacked).
  returned: when O(artifact) was uploaded
  type: str
  sample: /srv/app/.smokegate/upload-20261121T120000Z-3f9a2c1b7d4e5f60.tar.gz
msg:
  description: What the request did, stage by stage, or why it stopped.
  returned: always
  type: str
  sample: unpacked, switched, restarted, smoke ok (2/2 passed), recorded good
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smokegate.core.plugins.module_utils.agent import handle
from ansible_collections.smokegate.core.plugins.module_utils.stages import (
    STAGES_ARGUMENT_SPEC,
    answer_result,
    build_request,
    secrets_in,
)


def main() -> None:
    module = AnsibleModule(argument_spec=STAGES_ARGUMENT_SPEC, supports_check_mode=True)
    # Masked in everything returned from here on, failures and the invocation included.
    module.no_log_values.update(secrets_in(module.params["checks"]))
    request, problem = build_request(module.params, check_mode=module.check_mode)
    if problem:
        module.fail_json(msg=problem)
    result = answer_result(handle(request), module.params["fail_on"], diff=module._diff)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
