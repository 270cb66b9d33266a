# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of smokegate.core.stages: read the spec, upload the artifact once, and
run every stage in one request.

With pipelining that request is one exec that ships the engine (engine_action.py): a host's
part of a batch costs one transfer and one exec. Otherwise the module runs the same request.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.smokegate.core.plugins.module_utils import protocol
from ansible_collections.smokegate.core.plugins.module_utils.stages import (
    STAGES_ARGUMENT_SPEC,
    answer_result,
    build_request,
)
from ansible_collections.smokegate.core.plugins.plugin_utils.engine_action import EngineAction


class ActionModule(EngineAction):
    # No remote temporary directory (three more execs: make it, find home, remove it): the
    # artifact goes straight to its upload path, the request travels on stdin, and the module
    # run without pipelining makes one for itself.
    TRANSFERS_FILES = False
    MODULE = "smokegate.core.stages"

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        _checks, failed = self._spec(args, required=False)
        if failed is not None:
            return dict(result, **failed)
        validated = ArgumentSpecValidator(STAGES_ARGUMENT_SPEC).validate(args)
        if validated.error_messages:
            return dict(result, failed=True, msg="; ".join(validated.error_messages))
        params = validated.validated_parameters
        artifact = params.pop("artifact", None)
        if artifact and not self._task.check_mode:  # check mode uploads nothing
            try:
                source = (
                    artifact if os.path.isabs(artifact) else self._find_needle("files", artifact)
                )
            except AnsibleError as exc:
                return dict(result, failed=True, msg="cannot find the artifact: %s" % exc)
            # As a login user with become, the engine reads it from /tmp, where the
            # unguessable name keeps anyone else from planting the file first.
            directory = (
                "/tmp"
                if self._play_context.become
                else "%s/%s" % (params["root"], protocol.UPLOAD_DIRECTORY)
            )
            params["archive"] = protocol.upload_path(directory, params.get("release") or "")
            result["upload"] = params["archive"]
            self._transfer_file(source, params["archive"])
        # The inventory name, not the machine's hostname: that is what users look up, and
        # what a check's query asks about.
        if params.get("host") is None:
            params["host"] = task_vars.get("inventory_hostname")
        if self._ships():
            request, problem = build_request(
                params, check_mode=self._task.check_mode, environment=self._environment()
            )
            if problem:
                return dict(result, failed=True, msg=problem)
            answer, shipped = self._ship(request, params, task_vars)
            result.update(shipped)
            if answer is not None:
                result.update(answer_result(answer, params["fail_on"], diff=self._task.diff))
        else:
            result.update(
                self._execute_module(
                    module_name=self.MODULE, module_args=params, task_vars=task_vars
                )
            )
        return result
