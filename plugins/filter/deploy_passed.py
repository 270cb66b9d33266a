# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""smokegate.core.deploy_passed: whether a host's part of a batch passed, by the one rule."""

from __future__ import annotations

from typing import Any

from ansible_collections.smokegate.core.plugins.plugin_utils.host_records import answers

DOCUMENTATION = r"""
name: deploy_passed
short_description: Whether a host's requests of a deploy batch all passed
version_added: "0.3.0"
description:
  - Takes the registered results of the M(smokegate.core.stages) tasks of a host's part of a
    batch and returns true when at least one ran and every one that ran got an answer in
    which every stage succeeded (the smoke stage by the one pass rule, no critical check
    that did not pass). An unreachable host, or a task that failed before the engine
    answered, has not passed.
options:
  _input:
    description: The registered results, skipped ones included.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Note that this host passed
  ansible.builtin.set_fact:
    deploy_verified: "{{ deploy_release }}"
  when: "[deploy_part1, deploy_part2, deploy_part3] | smokegate.core.deploy_passed"
"""

RETURN = r"""
_value:
  description: True when the host passed.
  type: bool
"""


def deploy_passed(results: Any) -> bool:
    found = answers(results)
    return bool(found) and all(item.ok for item in found)


class FilterModule:
    def filters(self) -> dict:
        return {"deploy_passed": deploy_passed}
