# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of smokegate.core.smoke: read and template checks_file, validate, run.

A malformed spec fails here, before anything is sent to the host.

When the connection pipelines (``ANSIBLE_PIPELINING=1``, no async), the checks run the way
``fab smoke`` runs them: the engine travels on the exec's stdin and a short bootstrap runs
it from memory, skipping Ansible's module wrapper, whose start-up on the host costs several
times what the checks do. The result is the module's, field for field. Otherwise the
module runs as any module does.
"""

from __future__ import annotations

import shlex
from typing import Any, Dict, Set

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.smokegate.core.plugins.module_utils.argspec import smoke_argument_spec
from ansible_collections.smokegate.core.plugins.module_utils.report import gate_result
from ansible_collections.smokegate.core.plugins.module_utils.spec import (
    SpecError,
    check_size,
    parse_spec,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import (
    BOOTSTRAP,
    payload,
    read_answer,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.yaml_errors import yaml_problem

MODULE = "smokegate.core.smoke"


def _templates(value: Any) -> Set[str]:
    """Every string in a spec document that holds a template."""
    if isinstance(value, str):
        return {value} if "{{" in value or "{%" in value else set()
    if isinstance(value, dict):
        value = list(value.values())
    return set().union(*map(_templates, value)) if isinstance(value, list) else set()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("checks", "checks_file", "fail_on", "validate_only"))

    def _load_checks_file(self, name: str) -> object:
        path = self._find_needle("files", name)
        try:
            try:  # ansible-core 2.19+ templates only trusted data; the spec file is ours to trust
                document = self._loader.load_from_file(path, trusted_as_template=True)
            except TypeError:
                document = self._loader.load_from_file(path)
        except AnsibleParserError as exc:
            # Before 2.19 the error quotes the offending lines, which may hold secrets.
            cause = exc.__cause__ or getattr(exc, "orig_exc", None)
            raise AnsibleError("not valid YAML or JSON: %s" % yaml_problem(cause)) from None
        check_size(document)  # before templating walks it: YAML aliases may expand beyond memory
        checks = document.get("checks") if isinstance(document, dict) else document
        if isinstance(document, dict) and set(document) - {"checks"}:
            checks = document  # let the validator name the unknown keys
        try:
            return self._templar.template(checks)
        except AnsibleError as exc:
            # Before 2.19 a template's error quotes the template, which may hold a secret.
            message = str(exc)
            for template in sorted(_templates(checks), key=len, reverse=True):
                message = message.replace(template, "(the template)")
            raise AnsibleError(message) from None

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        checks_file = args.pop("checks_file", None)
        validate_only = boolean(args.pop("validate_only", False), strict=True)
        if (checks_file is None) == (args.get("checks") is None):
            return dict(result, failed=True, msg="give exactly one of checks or checks_file")
        try:
            if checks_file is not None:
                args["checks"] = self._load_checks_file(checks_file)
            checks = parse_spec(args["checks"])
        except AnsibleError as exc:
            return dict(
                result, failed=True, msg="cannot load checks_file %s: %s" % (checks_file, exc)
            )
        except RecursionError:  # the loader copies what it read, one call per level
            return dict(
                result,
                failed=True,
                msg="cannot load checks_file %s: nested too deeply to be a spec" % checks_file,
            )
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
            # Never the checks themselves: they may hold header values and URL credentials.
            return dict(
                result,
                changed=False,
                msg="spec is valid: %d checks" % len(checks),
                check_names=[check.name for check in checks],
            )
        # The module's own argument validation, done here for both paths: on the host, a
        # failure would return the invocation before the module masks URL credentials in it.
        validated = ArgumentSpecValidator(smoke_argument_spec()).validate(args)
        if validated.error_messages:
            return dict(result, failed=True, msg="; ".join(validated.error_messages))

        if (
            self._task.async_val
            or getattr(self._connection._shell, "SHELL_FAMILY", "sh") != "sh"
            or not self._is_pipelining_enabled("new")
        ):
            module_result = self._execute_module(
                module_name=MODULE, module_args=args, task_vars=task_vars
            )
        else:
            module_result = self._run_engine(args, validated.validated_parameters, task_vars)
        if isinstance(module_result.get("smoke"), dict):
            # The inventory name, not the machine's hostname: that is what users look up.
            module_result["smoke"]["host"] = task_vars.get(
                "inventory_hostname", module_result["smoke"]["host"]
            )
        result.update(module_result)
        return result

    def _interpreter(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> str:
        host_vars = (
            task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, {})
            if self._task.delegate_to
            else task_vars
        )
        named = self._templar.template(host_vars.get("ansible_python_interpreter") or "")
        if named and not str(named).startswith("auto"):
            return str(named)
        discovered = (host_vars.get("ansible_facts") or {}).get("discovered_interpreter_python")
        if discovered:
            return str(discovered)
        # Otherwise configuring the module discovers the interpreter exactly as for any
        # module (building the module costs a few hundred ms, so only here).
        configured = self._configure_module(
            module_name=MODULE, module_args=dict(args), task_vars=task_vars
        )
        shebang = configured[1] if len(configured) == 4 else configured[0].shebang  # <2.19
        return shebang[2:].strip() if shebang else "/usr/bin/python3"

    def _run_engine(
        self, args: Dict[str, Any], params: Dict[str, Any], task_vars: Dict[str, Any]
    ) -> Dict[str, Any]:
        step = {"op": "smoke", "checks": params["checks"], "check_mode": self._task.check_mode}
        python = self._interpreter(args, task_vars)
        # The task's environment (env checks read it) travels with the request, not on the
        # command line, where -vvv and ps would show its values.
        environment: Dict[str, Any] = {}
        self._compute_environment_string(environment)
        request = {
            "environment": {str(name): str(value) for name, value in environment.items()},
            "steps": [step],
        }
        command = shlex.join([*shlex.split(python), "-c", BOOTSTRAP])
        res = self._low_level_execute_command(command, in_data=payload(request))
        result: Dict[str, Any] = {"changed": False}
        if self._discovered_interpreter_key:
            result["ansible_facts"] = {
                self._discovered_interpreter_key: self._discovered_interpreter
            }
        answer = read_answer(res.get("stdout", ""))
        if answer is None or "engine_error" in answer:
            lines = (res.get("stderr") or res.get("stdout") or "").strip().splitlines()
            reason = answer["engine_error"] if answer else (lines[-1] if lines else "(no output)")
            return dict(
                result,
                failed=True,
                rc=res.get("rc"),
                msg="the smoke engine did not run with %s on this host (exit %s): %s"
                % (python, res.get("rc"), reason),
            )
        outcome = answer["steps"][0]
        if "report" not in outcome:
            return dict(result, failed=True, msg="smoke engine: %s" % outcome.get("error"))
        result.update(gate_result(outcome["report"], params["fail_on"]))
        return result
