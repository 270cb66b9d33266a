"""``smokegate add``: write a check for what is true on this host now, as goss's ``add`` does.

Each kind of thing is read through the engine's probe, the check written for it is run once
here and must pass, and it is added to the spec file's ``checks`` without rewriting anything
else in the file (a YAML file keeps its comments and layout; JSON has none to keep).

>>> name_for("port", "5432", ["port 5432", "port 5432 (2)"])
'port 5432 (3)'
>>> size_below(10 * 1024**3)
'5GiB'
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible_collections.smokegate.core.plugins.module_utils import configs, probes
from ansible_collections.smokegate.core.plugins.module_utils.checks import DEFAULT_VERSION_RE
from ansible_collections.smokegate.core.plugins.module_utils.spec import SpecError, parse_spec
from ansible_collections.smokegate.core.plugins.module_utils.urls import redact_url

TIMEOUT = 10.0
DEFAULT_MIN_DAYS = 14
# How much slower than now an HTTP answer may be: 3 times, but never under this, since a
# local answer's few milliseconds vary by more than that from run to run.
LATENCY_FACTOR = 3
MIN_LATENCY = 0.1
VERSION_ARGS = (["--version"], ["-version"], ["-V"], ["version"])
FORMATS_BY_SUFFIX = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".env": "env",
}

Body = dict[str, Any]
# A check's fields for what was found, and what the user should know about them.
Observation = tuple[Body, list[str]]


class AddError(Exception):
    """Nothing was added: what is not true here, or why the file cannot take the check."""


def size_below(free: int) -> str:
    """Half of ``free`` bytes as a size a person would write, rounded down."""
    half = free / 2
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if half >= 1024**power:
            value = math.floor(10 * half / 1024**power) / 10
            return ("%.1f" % value).rstrip("0").rstrip(".") + unit
    return str(int(half))


def _binary(probe: probes.SystemProbe, target: str) -> Observation:
    path = probe.which(target)
    if path is None:
        raise AddError("%s is not found on PATH" % target)
    for args in VERSION_ARGS:
        try:
            status, output = probe.run([path, *args], timeout=TIMEOUT)
        except (OSError, TimeoutError):
            continue
        found = DEFAULT_VERSION_RE.search(output)
        if status == 0 and found:
            body: Body = {"name": target, "version": ">=" + found.group(0)}
            if args != VERSION_ARGS[0]:
                body["args"] = args
            return body, []
    return {"name": target}, ["%s printed no version: the check only finds it" % path]


def _mount(probe: probes.SystemProbe, target: str) -> Observation:
    entry = probe.mount_at(target)
    if entry is None:
        holder = probe.mount_containing(target)
        where = " (it is on %s, %s)" % (holder.target, holder.fstype) if holder else ""
        raise AddError("%s is not a mount point%s" % (target, where))
    return {"path": target, "fstype": entry.fstype, "options": list(entry.options)}, []


def _disk(probe: probes.SystemProbe, target: str) -> Observation:
    usage = probe.disk_usage(target)
    if usage.free < 2:
        raise AddError("%s has no free space to keep" % target)
    return {"path": target, "min_free": size_below(usage.free)}, []


def _service(probe: probes.SystemProbe, target: str) -> Observation:
    from ansible_collections.smokegate.core.plugins.module_utils.spec import VALIDATORS

    try:
        unit = VALIDATORS["unit"](target)
    except ValueError as exc:
        raise AddError(str(exc)) from None
    try:
        state = probe.service_state(unit, timeout=TIMEOUT)
    except OSError as exc:
        raise AddError("cannot read %s: %s" % (unit, exc)) from None
    if state.load_state == "not-found":
        raise AddError("there is no unit %s on this host" % unit)
    body: Body = {"name": unit, "active": state.active_state in ("active", "reloading")}
    if state.unit_file_state:
        body["enabled"] = state.enabled
    return body, [] if body["active"] else ["%s is not active now: the check says so" % unit]


def _port(probe: probes.SystemProbe, target: str) -> Observation:
    number, _slash, protocol = target.partition("/")
    protocol = protocol or "tcp"
    if not number.isdigit() or protocol not in ("tcp", "udp"):
        raise AddError("%r is not a port such as 5432 or 53/udp" % target)
    if not any(listener.port == int(number) for listener in probe.listeners(protocol)):
        raise AddError("nothing listens on %s port %s now" % (protocol, number))
    body: Body = {"port": int(number)}
    if protocol != "tcp":
        body["protocol"] = protocol
    return body, []


def _process(probe: probes.SystemProbe, target: str) -> Observation:
    running = [process for process in probe.processes() if process.name == target]
    if not running:
        raise AddError("no process named %s is running" % target)
    body: Body = {"name": target}
    users = {process.user for process in running}
    if len(users) == 1:
        body["user"] = users.pop()
    return body, []


def _file(probe: probes.SystemProbe, target: str) -> Observation:
    try:
        info = probe.file_info(target, follow_links=False)
    except FileNotFoundError:
        return {"path": target, "exists": False}, [
            "%s does not exist now: the check says so" % target
        ]
    if info.type == "symlink":
        return {"path": target, "type": "symlink"}, []
    info = probe.file_info(target)
    body: Body = {"path": target}
    if info.type in ("file", "directory"):
        body["type"] = info.type
    name = os.path.basename(target)
    format = FORMATS_BY_SUFFIX.get(os.path.splitext(name)[1] or name)
    if format and info.type == "file":
        text = probe.read_file(target, 8 * 1024 * 1024).decode("utf-8", "replace")
        try:
            if configs.problem(format, text) is None:
                body["format"] = format
        except configs.Unsupported:
            pass  # this host cannot tell: no format is recorded
    return body, []


def _tls(probe: probes.SystemProbe, target: str) -> Observation:
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d+)", target)
    if not match:
        raise AddError("%r is not a host:port such as example.internal:443" % target)
    host, port = match.group(1), int(match.group(2))
    try:
        peer = probe.tls_peer(host, port, host, None, True, timeout=TIMEOUT)
    except (OSError, ValueError) as exc:
        raise AddError("cannot read the certificate of %s: %s" % (target, exc)) from None
    days_left = (peer.certificate.not_after - probe.now()) / 86400
    if days_left <= 0:
        raise AddError("the certificate of %s has expired" % target)
    body: Body = {"host": host, "port": port}
    notes = []
    if days_left < DEFAULT_MIN_DAYS:
        body["min_days"] = math.floor(days_left)
        notes.append("its certificate has %.1f days left" % days_left)
    if peer.verify_error is not None:
        body["verify"] = False  # what is true now: it does not verify here
        notes.append(
            "its certificate does not verify here (%s): the check has verify: false"
            % peer.verify_error
        )
    return body, notes


def _http(probe: probes.SystemProbe, target: str) -> Observation:
    from ansible_collections.smokegate.core.plugins.module_utils.urls import url_problem

    problem = url_problem(target)
    if problem is not None:
        raise AddError(problem)
    slowest, status = 0.0, 0
    for _attempt in range(3):  # the slowest of three: one quick answer says little
        try:
            response = probe.http("GET", target, {}, timeout=TIMEOUT)
        except Exception as exc:
            raise AddError("GET %s failed: %s" % (redact_url(target), exc)) from None
        slowest, status = max(slowest, response.seconds), response.status
    latency = max(MIN_LATENCY, LATENCY_FACTOR * slowest)
    digits = 1 - math.floor(math.log10(latency))  # two significant digits, rounded up
    body: Body = {"url": target}
    notes = []
    if status != 200:
        body["status"] = status
        notes.append("it answers %d now: the check expects that" % status)
    body["max_latency"] = math.ceil(latency * 10**digits) / 10**digits
    return body, notes


OBSERVERS: dict[str, Callable[[probes.SystemProbe, str], Observation]] = {
    "binary": _binary,
    "mount": _mount,
    "disk": _disk,
    "service": _service,
    "port": _port,
    "process": _process,
    "file": _file,
    "tls": _tls,
    "http": _http,
}


def name_for(type_name: str, target: str, taken: list[str]) -> str:
    """A name no check of the spec has yet: TYPE TARGET, numbered when that is taken."""
    base = "%s %s" % (type_name, redact_url(target) if type_name == "http" else target)
    name, number = base, 1
    while name in taken:
        number += 1
        name = "%s (%d)" % (base, number)
    return name


def _item_text(check: Body, indent: str) -> str:
    import yaml

    text = yaml.safe_dump([check], sort_keys=False, default_flow_style=None, width=1000)
    lines = text.splitlines()
    return "".join(indent + line + "\n" for line in lines)


def _last_line(node: Any) -> int:
    """The index of the line after which a node ends (its last block-style leaf)."""
    while getattr(node, "flow_style", True) is False and node.value:
        node = node.value[-1][1] if isinstance(node.value[-1], tuple) else node.value[-1]
    end = node.end_mark
    return end.line if end.column > 0 else end.line - 1


def _yaml_with(text: str, check: Body) -> str:
    """The YAML text with the check appended to its checks list, nothing else touched."""
    import yaml

    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if root is None:
        return "".join(lines) + "checks:\n" + _item_text(check, "  ")
    sequence = root
    if isinstance(root, yaml.MappingNode):
        values = {key.value: value for key, value in root.value}
        if "checks" not in values:
            return "".join(lines) + "checks:\n" + _item_text(check, "  ")
        sequence = values["checks"]
        if isinstance(sequence, yaml.ScalarNode) and sequence.value in ("", "~", "null"):
            line = sequence.start_mark.line  # checks: with nothing under it yet
            return "".join([*lines[: line + 1], _item_text(check, "  "), *lines[line + 1 :]])
    if not isinstance(sequence, yaml.SequenceNode):
        raise AddError("its checks is not a list")
    if sequence.flow_style or not sequence.value:
        raise AddError("its checks are written in flow style ([...]): write them as a block list")
    first = sequence.value[0].start_mark
    dash = lines[first.line].rfind("-", 0, first.column)
    indent = lines[first.line][:dash]
    after = _last_line(sequence.value[-1]) + 1
    return "".join([*lines[:after], _item_text(check, indent), *lines[after:]])


def _read(path: Path) -> tuple[str, Any]:
    from smokegate.specfile import read_document

    if not path.exists():
        return "", None
    document = read_document(str(path))
    return path.read_text(encoding="utf-8"), document


def _names(document: Any) -> list[str]:
    items = document.get("checks") if isinstance(document, dict) else document
    if not isinstance(items, list):
        return []
    return [item["name"] for item in items if isinstance(item, dict) and "name" in item]


def _write(path: Path, text: str) -> None:
    # Whole or not at all: a reader never sees half a spec. A spec that is a link is
    # written where it points, so that the link stays one.
    path = Path(os.path.realpath(path))
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=str(path.parent), prefix=".%s." % path.name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def add(type_name: str, target: str, path: Path, name: str | None = None) -> Observation:
    """Observe ``target``, append a passing check for it to the spec at ``path``; returns
    the check added (URL credentials masked) and notes on it. Raises AddError, SpecError or
    SpecFileError."""
    from smokegate.engine import runner

    probe = probes.SystemProbe()
    body, notes = OBSERVERS[type_name](probe, target)
    text, document = _read(path)
    taken = _names(document)
    if name is not None and name in taken:
        raise AddError("%s already has a check named %r" % (path, name))
    check = {"name": name or name_for(type_name, target, taken), type_name: body}
    [parsed] = parse_spec([check])
    [result] = runner.run_checks([parsed], probe=probe)["results"]
    if result["status"] != "pass":
        raise AddError(
            "the check for %s does not pass here (%s: %s)"
            % (target, result["status"], result["message"])
        )
    if path.suffix == ".json":
        document = document if document is not None else {"checks": []}
        items = document.get("checks") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise AddError("its checks is not a list")
        items.append(check)
        updated = json.dumps(document, indent=2) + "\n"
    else:
        updated = _yaml_with(text, check)
    from smokegate.specfile import SpecFileError, parse_document

    try:
        written = parse_document(str(path), updated)
    except SpecFileError as exc:
        raise AddError("the check would break %s: %s" % (path, exc)) from None
    if _names(written)[-1:] != [check["name"]]:
        raise AddError("the check would not land in the checks list of %s" % path)
    try:
        parse_spec(written)
    except SpecError as exc:
        raise AddError(
            "%s would not be a valid spec with it: %s" % (path, "; ".join(exc.errors))
        ) from None
    _write(path, updated)
    shown = json.loads(json.dumps(check))
    if type_name == "http":
        shown["http"]["url"] = redact_url(shown["http"]["url"])
    return shown, notes


def added_text(check: Body) -> str:
    """The check as the lines it was added as."""
    return _item_text(check, "  ")
