# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate a check spec; every error is reported at once, before anything runs.

>>> checks = parse_spec({"checks": [{"name": "root", "disk": {"path": "/", "min_free": "1M"}}]})
>>> checks[0].type, checks[0].params["min_free"], checks[0].timeout
('disk', 1048576, 5.0)
>>> try:
...     parse_spec({"checks": [{"name": "free space", "disk": {"path": "/", "min_fre": 1}}]})
... except SpecError as exc:
...     print(exc)
check 'free space': disk.min_fre is not a known field; did you mean min_free?
check 'free space': disk needs at least one of min_free, min_free_percent, min_free_inodes_percent
"""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .checks import CHECK_TYPES
from .jsonpath import TESTS as JSON_TESTS
from .jsonpath import TYPES as JSON_TYPES
from .schema import COMMON_FIELDS, Field
from .units import VersionSpec, parse_size
from .urls import url_problem

TOP_LEVEL_KEYS = ("checks", "budget")
# A document past these is refused before anything walks it: YAML aliases are shared
# references, so a few lines can stand for more values than memory holds once templating,
# JSON or a message spells them out, and deep nesting exhausts recursive walkers.
MAX_VALUES = 100_000
MAX_DEPTH = 32


class SpecError(ValueError):
    """A spec that must not run. ``errors`` holds one line per problem."""

    def __init__(self, errors: List[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class Check:
    """One validated check: its type, its normalised fields and the common keys."""

    __slots__ = ("name", "params", "retries", "retry_delay", "severity", "timeout", "type")

    def __init__(
        self,
        name: str,
        type: str,
        params: Dict[str, Any],
        severity: str,
        timeout: float,
        retries: int,
        retry_delay: float,
    ) -> None:
        self.name = name
        self.type = type
        self.params = params
        self.severity = severity
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay

    def __repr__(self) -> str:
        return "Check(%r, %s)" % (self.name, self.type)


class Checks(List[Check]):
    """A spec's validated checks, in spec order, with its ``budget``: the seconds a run
    should take at most (None: no budget). A slower run warns; it never fails for that."""

    def __init__(self, checks: Iterable[Check] = (), budget: Optional[float] = None) -> None:
        super().__init__(checks)
        self.budget = budget


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib  # only a spec with errors needs it

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return "; did you mean %s?" % close[0] if close else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(value: Any) -> Any:
    # Templated values arrive as strings ("{{ app_port }}" -> "8080"): read them as numbers.
    if isinstance(value, str):
        try:
            value = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            return value
    # nan and inf (YAML .nan, JSON Infinity, "inf" from a template) are no time, size or
    # count: nan compares false with everything, and neither can be waited for.
    if _is_number(value) and not -sys.float_info.max <= value <= sys.float_info.max:
        problem = "too large" if isinstance(value, int) else "not a finite number"
        raise ValueError("%r is %s" % (value, problem))
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _path(value: Any) -> str:
    value = _string(value)
    if not value.startswith("/"):
        raise ValueError("%r is not an absolute path" % value)
    return value


def _string_list(value: Any) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("expected a list of strings")
    return list(value)


def _string_or_list(value: Any) -> List[str]:
    return [_string(value)] if isinstance(value, str) else _string_list(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _percent(value: Any) -> float:
    value = _numeric(value)
    if not _is_number(value) or not 0 <= value <= 100:
        raise ValueError("expected a percentage from 0 to 100")
    return float(value)


def _float(value: Any) -> float:
    value = _numeric(value)
    if not _is_number(value):
        raise ValueError("expected a number")
    return float(value)


def _port(value: Any) -> int:
    value = _numeric(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return value


def _positive(value: Any) -> float:
    value = _numeric(value)
    if not _is_number(value) or value <= 0:
        raise ValueError("expected a number of seconds greater than 0")
    return float(value)


def _delay(value: Any) -> float:
    value = _numeric(value)
    if not _is_number(value) or value < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return float(value)


def _count(value: Any) -> int:
    value = _numeric(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def _regex(value: Any) -> str:
    value = _string(value)
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError("%r is not a valid regular expression: %s" % (value, exc)) from None
    return value


def _version(value: Any) -> VersionSpec:
    if _is_number(value):
        value = str(value)  # YAML reads `version: 6.1` as a float
    return VersionSpec.parse(value)


def _statuses(value: Any) -> List[int]:
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(
        isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599
        for code in codes
    ):
        raise ValueError("expected an HTTP status code (100-599) or a list of them")
    return list(codes)


def _headers(value: Any) -> Dict[str, str]:
    # Never echo a header value in an error: it is a secret.
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and key and isinstance(item, str) for key, item in value.items()
    ):
        raise ValueError("expected a mapping of header names to string values")
    return dict(value)


def _exits(value: Any) -> List[int]:
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(
        isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255 for code in codes
    ):
        raise ValueError("expected an exit status (0-255) or a list of them")
    return list(codes)


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _environment(value: Any) -> Dict[str, str]:
    # Never echo a value in an error: they are secrets.
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and _VARIABLE.match(key) and isinstance(item, str)
        for key, item in value.items()
    ):
        raise ValueError("expected a mapping of variable names to string values")
    return dict(value)


_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,255}$")
UNIT_SUFFIXES = (
    ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
    ".timer", ".slice", ".scope",
)  # fmt: skip


def _unit(value: Any) -> str:
    value = _string(value)
    if not _UNIT.match(value) or value.startswith("-"):
        raise ValueError("%r is not a systemd unit name" % value)
    return value if value.endswith(UNIT_SUFFIXES) else value + ".service"


def _mode(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(
            "write the mode as a quoted octal string, such as '0640' (an unquoted 0640 is"
            " read as a number)"
        )
    if not re.match(r"^0?[0-7]{3}$|^[0-7]{4}$", value):
        raise ValueError("%r is not an octal mode such as '0640'" % value)
    return int(value, 8)


def _address(value: Any) -> str:
    import ipaddress  # only specs that name an address need it

    try:
        return str(ipaddress.ip_address(_string(value)))
    except ValueError:
        raise ValueError("%r is not an IPv4 or IPv6 address" % value) from None


def _days(value: Any) -> float:
    value = _numeric(value)
    if not _is_number(value) or value < 0:
        raise ValueError("expected a number of days, 0 or more")
    return float(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError("expected a JSON value (text, number, true, false, null or a list)")
    return _numeric(value) if _is_number(value) else value


def _json_tests(path: str, tests: Dict[str, Any]) -> Dict[str, Any]:
    unknown = [key for key in tests if key not in JSON_TESTS]
    if unknown or not tests:
        raise ValueError(
            "%s: %s is not a test; use %s"
            % (path, ", ".join(map(str, unknown)) or "{}", ", ".join(JSON_TESTS))
        )
    checked: Dict[str, Any] = {}
    for key, value in tests.items():
        if key == "regex":
            checked[key] = _regex(value)
        elif key in ("min", "max"):
            number = _numeric(value)
            if not _is_number(number):
                raise ValueError("%s: %s: expected a number" % (path, key))
            checked[key] = number
        elif key == "type":
            if value not in JSON_TYPES:
                raise ValueError(
                    "%s: type: %r is not one of %s" % (path, value, ", ".join(JSON_TYPES))
                )
            checked[key] = value
        else:
            checked[key] = _bool(value)
    if checked.get("exists") is False and len(checked) > 1:
        raise ValueError("%s: exists: false takes no other test" % path)
    return checked


def _expectations(value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a mapping of JSON paths to expected values")
    checked: Dict[str, Any] = {}
    for path, expected in value.items():
        if not isinstance(path, str) or not all(path.split(".")):
            raise ValueError("%r is not a JSON path such as checks.db.ok" % (path,))
        try:
            if isinstance(expected, dict):
                checked[path] = _json_tests(path, expected)
            else:
                checked[path] = _json_value(expected)
        except ValueError as exc:
            message = str(exc)
            shown = message if message.startswith(path) else "%s: %s" % (path, message)
            raise ValueError(shown) from None
    return checked


def _size(value: Any) -> int:
    return parse_size(_numeric(value))


def _url(value: Any) -> str:
    # Never echo the URL in an error: it may hold a password.
    value = _string(value)
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


VALIDATORS: Dict[str, Callable[[Any], Any]] = {
    "str": _string,
    "path": _path,
    "strlist": _string_or_list,
    "list": _string_list,
    "bool": _bool,
    "size": _size,
    "percent": _percent,
    "float": _float,
    "port": _port,
    "number": _positive,
    "delay": _delay,
    "count": _count,
    "regex": _regex,
    "version": _version,
    "statuses": _statuses,
    "headers": _headers,
    "url": _url,
    "exits": _exits,
    "environment": _environment,
    "unit": _unit,
    "mode": _mode,
    "address": _address,
    "days": _days,
    "expectations": _expectations,
}


def _validate_field(field: Field, value: Any) -> Any:
    if field.kind == "choice":
        if value not in (field.choices or ()):
            raise ValueError("%r is not one of %s" % (value, ", ".join(field.choices or ())))
        return value
    return VALIDATORS[field.kind](value)


def _label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name.strip():
        return "check %r" % name
    return "check #%d" % (index + 1)


def _parse_check(index: int, raw: Any, errors: List[str]) -> Optional[Check]:
    label = _label(index, raw)
    if not isinstance(raw, dict):
        errors.append("%s: expected a mapping with a name and one check type" % label)
        return None
    before = len(errors)
    known = list(COMMON_FIELDS) + list(CHECK_TYPES)
    for key in raw:
        if key not in COMMON_FIELDS and key not in CHECK_TYPES:
            errors.append(
                "%s: %s is not a known key%s" % (label, key, _did_you_mean(str(key), known))
            )

    common: Dict[str, Any] = {}
    for field in COMMON_FIELDS.values():
        if raw.get(field.name) is None:
            if field.required:
                errors.append("%s: %s is required" % (label, field.name))
            common[field.name] = field.default
            continue
        try:
            common[field.name] = _validate_field(field, raw[field.name])
        except ValueError as exc:
            errors.append("%s: %s: %s" % (label, field.name, exc))

    # A key with no value (YAML `mount:`, or an unset Ansible suboption) counts as absent.
    types = [key for key in raw if key in CHECK_TYPES and raw[key] is not None]
    if not types:
        errors.append("%s: no check type; use one of %s" % (label, ", ".join(CHECK_TYPES)))
        return None
    if len(types) > 1:
        errors.append("%s: has %s; a check has exactly one type" % (label, " and ".join(types)))
        return None

    type_name = types[0]
    check_type = CHECK_TYPES[type_name]
    body = raw[type_name]
    if not isinstance(body, dict):
        errors.append(
            "%s: %s: expected a mapping of fields (%s)"
            % (label, type_name, ", ".join(check_type.fields))
        )
        return None
    params: Dict[str, Any] = {}
    for key in body:
        if key not in check_type.fields:
            errors.append(
                "%s: %s.%s is not a known field%s"
                % (label, type_name, key, _did_you_mean(str(key), list(check_type.fields)))
            )
    for field in check_type.fields.values():
        if body.get(field.name) is None:
            if field.required:
                errors.append("%s: %s.%s is required" % (label, type_name, field.name))
            params[field.name] = field.default
            continue
        try:
            params[field.name] = _validate_field(field, body[field.name])
        except ValueError as exc:
            errors.append("%s: %s.%s: %s" % (label, type_name, field.name, exc))
    if check_type.requires_one_of and not any(
        body.get(name) is not None for name in check_type.requires_one_of
    ):
        errors.append(
            "%s: %s needs at least one of %s"
            % (label, type_name, ", ".join(check_type.requires_one_of))
        )
    if check_type.rule is not None and len(errors) == before:
        errors.extend(
            "%s: %s %s" % (label, type_name, problem) for problem in check_type.rule(params)
        )
    if len(errors) > before:
        return None
    return Check(
        name=common["name"],
        type=type_name,
        params=params,
        severity=common["severity"],
        timeout=common["timeout"],
        retries=common["retries"],
        retry_delay=common["retry_delay"],
    )


def spec_document(checks: Any, budget: Optional[float] = None) -> Any:
    """The spec document of a list of checks and a budget, as parse_spec reads it (the
    Ansible modules take them as two options).

    >>> spec_document([]), spec_document([], 2.5)
    ([], {'checks': [], 'budget': 2.5})
    """
    return checks if budget is None else {"checks": checks, "budget": budget}


def check_size(document: Any) -> None:
    """Raise SpecError when a document has too many values or is nested too deeply.

    Values are counted as written out, every alias expanded, and the count stops at the
    limit, so a "billion laughs" document is refused at once:

    >>> laughs = ["lol"] * 10
    >>> for _ in range(8):
    ...     laughs = [laughs] * 10
    >>> try:
    ...     check_size({"checks": laughs})
    ... except SpecError as exc:
    ...     print(exc)
    spec: more than 100000 values once its aliases are expanded
    """
    counted = 1
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if not isinstance(value, (dict, list)) or not value:
            continue
        if depth >= MAX_DEPTH:
            raise SpecError(["spec: nested more than %d levels deep" % MAX_DEPTH])
        counted += len(value)  # a mapping's keys are scalars: its values are walked
        if counted > MAX_VALUES:
            raise SpecError(
                ["spec: more than %d values once its aliases are expanded" % MAX_VALUES]
            )
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children)


def parse_spec(document: Any) -> Checks:
    """Validate a spec document (a mapping with ``checks`` and an optional ``budget``, or the
    bare list).

    Returns the checks in spec order, or raises SpecError listing every problem.
    """
    check_size(document)
    errors: List[str] = []
    budget = None
    if isinstance(document, dict):
        if document.get("budget") is not None:
            try:
                budget = _positive(document["budget"])
            except ValueError as exc:
                errors.append("spec: budget: %s" % exc)
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                errors.append(
                    "spec: %s is not a known key%s" % (key, _did_you_mean(str(key), TOP_LEVEL_KEYS))
                )
        raw_checks = document.get("checks")
        if raw_checks is None:
            errors.append("spec: checks is required (a list of checks)")
            raise SpecError(errors)
    else:
        raw_checks = document
    if not isinstance(raw_checks, list):
        raise SpecError([*errors, "spec: checks must be a list of checks"])
    if not raw_checks:
        raise SpecError([*errors, "spec: checks is empty; nothing would be checked"])

    checks = Checks(budget=budget)
    first_seen: Dict[str, int] = {}
    for index, raw in enumerate(raw_checks):
        check = _parse_check(index, raw, errors)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            if name in first_seen:
                errors.append(
                    "check #%d: name %r is already used by check #%d"
                    % (index + 1, name, first_seen[name] + 1)
                )
            else:
                first_seen[name] = index
        if check is not None:
            checks.append(check)
    if errors:
        raise SpecError(errors)
    return checks
