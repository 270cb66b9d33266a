# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render smoke reports: one place for every front end (CLI, Ansible callback, fab).

Each renderer takes a list of host reports (runner.run_checks results) and returns text.

>>> report = {"host": "web1", "ok": True, "duration_ms": 1.0,
...           "summary": {"total": 1, "passed": 1, "failed": 0, "errors": 0,
...                       "timeouts": 0, "skipped": 0},
...           "results": [{"name": "root", "type": "disk", "severity": "critical",
...                        "status": "pass", "message": "9 GiB (50%) free on /",
...                        "duration_ms": 0.2, "attempts": 1}]}
>>> print(render("human", [report]))
web1: OK, 1 of 1 checks passed in 1 ms
  PASS  root  9 GiB (50%) free on /  0.2 ms
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

Report = Dict[str, Any]

_COLORS = {"PASS": "32", "FAIL": "31", "ERROR": "31", "TIMEOUT": "31", "WARN": "33", "SKIP": "2"}
_LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "skipped": "SKIP",
}


def _paint(text: str, code: str, color: bool) -> str:
    return "\033[%sm%s\033[0m" % (code, text) if color else text


def _duration(milliseconds: float) -> str:
    if milliseconds >= 1000:
        return "%.1f s" % (milliseconds / 1000)
    return ("%.1f" % milliseconds).rstrip("0").rstrip(".") + " ms"


def label(result: Dict[str, Any]) -> str:
    """PASS, FAIL, ERROR, TIMEOUT, SKIP; WARN for a warning-severity check that did not pass."""
    if result["severity"] == "warning" and result["status"] not in ("pass", "skipped"):
        return "WARN"
    return _LABELS[result["status"]]


def failed_checks(report: Report) -> List[str]:
    """Names of the critical checks that did not pass: what stopped the gate."""
    return [
        result["name"]
        for result in report["results"]
        if result["severity"] == "critical" and result["status"] not in ("pass", "skipped")
    ]


def gate_result(report: Report, fail_on: str) -> Dict[str, Any]:
    """The smoke module's result for a report: failed, with every failing check named,
    when a critical check did not pass and ``fail_on`` is ``critical``."""
    failed = failed_checks(report)
    result: Dict[str, Any] = {"changed": False, "smoke": report, "failed_checks": failed}
    if failed and fail_on == "critical":
        result["failed"] = True
        result["msg"] = "smoke checks failed: %s" % "; ".join(
            "%s: %s" % (item["name"], item["message"])
            for item in report["results"]
            if item["name"] in failed
        )
    return result


def render_human(reports: List[Report], color: bool = False) -> str:
    lines = []
    for report in reports:
        if report.get("error"):  # the host could not run the checks at all
            lines.append(
                "%s: %s, %s" % (report["host"], _paint("NOT RUN", "1;31", color), report["error"])
            )
            continue
        summary = report["summary"]
        verdict = _paint(
            "OK" if report["ok"] else "FAILED", "32" if report["ok"] else "1;31", color
        )
        lines.append(
            "%s: %s, %d of %d checks passed in %s"
            % (
                report["host"],
                verdict,
                summary["passed"],
                summary["total"],
                _duration(report["duration_ms"]),
            )
        )
        results = report["results"]
        label_width = max(len(label(result)) for result in results) if results else 0
        name_width = min(32, max((len(result["name"]) for result in results), default=0))
        for result in results:
            tag = label(result)
            lines.append(
                "  %s  %s  %s  %s"
                % (
                    _paint(tag.ljust(label_width), _COLORS[tag], color),
                    result["name"].ljust(name_width),
                    result["message"],
                    _duration(result["duration_ms"]),
                )
            )
        tags = [label(result) for result in results]
        problems = [
            "%d %s" % (tags.count(tag), word)
            for tag, word in (
                ("FAIL", "failed"),
                ("ERROR", "errors"),
                ("TIMEOUT", "timed out"),
                ("WARN", "warnings"),
                ("SKIP", "skipped"),
            )
            if tag in tags
        ]
        if problems:
            lines.append("  " + ", ".join(problems))
        if not report["ok"]:
            lines.append("  gate stopped by: " + ", ".join(failed_checks(report)))
    if len(reports) > 1:
        failing = [report for report in reports if not report["ok"]]
        lines.append(
            "fleet: %d of %d hosts ok%s"
            % (
                len(reports) - len(failing),
                len(reports),
                "; failing: "
                + ", ".join(
                    "%s (%s)"
                    % (report["host"], report.get("error") or ", ".join(failed_checks(report)))
                    for report in failing
                )
                if failing
                else "",
            )
        )
    return "\n".join(lines)


def render_json(reports: List[Report], color: bool = False) -> str:
    document: Any = (
        reports[0]
        if len(reports) == 1
        else {
            "ok": all(report["ok"] for report in reports),
            "hosts": reports,
        }
    )
    return json.dumps(document, indent=2, sort_keys=False)


def render_junit(reports: List[Report], color: bool = False) -> str:
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="smokegate")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for report in reports:
        suite = ET.SubElement(
            root, "testsuite", name="smokegate.%s" % report["host"], hostname=report["host"]
        )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for result in report["results"]:
            counts["tests"] += 1
            case = ET.SubElement(
                suite,
                "testcase",
                name=result["name"],
                classname="%s.%s" % (report["host"], result["type"]),
                time="%.4f" % (result["duration_ms"] / 1000),
            )
            status, message = result["status"], result["message"]
            if status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=message)
            elif status == "fail" or (status != "pass" and result["severity"] == "warning"):
                counts["failures"] += 1
                kind = "warning" if result["severity"] == "warning" else status
                ET.SubElement(case, "failure", type=kind, message=message).text = message
            elif status != "pass":
                counts["errors"] += 1
                ET.SubElement(case, "error", type=status, message=message).text = message
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", "%.4f" % (report["duration_ms"] / 1000))
        total_time += report["duration_ms"] / 1000
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "%.4f" % total_time)
    if hasattr(ET, "indent"):  # Python 3.9+; older hosts get the same XML on one line
        ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


RENDERERS: Dict[str, Callable[..., str]] = {
    "human": render_human,
    "json": render_json,
    "junit": render_junit,
}


def render(fmt: str, reports: List[Report], color: bool = False) -> str:
    """Render reports in ``fmt`` (one of RENDERERS)."""
    return RENDERERS[fmt](reports, color=color)
