# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A value in a JSON document by its path (keys and list indexes joined by dots), and
whether it is what a check expects.

>>> document = {"status": "ok", "checks": {"db": {"ok": True}}, "items": [{"id": 7}]}
>>> lookup(document, "checks.db.ok"), lookup(document, "items.0.id"), lookup(document, "items.1")
((True, True), (True, 7), (False, None))
>>> json_type(7), json_type(7.5), json_type(True), json_type(None), json_type([])
('integer', 'number', 'boolean', 'null', 'array')
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Tuple

MISSING: Tuple[bool, Any] = (False, None)
TESTS = ("regex", "min", "max", "type", "exists")
TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
SHOWN_VALUE = 60  # characters of a JSON value in a message


def lookup(document: Any, path: str) -> Tuple[bool, Any]:
    """(True, the value) at ``path``, or (False, None) when nothing is there."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list):
            if not part.isdigit() or int(part) >= len(value):
                return MISSING
            value = value[int(part)]
        else:
            return MISSING
    return True, value


def json_type(value: Any) -> str:
    """The JSON type of a decoded value; an integer is also a number."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def same(expected: Any, value: Any) -> bool:
    """JSON equality: true is not 1, and 1 is 1.0."""
    if isinstance(expected, list) or isinstance(value, list):
        return (
            isinstance(expected, list)
            and isinstance(value, list)
            and len(expected) == len(value)
            and all(same(a, b) for a, b in zip(expected, value))
        )
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return expected == value
    return type(expected) is type(value) and expected == value


def shown(value: Any) -> str:
    """A value as JSON, cut to SHOWN_VALUE characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 3] + "..."


def expectation_problem(
    found: bool, value: Any, wanted: Any, matches: Callable[[str, str], bool]
) -> Optional[str]:
    """How the value at a path (``found`` or not) differs from ``wanted``: a value, or a
    mapping of TESTS. None when it is as expected. ``matches`` searches a regex in text.

    >>> expectation_problem(True, "degraded", "ok", None)
    'is "degraded", expected "ok"'
    >>> expectation_problem(True, 120, {"max": 100}, None)
    'is 120, expected at most 100'
    """
    if not isinstance(wanted, dict):
        if not found:
            return "is missing, expected %s" % shown(wanted)
        return None if same(wanted, value) else "is %s, expected %s" % (shown(value), shown(wanted))
    if wanted.get("exists") is False:
        return "is %s, expected no such path" % shown(value) if found else None
    if not found:
        return "is missing"
    kind = json_type(value)
    if (
        "type" in wanted
        and kind != wanted["type"]
        and (wanted["type"], kind) != ("number", "integer")
    ):
        return "is %s (%s), expected %s" % (shown(value), kind, wanted["type"])
    if "min" in wanted or "max" in wanted:
        if kind not in ("integer", "number"):
            return "is %s, expected a number" % shown(value)
        if "min" in wanted and value < wanted["min"]:
            return "is %s, expected at least %s" % (shown(value), wanted["min"])
        if "max" in wanted and value > wanted["max"]:
            return "is %s, expected at most %s" % (shown(value), wanted["max"])
    if "regex" in wanted:
        text = value if isinstance(value, str) else json.dumps(value)
        if not matches(wanted["regex"], text):
            return "is %s, does not match %s" % (shown(value), wanted["regex"])
    return None
