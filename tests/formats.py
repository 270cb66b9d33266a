"""Strict readers of the monitoring formats, as their consumers read them.

TAP 13 (a harness: plan, numbering, directives, YAML diagnostics), the Nagios plugin
output (status line, perfdata by the plugin guidelines) and the Prometheus text format
(prometheus_client's own parser, plus the HELP/TYPE rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from prometheus_client.parser import text_string_to_metric_families

TAP_LINE = re.compile(r"^(ok|not ok) (\d+) - (.*?)(?: # (SKIP|TODO)\b ?(.*))?$")
NAGIOS_STATUS = re.compile(r"^SMOKEGATE (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+?)(?: \| (.*))?$")
# 'label'=value[UOM];[warn];[crit];[min];[max]
PERFDATA = re.compile(
    r"('(?:[^']|'')+'|[^'= ]+)=(-?[\d.]+)(s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;([\d.:~@-]*))?(?:;([\d.:~@-]*))?(?:;(-?[\d.]*))?(?:;(-?[\d.]*))?(?= |$)"
)


@dataclass
class TapPoint:
    ok: bool
    number: int
    description: str
    directive: str | None
    reason: str
    diagnostics: dict = field(default_factory=dict)


def parse_tap(text: str) -> list[TapPoint]:
    lines = text.splitlines()
    assert lines[0] == "TAP version 13", lines[0]
    match = re.fullmatch(r"1\.\.(\d+)", lines[1])
    assert match, lines[1]
    points: list[TapPoint] = []
    index = 2
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):  # a diagnostic line: for people, not the harness
            index += 1
            continue
        parsed = TAP_LINE.match(line)
        assert parsed, "not a TAP test line: %r" % line
        point = TapPoint(
            parsed.group(1) == "ok",
            int(parsed.group(2)),
            parsed.group(3),
            parsed.group(4),
            parsed.group(5) or "",
        )
        index += 1
        if index < len(lines) and lines[index] == "  ---":
            end = lines.index("  ...", index)
            point.diagnostics = yaml.safe_load("\n".join(lines[index + 1 : end]))
            index = end + 1
        points.append(point)
    assert [point.number for point in points] == list(range(1, int(match.group(1)) + 1))
    return points


@dataclass
class NagiosOutput:
    status: str
    summary: str
    perfdata: dict[str, tuple]
    long_output: list[str]


def parse_nagios(text: str) -> NagiosOutput:
    first, *rest = text.splitlines()
    match = NAGIOS_STATUS.match(first)
    assert match, "not a plugin status line: %r" % first
    perfdata: dict[str, tuple] = {}
    raw = match.group(3) or ""
    consumed = 0
    for item in PERFDATA.finditer(raw):
        assert raw[consumed : item.start()].strip() == "", "bad perfdata at %r" % raw[consumed:]
        label = item.group(1)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        perfdata[label] = (float(item.group(2)), item.group(3) or "", *item.groups()[3:])
        consumed = item.end()
    assert raw[consumed:].strip() == "", "bad perfdata at %r" % raw[consumed:]
    for line in rest:
        assert "|" not in line
    return NagiosOutput(match.group(1), match.group(2), perfdata, rest)


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric name to its samples (a counter's name without _total); every metric has HELP
    and TYPE lines before it."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, family in families.items():
        assert family.type in ("gauge", "counter") and family.documentation, name
        exposed = name + "_total" if family.type == "counter" else name
        assert "# HELP %s " % exposed in text, name
        assert "# TYPE %s %s" % (exposed, family.type) in text, name
        assert text.index("# TYPE %s " % exposed) < text.index("\n%s{" % exposed), name
    return {
        name: [(dict(sample.labels), sample.value) for sample in family.samples]
        for name, family in families.items()
    }
