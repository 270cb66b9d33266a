# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""smokegate.core.controller_path: a controller path as the person typing it meant it.

``-e smokegate_artifact=build/app.tar.gz`` names a file in the directory ansible-playbook
was started in. Ansible would look for it in the collection's role and playbook directories
instead (where ``smoke.yml`` even finds the collection's own playbook). A relative path
that exists in the working directory becomes absolute; any other value is left to Ansible's
usual search.
"""

from __future__ import annotations

import os

DOCUMENTATION = r"""
name: controller_path
short_description: Resolve a relative controller path against the working directory
version_added: "0.1.0"
description:
  - Returns the absolute path of O(_input) when it is relative and exists in the directory
    C(ansible-playbook) was started in; otherwise returns O(_input) unchanged, for Ansible's
    usual search of role and playbook directories.
  - The roles of this collection apply it to C(smokegate_artifact) and C(smokegate_checks_file).
options:
  _input:
    description: A path on the controller; may be empty.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Show where the artifact will be read from
  ansible.builtin.debug:
    msg: "{{ 'build/app.tar.gz' | smokegate.core.controller_path }}"
"""

RETURN = r"""
_value:
  description: The absolute path, or the input unchanged.
  type: str
"""


def controller_path(path: object) -> object:
    if not isinstance(path, str) or not path or os.path.isabs(path):
        return path
    candidate = os.path.abspath(path)
    return candidate if os.path.exists(candidate) else path


class FilterModule:
    def filters(self) -> dict:
        return {"controller_path": controller_path}
