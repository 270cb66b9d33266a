# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of smokegate.core.smoke: read and template checks_file, validate, run.

A malformed spec fails here, before anything is sent to the host. With pipelining the
checks run in one exec that ships the engine (plugin_utils/engine_action.py); the result is
the module's, field for field.
"""

from __future__ import annotations

from typing import Any, Dict

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.smokegate.core.plugins.module_utils import protocol
from ansible_collections.smokegate.core.plugins.module_utils.argspec import smoke_argument_spec
from ansible_collections.smokegate.core.plugins.module_utils.report import gate_result
from ansible_collections.smokegate.core.plugins.module_utils.spec import spec_document
from ansible_collections.smokegate.core.plugins.plugin_utils.engine_action import EngineAction


class ActionModule(EngineAction):
    TRANSFERS_FILES = False
    MODULE = "smokegate.core.smoke"
    _VALID_ARGS = frozenset(("checks", "checks_file", "fail_on", "host", "validate_only", "budget"))

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        validate_only = boolean(args.pop("validate_only", False), strict=True)
        checks, failed = self._spec(args)
        if failed is not None:
            return dict(result, **failed)
        if validate_only:
            # Never the checks themselves: they may hold header values and URL credentials.
            return dict(
                result,
                changed=False,
                msg="spec is valid: %d checks" % len(checks),
                check_names=[check.name for check in checks],
            )
        # The inventory name, not the machine's hostname: that is what users look up, and
        # what a check's query asks about.
        args.setdefault("host", task_vars.get("inventory_hostname"))
        # The module's own argument validation, done here for both paths: on the host, a
        # failure would return the invocation before the module masks URL credentials in it.
        validated = ArgumentSpecValidator(smoke_argument_spec()).validate(args)
        if validated.error_messages:
            return dict(result, failed=True, msg="; ".join(validated.error_messages))

        if self._ships():
            module_result = self._run_engine(args, validated.validated_parameters, task_vars)
        else:
            module_result = self._execute_module(
                module_name=self.MODULE, module_args=args, task_vars=task_vars
            )
        result.update(module_result)
        return result

    def _run_engine(
        self, args: Dict[str, Any], params: Dict[str, Any], task_vars: Dict[str, Any]
    ) -> Dict[str, Any]:
        request = protocol.request(
            [protocol.smoke(spec_document(params["checks"], params["budget"]))],
            host=params["host"],
            environment=self._environment(),
            check_mode=self._task.check_mode,
        )
        answer, result = self._ship(request, args, task_vars)
        if answer is None:
            return result
        report = protocol.Answer(answer).report
        if report is None:
            return dict(result, failed=True, msg="smoke engine: %s" % protocol.Answer(answer).error)
        result.update(gate_result(report, params["fail_on"]))
        return result
