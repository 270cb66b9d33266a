# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A value in a JSON document by its path: keys and list indexes joined by dots.

>>> document = {"status": "ok", "checks": {"db": {"ok": True}}, "items": [{"id": 7}]}
>>> lookup(document, "checks.db.ok"), lookup(document, "items.0.id"), lookup(document, "items.1")
((True, True), (True, 7), (False, None))
>>> json_type(7), json_type(7.5), json_type(True), json_type(None), json_type([])
('integer', 'number', 'boolean', 'null', 'array')
"""

from __future__ import annotations

from typing import Any, Tuple

MISSING: Tuple[bool, Any] = (False, None)


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
