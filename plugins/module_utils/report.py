# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render smoke reports: one place for every front end (CLI, Ansible callback, fab).

Each renderer takes a list of host reports (runner.run_checks results) and returns text:
``human``, ``json``, ``junit``, ``tap`` (TAP 13), ``nagios`` (a plugin's status line,
perfdata and long output; ``nagios_status`` is its exit code) and ``prometheus`` (the text
exposition format, for a node exporter's textfile collector or ``smokegate serve``).
``html_report`` and ``html_page`` build ``smokegate serve``'s status page.

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
import re
import time
from typing import Any, Callable, Dict, List, Optional

from .protocol import PASSING, blocking, fleet_ok, host_ok

Report = Dict[str, Any]

_COLORS = {
    "PASS": "32",
    "FAIL": "31",
    "ERROR": "31",
    "TIMEOUT": "31",
    "WARN": "33",
    "SKIP": "2",
    "PREEXISTING": "33",
}
_LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "skipped": "SKIP",
}


def use_color(stream: Any, environ: Optional[Dict[str, str]] = None) -> bool:
    """Colour only on a terminal, and never with NO_COLOR (any value) or TERM=dumb: the one
    rule for every front end's human output."""
    import os

    environ = os.environ if environ is None else environ
    return (
        bool(getattr(stream, "isatty", lambda: False)())
        and not environ.get("NO_COLOR")
        and environ.get("TERM") != "dumb"
    )


def _paint(text: str, code: str, color: bool) -> str:
    return "\033[%sm%s\033[0m" % (code, text) if color else text


def _duration(milliseconds: float) -> str:
    if milliseconds >= 1000:
        return "%.1f s" % (milliseconds / 1000)
    return ("%.1f" % milliseconds).rstrip("0").rstrip(".") + " ms"


def label(result: Dict[str, Any]) -> str:
    """PASS, FAIL, ERROR, TIMEOUT, SKIP; WARN for a warning-severity check that did not pass;
    PREEXISTING for one that failed before this deploy too (it does not judge the release)."""
    if result.get("preexisting"):
        return "PREEXISTING"
    if result["severity"] == "warning" and result["status"] not in PASSING:
        return "WARN"
    return _LABELS[result["status"]]


def failed_checks(report: Report) -> List[str]:
    """Names of the checks that stopped the gate (protocol.blocks: the one rule)."""
    return [result["name"] for result in blocking(report)]


def flaky_checks(report: Report) -> List[Dict[str, Any]]:
    """The results that passed only after a retry: a gate that needs retries to pass will
    one day not pass, so every format shows them."""
    return [result for result in report.get("results", []) if result.get("flaky")]


def _flaky_text(result: Dict[str, Any]) -> str:
    return "flaky: passed on attempt %d" % result["attempts"]


def budget_warning(report: Report) -> Optional[str]:
    """The warning of a run slower than its spec's budget, naming its slowest checks (None
    when it kept to it, or the spec has none). Never a failure by itself."""
    budget = report.get("budget")
    if not budget or not budget.get("exceeded"):
        return None
    slowest = ", ".join(
        "%s (%s)" % (check["name"], _duration(check["duration_ms"])) for check in budget["slowest"]
    )
    return "the run took %s, over its budget of %s s; slowest: %s" % (
        _duration(report["duration_ms"]),
        ("%.2f" % budget["seconds"]).rstrip("0").rstrip("."),
        slowest,
    )


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
            "OK" if host_ok(report) else "FAILED", "32" if host_ok(report) else "1;31", color
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
            flaky = (
                "  " + _paint("(%s)" % _flaky_text(result), "33", color)
                if result.get("flaky")
                else ""
            )
            lines.append(
                "  %s  %s  %s  %s%s"
                % (
                    _paint(tag.ljust(label_width), _COLORS[tag], color),
                    result["name"].ljust(name_width),
                    result["message"],
                    _duration(result["duration_ms"]),
                    flaky,
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
                ("PREEXISTING", "already failing before this deploy"),
                ("SKIP", "skipped"),
            )
            if tag in tags
        ]
        if problems:
            lines.append("  " + ", ".join(problems))
        flaky = flaky_checks(report)
        if flaky:
            lines.append(
                "  "
                + _paint(
                    "%d flaky (passed only after a retry): %s"
                    % (len(flaky), ", ".join(result["name"] for result in flaky)),
                    "33",
                    color,
                )
            )
        warning = budget_warning(report)
        if warning:
            lines.append("  " + _paint("warning: " + warning, "33", color))
        if not host_ok(report):
            lines.append("  gate stopped by: " + ", ".join(failed_checks(report)))
    if len(reports) > 1:
        failing = [report for report in reports if not host_ok(report)]
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
            "ok": fleet_ok(reports),
            "hosts": reports,
        }
    )
    return json.dumps(document, indent=2, sort_keys=False)


