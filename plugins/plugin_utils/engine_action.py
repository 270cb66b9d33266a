# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's action plugins share: reading a spec on the controller, and one
engine request over the play's own connection.

When the connection pipelines (``ANSIBLE_PIPELINING=1``, no async, a POSIX shell), a request
runs the way the Fabric front end runs it: the engine travels on the exec's stdin and a short
bootstrap runs it from memory (shipping.py), skipping Ansible's module wrapper, whose start-up
on the host costs several times what the work does. Otherwise the action runs its module,
which builds the same request and hands it to the same engine.
"""

from __future__ import annotations

import shlex
from typing import Any, Dict, Optional, Set, Tuple

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.action import ActionBase

from ansible_collections.smokegate.core.plugins.module_utils.spec import (
    TOP_LEVEL_KEYS,
    Check,
    SpecError,
    check_size,
    parse_spec,
    spec_document,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import (
    BOOTSTRAP,
    payload,
    prepare,
    read_answer,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.yaml_errors import yaml_problem

prepare()  # in the strategy's process, which forks the workers that ship it


def _templates(value: Any) -> Set[str]:
    """Every string in a spec document that holds a template."""
    if isinstance(value, str):
        return {value} if "{{" in value or "{%" in value else set()
    if isinstance(value, dict):
        value = list(value.values())
    return set().union(*map(_templates, value)) if isinstance(value, list) else set()


class EngineAction(ActionBase):
    """An action plugin whose work is one request to the engine on the host."""

    MODULE = ""  # the module that does the same work when the engine is not shipped

    # --- the spec ------------------------------------------------------------------------
    def _load_checks_file(self, name: str) -> Tuple[object, object]:
        """The checks of a spec file, templated, and its budget (None without one)."""
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
        budget = document.get("budget") if isinstance(document, dict) else None
        if isinstance(document, dict) and set(document) - set(TOP_LEVEL_KEYS):
            checks, budget = document, None  # let the validator name the unknown keys
        try:
            return self._templar.template(checks), self._templar.template(budget)
        except AnsibleError as exc:
            # Before 2.19 a template's error quotes the template, which may hold a secret.
            message = str(exc)
            for template in sorted(_templates(checks), key=len, reverse=True):
                message = message.replace(template, "(the template)")
            raise AnsibleError(message) from None

    def _spec(
        self, args: Dict[str, Any], required: bool = True
    ) -> Tuple[Optional[list], Optional[Dict[str, Any]]]:
        """``checks`` (or ``checks_file``, read and templated here) validated: (the checks,
        None), or (None, a failed result naming every problem). Sets ``args["checks"]``."""
        checks_file = args.pop("checks_file", None)
        if checks_file is not None and args.get("checks") is not None:
            return None, {"failed": True, "msg": "give exactly one of checks or checks_file"}
        if checks_file is None and args.get("checks") is None:
            if required:
                return None, {"failed": True, "msg": "give exactly one of checks or checks_file"}
            return [], None
        try:
            if checks_file is not None:
                args["checks"], budget = self._load_checks_file(checks_file)
                if budget is not None:
                    args["budget"] = budget
            checks: list[Check] = parse_spec(spec_document(args["checks"], args.get("budget")))
        except AnsibleError as exc:
            return None, {
                "failed": True,
                "msg": "cannot load checks_file %s: %s" % (checks_file, exc),
            }
        except RecursionError:  # the loader copies what it read, one call per level
            return None, {
                "failed": True,
                "msg": "cannot load checks_file %s: nested too deeply to be a spec" % checks_file,
            }
        except SpecError as exc:
            return None, {
                "failed": True,
                "msg": "invalid smoke spec in %s (nothing was run):\n%s"
                % (checks_file or "checks", "\n".join(exc.errors)),
                "errors": exc.errors,
            }
        return checks, None

    # --- the request ---------------------------------------------------------------------
    def _ships(self) -> bool:
        """Whether the engine can run over the play's connection in one exec."""
        return (
            not self._task.async_val
            and getattr(self._connection._shell, "SHELL_FAMILY", "sh") == "sh"
            and self._is_pipelining_enabled("new")
        )

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
            module_name=self.MODULE, module_args=dict(args), task_vars=task_vars
        )
        shebang = configured[1] if len(configured) == 4 else configured[0].shebang  # <2.19
        return shebang[2:].strip() if shebang else "/usr/bin/python3"

    def _environment(self) -> Dict[str, str]:
        # The task's environment (env checks read it) travels with the request, not on the
        # command line, where -vvv and ps would show its values.
        environment: Dict[str, Any] = {}
        self._compute_environment_string(environment)
        return {str(name): str(value) for name, value in environment.items()}

    def _ship(
        self, request: Dict[str, Any], args: Dict[str, Any], task_vars: Dict[str, Any]
    ) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        """Run ``request`` on the host in one exec: (the answer, or None, and the result so
        far: the discovered interpreter, or why the engine gave no answer)."""
        python = self._interpreter(args, task_vars)
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
            result.update(
                failed=True,
                rc=res.get("rc"),
                msg="the smoke engine did not run with %s on this host (exit %s): %s"
                % (python, res.get("rc"), reason),
            )
            return None, result
        return answer, result
