# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of smokegate.core.smoke: read and template checks_file, validate, run.

A malformed spec fails here, before the module is sent to the host.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.smokegate.core.plugins.module_utils.spec import SpecError, parse_spec


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("checks", "checks_file", "fail_on", "validate_only"))

    def _load_checks_file(self, name: str) -> object:
        path = self._find_needle("files", name)
        try:  # ansible-core 2.19+ templates only trusted data; the spec file is ours to trust
            document = self._loader.load_from_file(path, trusted_as_template=True)
        except TypeError:
            document = self._loader.load_from_file(path)
        checks = document.get("checks") if isinstance(document, dict) else document
        if isinstance(document, dict) and set(document) - {"checks"}:
            checks = document  # let the validator name the unknown keys
        return self._templar.template(checks)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        checks_file = args.pop("checks_file", None)
        validate_only = boolean(args.pop("validate_only", False), strict=True)
        if (checks_file is None) == (args.get("checks") is None):
            return dict(result, failed=True, msg="give exactly one of checks or checks_file")
        if checks_file is not None:
            try:
                args["checks"] = self._load_checks_file(checks_file)
            except AnsibleError as exc:
                return dict(
                    result, failed=True, msg="cannot load checks_file %s: %s" % (checks_file, exc)
                )
        try:
            checks = parse_spec(args["checks"])
        except SpecError as exc:
            source = checks_file or "checks"
            return dict(
                result,
                failed=True,
                msg="invalid smoke spec in %s (nothing was run):\n%s"
                % (source, "\n".join(exc.errors)),
                errors=exc.errors,
            )
        if validate_only:
            return dict(
                result,
                changed=False,
                msg="spec is valid: %d checks" % len(checks),
                checks=args["checks"],
            )

        module_result = self._execute_module(
            module_name="smokegate.core.smoke", module_args=args, task_vars=task_vars
        )
        if isinstance(module_result.get("smoke"), dict):
            # The inventory name, not the machine's hostname: that is what users look up.
            module_result["smoke"]["host"] = task_vars.get(
                "inventory_hostname", module_result["smoke"]["host"]
            )
        result.update(module_result)
        return result
