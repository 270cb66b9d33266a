# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""smokegate.core.deploy_summary: the summary of a halted rolling deploy, the same lines
``fab deploy`` prints (the protocol's outcome classifier)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.smokegate.core.plugins.module_utils import protocol
from ansible_collections.smokegate.core.plugins.plugin_utils.host_records import (
    baseline_report,
    record,
)

DOCUMENTATION = r"""
name: deploy_summary
short_description: The summary of a halted rolling deploy, one line per outcome
version_added: "0.3.0"
description:
  - Classifies every host of a rolling deploy from its facts (the lock, the batch requests
    and the rollback registered by C(smokegate.core.rolling_deploy)) as C(FAILED),
    C(UNREACHABLE), C(NOT LOCKED), C(ROLLED BACK), C(NOT ROLLED BACK), C(UNCHANGED),
    C(KEPT) or C(UNTOUCHED), with the reasons. These are the lines C(fab deploy) prints.
  - A deploy that went out except on hosts rolled back within the failure budget gets the
    lines that say where it is live and which hosts were C(ROLLED BACK (tolerated)); one
    refused by its baseline names each check C(ALREADY FAILING) before it.
options:
  _input:
    description: The hosts of the play, in order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
  release:
    description: The release of the run.
    type: str
    required: true
  root:
    description: The deploy root.
    type: str
    required: true
  scope:
    description: The rollback scope, V(all) or V(failed).
    type: str
    default: all
  recovery:
    description:
      - The command that finishes the rollback of hosts that did not answer, with
        C({hosts}) where their names go.
    type: str
    default: ""
  baseline:
    description: The baseline mode, V(refuse), V(ignore) or V(off).
    type: str
    default: refuse
"""

EXAMPLES = r"""
- name: Fail the run with what went wrong and what was rolled back
  ansible.builtin.fail:
    msg: >-
      {{ ansible_play_hosts_all | smokegate.core.deploy_summary(hostvars, smokegate_release,
         smokegate_deploy_root, 'all') }}
"""

RETURN = r"""
_value:
  description: The summary's lines.
  type: list
  elements: str
"""


def deploy_summary(
    hosts: List[str],
    hostvars: Dict[str, Any],
    release: str,
    root: str,
    scope: str = "all",
    recovery: str = "",
    baseline: str = protocol.BASELINE_DEFAULT,
) -> List[str]:
    records = [record(host, hostvars[host]) for host in hosts]
    if not any(item.started for item in records):
        found = [(host, baseline_report(hostvars[host])) for host in hosts]
        failing = [(host, report) for host, report in found if protocol.preexisting(report)]
        if baseline == "refuse" and failing:
            return protocol.baseline_refusal(release, failing)
    halted = any(
        (item.started and not item.verified and not item.tolerated)
        or (not item.started and item.locked is not None)
        for item in records
    )
    if not halted:
        return protocol.live_summary(release, records)

    def recover(stranded: List[str]) -> str:
        return recovery.replace("{hosts}", ",".join(stranded))

    return protocol.summary(release, records, root, scope, recover if recovery else None)


class FilterModule:
    def filters(self) -> dict:
        return {"deploy_summary": deploy_summary}