# XML 1.0 cannot carry these characters at all, not even as references: a NUL or an ESC
# from a program's output would make the whole document ill-formed. Compiled on first use
# (re caches it), as what is left out: the class of what is allowed takes 5 ms to compile.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"


def _xml_text(text: str) -> str:
    r"""The text with every character XML 1.0 forbids shown as its escape.

    >>> _xml_text("ok\x00 \x1b[31mred\x0c")
    'ok\\x00 \\x1b[31mred\\x0c'
    """
    return re.sub(_NOT_XML, lambda match: repr(match.group())[1:-1], text)


def render_junit(reports: List[Report], color: bool = False) -> str:
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="smokegate")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for report in reports:
        host = _xml_text(report["host"])
        suite = ET.SubElement(root, "testsuite", name="smokegate.%s" % host, hostname=host)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for result in report["results"]:
            counts["tests"] += 1
            case = ET.SubElement(
                suite,
                "testcase",
                name=_xml_text(result["name"]),
                classname="%s.%s" % (host, result["type"]),
                time="%.4f" % (result["duration_ms"] / 1000),
            )
            if result.get("flaky"):
                properties = ET.SubElement(case, "properties")
                ET.SubElement(properties, "property", name="flaky", value="true")
                ET.SubElement(
                    properties, "property", name="attempts", value=str(result["attempts"])
                )
            status, message = result["status"], _xml_text(result["message"])
            if result.get("preexisting"):  # does not judge this release: not its failure
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message="preexisting: " + message)
            elif status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=message)
            elif status == "fail" or (status != "pass" and result["severity"] == "warning"):
                counts["failures"] += 1
                kind = "warning" if result["severity"] == "warning" else status
                ET.SubElement(case, "failure", type=kind, message=message).text = message
            elif status != "pass":
                counts["errors"] += 1
                ET.SubElement(case, "error", type=status, message=message).text = message
        warning = budget_warning(report)
        if warning:  # a suite's properties come before its test cases
            properties = ET.Element("properties")
            ET.SubElement(properties, "property", name="budget_warning", value=_xml_text(warning))
            suite.insert(0, properties)
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


def _problems(report: Report) -> List[Dict[str, Any]]:
    return [result for result in report["results"] if result["status"] not in PASSING]


def _tap_text(text: str) -> str:
    # A "#" would start a TAP directive; a newline would end the test line.
    return " ".join(text.replace("\\", "\\\\").replace("#", "\\#").split())


def render_tap(reports: List[Report], color: bool = False) -> str:
    """TAP version 13: one test point per check (per host), details in a YAML block.

    A warning-severity check that did not pass is ``not ok ... # TODO``: reported, but not
    a failure of the run, as the gate sees it. A host that could not run the checks is one
    failed test point.
    """
    points: List[str] = []  # each without its "ok"/"not ok" and number
    for report in reports:
        host = _tap_text(report["host"])
        if report.get("error"):
            points.append("not ok|%s: checks not run # %s" % (host, _tap_text(report["error"])))
            continue
        for result in report["results"]:
            title = "%s: %s" % (host, _tap_text(result["name"]))
            if result["status"] == "skipped" or result.get("preexisting"):
                reason = ("preexisting: " if result.get("preexisting") else "") + result["message"]
                points.append("ok|%s # SKIP %s" % (title, _tap_text(reason)))
            elif result["status"] == "pass":
                flaky = "\n# %s" % _flaky_text(result) if result.get("flaky") else ""
                points.append("ok|" + title + flaky)
            else:
                todo = " # TODO warning-severity check" if result["severity"] == "warning" else ""
                details = "".join(
                    "\n  %s: %s" % (key, json.dumps(result[key]))
                    for key in ("type", "severity", "status", "message", "duration_ms", "attempts")
                )
                points.append("not ok|%s%s\n  ---%s\n  ..." % (title, todo, details))
    lines = ["TAP version 13", "1..%d" % len(points)]
    for number, point in enumerate(points, 1):
        outcome, rest = point.split("|", 1)
        lines.append("%s %d - %s" % (outcome, number, rest))
    for report in reports:
        warning = budget_warning(report)
        if warning:
            lines.append("# %s: warning: %s" % (_tap_text(report["host"]), _tap_text(warning)))
    return "\n".join(lines)


NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3
NAGIOS_LABELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


