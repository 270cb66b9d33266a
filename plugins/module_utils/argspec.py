# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smoke module's argument_spec and option docs, derived from the check types.

Every check type registered in checks.CHECK_TYPES is an option of ``checks``, its fields
the option's suboptions; the common keys come from schema.COMMON_FIELDS.

scripts/sync-module-docs writes ``doc_options()`` into the module's DOCUMENTATION and a
test fails when they differ, so ansible-doc, the argument_spec and the validator agree.
"""

from __future__ import annotations

from typing import Any, Dict, List

from .checks import CHECK_TYPES
from .schema import COMMON_FIELDS, Field
from .urls import userinfo_forms

# How each schema kind reaches Ansible. "raw" where a spec accepts two shapes
# (2GiB or 2147483648; 200 or [200, 204]); the engine validates the value itself.
ANSIBLE_TYPES = {
    "str": "str",
    "path": "str",
    "strlist": "raw",
    "list": "list",
    "bool": "bool",
    "size": "raw",
    "percent": "float",
    "float": "float",
    "port": "int",
    "number": "float",
    "delay": "float",
    "count": "int",
    "regex": "str",
    "version": "str",
    "choice": "str",
    "statuses": "raw",
    "headers": "dict",
    "url": "str",
    "exits": "raw",
    "environment": "dict",
    "unit": "str",
    # raw: a mode written 0640 without quotes reaches the engine as the number it is, and is
    # refused there, instead of becoming the string "416".
    "mode": "raw",
    "address": "str",
    "days": "float",
    "expectations": "dict",
}


def _option(field: Field, with_docs: bool) -> Dict[str, Any]:
    option: Dict[str, Any] = {"type": ANSIBLE_TYPES[field.kind]}
    if with_docs:
        option = {"description": [field.doc], **option}
    if field.kind == "list":
        option["elements"] = "str"
    if field.required:
        option["required"] = True
    if field.default is not None:
        option["default"] = field.default
    if field.choices:
        option["choices"] = list(field.choices)
    if field.secret and not with_docs:
        option["no_log"] = True
    return option


def check_options(with_docs: bool = False) -> Dict[str, Any]:
    """Suboptions of one element of ``checks``."""
    options = {name: _option(field, with_docs) for name, field in COMMON_FIELDS.items()}
    for name, check_type in CHECK_TYPES.items():
        option: Dict[str, Any] = {
            "type": "dict",
            # argument_spec calls nested options "options"; DOCUMENTATION calls them "suboptions".
            "suboptions" if with_docs else "options": {
                field.name: _option(field, with_docs) for field in check_type.fields.values()
            },
        }
        if with_docs:
            doc = ["A C(%s) check. %s" % (name, check_type.doc)]
            if check_type.requires_one_of:
                doc.append(
                    "Needs at least one of %s."
                    % ", ".join(
                        "O(checks[].%s.%s)" % (name, key) for key in check_type.requires_one_of
                    )
                )
            option = {"description": doc, **option}
        options[name] = option
    return options


def smoke_argument_spec() -> Dict[str, Any]:
    # checks_file and validate_only are handled by the action plugin on the controller;
    # they are declared here too so the documentation and the spec describe one interface.
    return {
        "checks": {"type": "list", "elements": "dict", "options": check_options()},
        "checks_file": {"type": "str"},
        "budget": {"type": "float"},
        "fail_on": {"type": "str", "default": "critical", "choices": ["critical", "never"]},
        "host": {"type": "str"},
        "validate_only": {"type": "bool", "default": False},
    }


def url_credentials(checks: Any) -> List[str]:
    """The user:password of every URL in the (unvalidated) checks, as written and decoded.

    no_log can only hide a whole option, and a URL's credentials are part of one. Added to
    the module's ``no_log_values``, they are masked in every string Ansible returns, the
    invocation's copy of the URL included.

    >>> url_credentials([{"name": "api", "http": {"url": "http://ops:p%23ss@db/"}}])
    ['ops:p%23ss', 'ops:p#ss']
    """
    found: List[str] = []
    for check in checks if isinstance(checks, list) else ():
        for type_name, check_type in CHECK_TYPES.items():
            fields = check.get(type_name) if isinstance(check, dict) else None
            if not isinstance(fields, dict):
                continue
            for field in check_type.fields.values():
                value = fields.get(field.name)
                if field.kind == "url" and isinstance(value, str):
                    found.extend(userinfo_forms(value))
    return found
