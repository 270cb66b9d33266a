"""Strict readers of the monitoring formats, as their consumers read them.

TAP 13 (a harness: plan, numbering, directives, YAML diagnostics), the Nagios plugin
output (status line, perfdata by the plugin guidelines) and the Prometheus text format
(prometheus_client's own parser, plus the HELP/TYPE rules); HTML as a checker of its
nesting reads it (html.parser); PNG as a decoder reads it (8-bit RGB or RGBA, zlib).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

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


VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}
VOID_ELEMENTS |= {"source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""  # every character of text inside it, its children's included
    inside: list[Element] = field(default_factory=list)  # every element within it, in order

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def find(self, tag: str, css_class: str | None = None) -> list[Element]:
        return _matching(self.inside, tag, css_class)


def _matching(elements: list[Element], tag: str, css_class: str | None) -> list[Element]:
    return [
        element
        for element in elements
        if element.tag == tag and (css_class is None or css_class in element.classes)
    ]


@dataclass
class HtmlDocument:
    doctype: str
    elements: list[Element]  # in document order

    def find(self, tag: str, css_class: str | None = None) -> list[Element]:
        return _matching(self.elements, tag, css_class)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.elements: list[Element] = []
        self.open: list[Element] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _value in attrs]
        assert len(names) == len(set(names)), "<%s> repeats an attribute: %s" % (tag, names)
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        for outer in self.open:
            outer.inside.append(element)
        if tag not in VOID_ELEMENTS:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in VOID_ELEMENTS, "<%s/> is not a void element" % tag
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID_ELEMENTS, "</%s> closes a void element" % tag
        assert self.open, "</%s> closes nothing" % tag
        assert self.open[-1].tag == tag, "</%s> closes <%s>" % (tag, self.open[-1].tag)
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data


def parse_html(text: str) -> HtmlDocument:
    """Every element with its attributes and text; every element closed, in order."""
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.open, "never closed: %s" % [element.tag for element in checker.open]
    return HtmlDocument(checker.doctype, checker.elements)


@dataclass
class Png:
    width: int
    height: int
    colours: Counter  # (red, green, blue) to how many pixels have it


def _paeth(left: int, up: int, up_left: int) -> int:
    estimate = left + up - up_left
    distances = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    if distances[0] <= distances[1] and distances[0] <= distances[2]:
        return left
    return up if distances[1] <= distances[2] else up_left


def read_png(data: bytes) -> Png:
    """The image's size and colours: 8-bit RGB or RGBA, not interlaced (what browsers write)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, "bad CRC in %r" % kind
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    assert b"IEND" in chunks, "no IEND"
    width, height, depth, colour_type, _method, _filter, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, chunks[b"IHDR"]
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (stride + 1), "IDAT holds %d bytes" % len(raw)
    colours: Counter = Counter()
    previous = bytearray(stride)
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)])
        if kind == 1:
            for index in range(channels, stride):
                line[index] = (line[index] + line[index - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((byte + up) & 0xFF for byte, up in zip(line, previous))
        elif kind == 3:
            for index in range(stride):
                left = line[index - channels] if index >= channels else 0
                line[index] = (line[index] + (left + previous[index]) // 2) & 0xFF
        elif kind == 4:
            for index in range(stride):
                left = line[index - channels] if index >= channels else 0
                up_left = previous[index - channels] if index >= channels else 0
                line[index] = (line[index] + _paeth(left, previous[index], up_left)) & 0xFF
        else:
            assert kind == 0, "filter type %d" % kind
        colours.update(zip(line[0::channels], line[1::channels], line[2::channels]))
        previous = line
    return Png(width, height, colours)