def nagios_status(reports: List[Report]) -> int:
    """0 OK; 1 WARNING when only warning-severity checks did not pass; 2 CRITICAL when a
    critical check did not pass or a host could not run the checks (3 UNKNOWN, a spec that
    does not load, is the front end's to report: no report exists then)."""
    status = NAGIOS_OK
    for report in reports:
        if not host_ok(report):
            return NAGIOS_CRITICAL
        if _problems(report):
            status = NAGIOS_WARNING
    return status


def _nagios_text(text: str) -> str:
    # "|" starts the perfdata, a newline the long output: neither may be in a message.
    return " ".join(text.replace("|", "/").split())


def nagios_unknown(reason: str) -> str:
    """The UNKNOWN status line: the checks could not be run at all (a bad spec)."""
    return "SMOKEGATE UNKNOWN - %s" % _nagios_text(reason)


def _perf_label(name: str) -> str:
    # Perfdata labels: quoted when they hold spaces; a quote is doubled; no "=".
    return "'%s'" % _nagios_text(name).replace("'", "''").replace("=", "_")


def render_nagios(reports: List[Report], color: bool = False) -> str:
    """A Nagios/Icinga plugin's output: status line | perfdata, then one line per problem."""
    status = nagios_status(reports)
    problems = [
        (report["host"], result)
        for report in reports
        if not report.get("error")
        for result in _problems(report)
    ]
    broken = [report for report in reports if report.get("error")]
    critical = [item for item in problems if item[1]["severity"] == "critical"]
    warning = [item for item in problems if item[1]["severity"] == "warning"]
    many = len(reports) > 1

    def named(items: List[Any]) -> str:
        return ", ".join(
            ("%s on %s" % (result["name"], host)) if many else result["name"]
            for host, result in items
        )

    total = sum(len(report["results"]) for report in reports if not report.get("error"))
    counts = {"passed": 0, "failed": 0, "errors": 0, "timeouts": 0, "skipped": 0, "flaky": 0}
    for report in reports:
        for key in counts:
            counts[key] += report.get("summary", {}).get(key, 0)
    if status == NAGIOS_OK:
        summary = (
            "%d checks passed or skipped" % total
            if counts["skipped"]
            else "%d of %d checks passed" % (total, total)
        )
    else:
        parts = []
        if broken:
            parts.append("not run on %s" % ", ".join(report["host"] for report in broken))
        if critical:
            parts.append("%d critical failed: %s" % (len(critical), named(critical)))
        if warning:
            parts.append("%d warning: %s" % (len(warning), named(warning)))
        summary = "; ".join(parts)
    flaky = [(report["host"], result) for report in reports for result in flaky_checks(report)]
    warnings = [(report["host"], budget_warning(report)) for report in reports]
    warnings = [(host, warning) for host, warning in warnings if warning]
    if flaky:
        summary += "; %d flaky" % len(flaky)
    if warnings:
        summary += "; over its budget" if not many else "; over budget on %d" % len(warnings)
    if many:
        summary += " (%d hosts)" % len(reports)
    perfdata = ["%s=%d;;;0;%d" % (key, value, total) for key, value in counts.items()]
    for report in reports:
        for result in report["results"]:
            name = "%s %s" % (report["host"], result["name"]) if many else result["name"]
            perfdata.append("%s=%.4fs;;;0" % (_perf_label(name), result["duration_ms"] / 1000))
    lines = [
        "SMOKEGATE %s - %s | %s"
        % (NAGIOS_LABELS[status], _nagios_text(summary), " ".join(perfdata))
    ]
    lines += ["%s: not run: %s" % (report["host"], report["error"]) for report in broken]
    lines += [
        "%s%s %s: %s"
        % ((host + ": ") if many else "", label(result), result["name"], result["message"])
        for host, result in problems
    ]
    lines += [
        "%sFLAKY %s: %s" % ((host + ": ") if many else "", result["name"], _flaky_text(result))
        for host, result in flaky
    ]
    lines += ["%sBUDGET %s" % ((host + ": ") if many else "", text) for host, text in warnings]
    lines[1:] = [_nagios_text(line) for line in lines[1:]]
    return "\n".join(lines)


def _prom_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prom_labels(**labels: str) -> str:
    return "{%s}" % ",".join('%s="%s"' % (key, _prom_label(value)) for key, value in labels.items())


