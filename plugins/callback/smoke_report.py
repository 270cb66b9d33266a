# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: smoke_report
type: aggregate
short_description: A table of smoke results per play, and optional JUnit and JSON files
version_added: 0.1.0
description:
  - Collects the report of every M(smokegate.core.smoke) and M(smokegate.core.stages) task (a smoke gate, a bake, a
    baseline before a deploy) and, at the end of each play,
    prints a table of the hosts and their failed checks.
  - Optionally writes every collected report as JUnit XML and as JSON when the run ends.
requirements:
  - enable it with C(callbacks_enabled = smokegate.core.smoke_report) in C(ansible.cfg)
    or C(ANSIBLE_CALLBACKS_ENABLED=smokegate.core.smoke_report)
options:
  junit_file:
    description: Write the reports of the run as JUnit XML to this path.
    type: path
    env:
      - name: SMOKEGATE_REPORT_JUNIT
    ini:
      - section: smokegate_smoke_report
        key: junit_file
  json_file:
    description: Write the reports of the run as JSON to this path.
    type: path
    env:
      - name: SMOKEGATE_REPORT_JSON
    ini:
      - section: smokegate_smoke_report
        key: json_file
"""

import json

from ansible.plugins.callback import CallbackBase

from ansible_collections.smokegate.core.plugins.module_utils.protocol import (
    BASELINE,
    blocking,
    host_ok,
)
from ansible_collections.smokegate.core.plugins.module_utils.report import (
    budget_warning,
    flaky_checks,
    render_junit,
)


def baseline_report(steps: object) -> object:
    """The report of the baseline stage among a stages task's ``steps``, if it ran."""
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, dict) and step.get("stage") == BASELINE:
            return step.get("report")
    return None


# The tasks whose result carries a smoke report.
SMOKE_ACTIONS = ("smokegate.core.smoke", "smoke", "smokegate.core.stages", "stages")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "smokegate.core.smoke_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._play = ""
        self._play_reports: dict = {}
        self._all_reports: list = []

    def _collect(self, result) -> None:  # type: ignore[no-untyped-def]
        if result._task.action not in SMOKE_ACTIONS:
            return
        report = result._result.get("smoke")
        if not isinstance(report, dict):
            # A lock request with a baseline: the checks on the release the host runs now,
            # which can refuse the deploy before any host changes.
            report = baseline_report(result._result.get("steps"))
        if isinstance(report, dict):
            # The last smoke run of a host in a play is the one that decided it.
            self._play_reports[result._host.get_name()] = report
            self._all_reports.append(dict(report, play=self._play, task=result._task.get_name()))

    v2_runner_on_ok = _collect

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:  # type: ignore[no-untyped-def]
        self._collect(result)

    def _print_table(self) -> None:
        if not self._play_reports:
            return
        width = max(len(host) for host in self._play_reports)
        lines = ["", "SMOKE REPORT (%s)" % self._play]
        for host, report in sorted(self._play_reports.items()):
            summary = report["summary"]
            verdict = "ok" if host_ok(report) else "FAILED"
            detail = "; ".join(
                "%s: %s" % (item["name"], item["message"]) for item in blocking(report)
            )
            flaky = flaky_checks(report)
            if flaky:  # passed, but only after a retry: said before it fails a deploy
                detail += "  %d flaky: %s" % (len(flaky), ", ".join(item["name"] for item in flaky))
            lines.append(
                "  %s  %-6s %d/%d passed%s"
                % (
                    host.ljust(width),
                    verdict,
                    summary["passed"],
                    summary["total"],
                    "  " + detail.lstrip() if detail else "",
                )
            )
            warning = budget_warning(report)
            if warning:
                lines.append("  %s  warning: %s" % (" " * width, warning))
        self._display.display("\n".join(lines))
        self._play_reports = {}

    def v2_playbook_on_play_start(self, play) -> None:  # type: ignore[no-untyped-def]
        self._print_table()
        self._play = play.get_name().strip()

    def v2_playbook_on_stats(self, stats) -> None:  # type: ignore[no-untyped-def]
        self._print_table()
        junit_file, json_file = self.get_option("junit_file"), self.get_option("json_file")
        if junit_file:
            with open(junit_file, "w") as handle:
                handle.write(render_junit(self._all_reports))
        if json_file:
            with open(json_file, "w") as handle:
                json.dump({"reports": self._all_reports}, handle, indent=2)
