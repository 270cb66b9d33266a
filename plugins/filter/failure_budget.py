# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""smokegate.core.failure_budget: how many failed hosts a rolling deploy tolerates."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.smokegate.core.plugins.module_utils.protocol import max_fail

DOCUMENTATION = r"""
name: failure_budget
short_description: How many failed hosts a rolling deploy tolerates
version_added: "0.3.0"
description:
  - Reads C(smokegate_max_fail) as C(fab deploy --max-fail) does, a host count (V(2)) or a
    percentage of the deploy's hosts (V(25%), rounded down), and returns the count.
options:
  _input:
    description: The budget, a count or a percentage.
    type: raw
    required: true
  hosts:
    description: How many hosts the deploy targets.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Show the failure budget of a deploy to every host of the play
  ansible.builtin.debug:
    msg: "{{ '25%' | smokegate.core.failure_budget(ansible_play_hosts_all | length) }}"
"""

RETURN = r"""
_value:
  description: The number of failed hosts tolerated.
  type: int
"""


def failure_budget(value: Any, hosts: int) -> int:
    try:
        return max_fail(value, int(hosts))
    except ValueError as exc:
        raise AnsibleFilterError("smokegate_%s" % exc) from None


class FilterModule:
    def filters(self) -> dict:
        return {"failure_budget": failure_budget}