PROMETHEUS_METRICS = (
    ("smokegate_up", "1 when the checks ran on the host, 0 when they could not be run."),
    ("smokegate_ok", "1 when every critical check passed (the gate would open)."),
    ("smokegate_check_ok", "1 when the check passed or was skipped, 0 otherwise."),
    ("smokegate_check_duration_seconds", "Wall time of the check, all attempts included."),
    (
        "smokegate_check_preexisting",
        "1 when the check failed before this deploy too, so it does not judge the release.",
    ),
    ("smokegate_check_attempts", "Attempts the check took; more than 1 with a pass is flaky."),
    ("smokegate_last_run_timestamp_seconds", "Unix time at which the last run finished."),
    ("smokegate_run_duration_seconds", "Wall time of the whole run."),
    ("smokegate_budget_seconds", "The spec's budget: how long a run should take at most."),
    ("smokegate_over_budget", "1 when the run took longer than the spec's budget."),
)
FLAKY_TOTAL = (
    "smokegate_check_flaky_total",
    "Runs since the server started in which the check passed only after a retry.",
)


def _check_labels(host: str, result: Dict[str, Any]) -> str:
    return _prom_labels(
        host=host, name=result["name"], type=result["type"], severity=result["severity"]
    )


def render_prometheus(
    reports: List[Report],
    color: bool = False,
    timestamp: Optional[float] = None,
    flaky_totals: Optional[Dict[str, int]] = None,
) -> str:
    """The Prometheus text exposition format (node exporter textfile collector, /metrics).

    Every series carries the host; checks add name, type and severity. Messages are left
    out: they are for people, and a label that changes with every run is a new series.
    ``flaky_totals`` (a server's count of flaky runs per check name, since it started) adds
    the counter smokegate_check_flaky_total.
    """
    finished = time.time() if timestamp is None else timestamp
    samples: Dict[str, List[str]] = {metric[0]: [] for metric in PROMETHEUS_METRICS}
    counted: List[str] = []
    for report in reports:
        host = _prom_labels(host=report["host"])
        samples["smokegate_up"].append("%s %d" % (host, 0 if report.get("error") else 1))
        samples["smokegate_last_run_timestamp_seconds"].append("%s %.3f" % (host, finished))
        if report.get("error"):
            continue
        samples["smokegate_ok"].append("%s %d" % (host, 1 if host_ok(report) else 0))
        samples["smokegate_run_duration_seconds"].append(
            "%s %.6f" % (host, report["duration_ms"] / 1000)
        )
        budget = report.get("budget")
        if budget:
            samples["smokegate_budget_seconds"].append("%s %g" % (host, budget["seconds"]))
            samples["smokegate_over_budget"].append("%s %d" % (host, budget["exceeded"]))
        for result in report["results"]:
            labels = _check_labels(report["host"], result)
            passed = result["status"] in PASSING
            samples["smokegate_check_ok"].append("%s %d" % (labels, 1 if passed else 0))
            if result.get("preexisting"):
                samples["smokegate_check_preexisting"].append("%s 1" % labels)
            samples["smokegate_check_duration_seconds"].append(
                "%s %.6f" % (labels, result["duration_ms"] / 1000)
            )
            samples["smokegate_check_attempts"].append("%s %d" % (labels, result["attempts"]))
            if flaky_totals is not None:
                counted.append("%s %d" % (labels, flaky_totals.get(result["name"], 0)))
    lines: List[str] = []
    for name, help_text in PROMETHEUS_METRICS:
        if samples[name]:
            lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s gauge" % name]
            lines += [name + sample for sample in samples[name]]
    if counted:
        name, help_text = FLAKY_TOTAL
        lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s counter" % name]
        lines += [name + sample for sample in counted]
    return "\n".join(lines)


# --- HTML: the status page of ``smokegate serve`` ------------------------------------------
# One stylesheet, inline: the page loads nothing else (no fonts, images or scripts), and a
# narrow screen gets the same page with its rows wrapped.
_HTML_STYLE = """
:root{color-scheme:light;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}
body{margin:0 auto;max-width:60rem;padding:.75rem}
h1{font-size:1.4rem;margin:.25rem 0 .5rem}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
h1,h2,.name,.message,.note{overflow-wrap:anywhere;unicode-bidi:isolate}
ol{list-style:none;margin:0;padding:0}
.pass{--tone:#1a7f37}.fail{--tone:#cf222e}.warn{--tone:#9a6700}.skip{--tone:#6e7781}
.verdict{background:var(--tone);color:#fff;font-weight:600;padding:.75rem 1rem;
border-radius:.5rem;margin:.5rem 0}
.item{background:#fff;border:1px solid #d0d7de;border-left:.5rem solid var(--tone);
border-radius:.375rem;padding:.5rem .75rem;margin:.375rem 0}
.row{display:flex;flex-wrap:wrap;gap:.25rem .5rem;align-items:baseline}
.badge{background:var(--tone);color:#fff;font-size:.75rem;font-weight:700;
padding:.1rem .4rem;border-radius:.25rem}
.name{font-weight:600}
.marker{border:1px solid currentColor;color:#8250df;font-size:.75rem;padding:0 .3rem;
border-radius:.25rem}
.aside,.note{color:#57606a;font-size:.875rem}
.aside{margin-left:auto}
.message{margin:.25rem 0 0;white-space:pre-wrap}
.strip{display:flex;flex-wrap:wrap;gap:.25rem}
.strip li{background:var(--tone);color:#fff;font-size:.8rem;padding:.2rem .4rem;
border-radius:.25rem}
"""
# What each label looks like: red for what stops the gate, amber for what is reported
# without judging the release, grey for what did not run.
_TONES = {
    "PASS": "pass",
    "FAIL": "fail",
    "ERROR": "fail",
    "TIMEOUT": "fail",
    "WARN": "warn",
    "PREEXISTING": "warn",
    "SKIP": "skip",
}


def html_text(value: Any) -> str:
    r"""``value`` as HTML text: markup escaped, characters HTML cannot carry shown as escapes.

    >>> html_text('<script>alert("1")</script>\x1b[31m')
    '&lt;script&gt;alert(&quot;1&quot;)&lt;/script&gt;\\x1b[31m'
    """
    import html

    return html.escape(_xml_text(str(value)))


def html_tone(result: Dict[str, Any]) -> str:
    """The CSS class a check result is shown in: pass, fail, warn or skip."""
    return _TONES[label(result)]


def html_item(
    kind: str, tone: str, badge: str, name: str, markers: List[str], aside: str, message: str
) -> str:
    """One entry of a list on the page (a check, a release), from plain text: a badge in
    ``tone``, the name, its markers, ``aside`` on the right, the message below if any."""
    return (
        '<li class="item %s %s"><div class="row"><span class="badge">%s</span>'
        '<span class="name">%s</span>%s<span class="aside">%s</span></div>%s</li>'
        % (
            kind,
            tone,
            html_text(badge),
            html_text(name),
            "".join('<span class="marker">%s</span>' % html_text(marker) for marker in markers),
            html_text(aside),
            '<p class="message">%s</p>' % html_text(message) if message else "",
        )
    )


def _html_check(result: Dict[str, Any]) -> str:
    markers = [marker for marker in ("flaky", "preexisting") if result.get(marker)]
    return html_item(
        "check",
        html_tone(result),
        label(result),
        result["name"],
        markers,
        _duration(result["duration_ms"]),
        result["message"],
    )


def html_report(report: Report) -> str:
    """One host's report as an HTML section: the host, its verdict, every check.

    >>> html_report({"host": "web1", "error": "python3 not found"})
    '<section><h1>web1</h1><p class="verdict fail">NOT RUN, python3 not found</p></section>'
    """
    parts = ["<section><h1>%s</h1>" % html_text(report["host"])]
    if report.get("error"):
        parts.append('<p class="verdict fail">NOT RUN, %s</p>' % html_text(report["error"]))
        return "".join(parts) + "</section>"
    summary, results = report["summary"], report["results"]
    parts.append(
        '<p class="verdict %s">%s, %d of %d checks passed in %s</p>'
        % (
            "pass" if host_ok(report) else "fail",
            "OK" if host_ok(report) else "FAILED",
            summary["passed"],
            summary["total"],
            _duration(report["duration_ms"]),
        )
    )
    if not host_ok(report):
        parts.append(
            '<p class="note">gate stopped by: %s</p>' % html_text(", ".join(failed_checks(report)))
        )
    parts.append('<ol class="checks">%s</ol>' % "".join(_html_check(item) for item in results))
    return "".join(parts) + "</section>"


def html_page(title: str, sections: List[str], refresh: Optional[int] = None) -> str:
    """A whole HTML document around ``sections`` (HTML already), loading nothing else;
    ``refresh`` reloads it every so many seconds."""
    reload = '<meta http-equiv="refresh" content="%d">\n' % refresh if refresh else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "%s<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n%s\n</body>\n</html>\n"
        % (reload, html_text(title), _HTML_STYLE, "\n".join(sections))
    )


RENDERERS: Dict[str, Callable[..., str]] = {
    "human": render_human,
    "json": render_json,
    "junit": render_junit,
    "tap": render_tap,
    "nagios": render_nagios,
    "prometheus": render_prometheus,
}


def render(fmt: str, reports: List[Report], color: bool = False) -> str:
    """Render reports in ``fmt`` (one of RENDERERS)."""
    return RENDERERS[fmt](reports, color=color)
