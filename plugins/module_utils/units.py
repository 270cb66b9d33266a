# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes and version specifiers as people write them in a spec.

>>> parse_size("2GiB"), parse_size("500M"), parse_size("1.5GB"), parse_size(4096)
(2147483648, 524288000, 1500000000, 4096)
>>> format_size(1288490188)
'1.2 GiB'
>>> VersionSpec.parse(">=6.0,<9").contains("6.1.1-3")
True
>>> VersionSpec.parse(">=9.3").contains("9.2p1")
False
>>> VersionSpec.parse("==3.11.*").contains("3.11.7")
True
"""

from __future__ import annotations

import math
import re
from typing import List, Tuple, Union

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?(?:i?B)?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_size(value: Union[int, float, str]) -> int:
    """Bytes from a plain number or a size string.

    K, M, G, T, P and KiB..PiB are powers of 1024; KB..PB are powers of 1000.
    Raises ValueError naming what was wrong.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500M or 2GiB, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as 500M or 2GiB")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError("%r is not a size; use bytes or a unit such as 500M, 2GiB, 10GB" % value)
    number, unit = float(match.group(1)), match.group(2).upper()
    if unit in ("", "B"):
        return int(number)
    prefix = unit[0]
    # "KB" is decimal (SI); bare "K" and "KiB" are binary, as in df, ls and systemd.
    base = 1000 if unit.endswith("B") and not unit.endswith("IB") else 1024
    return int(number * base ** _POWERS[prefix])


def format_size(num_bytes: float) -> str:
    """A binary size with one decimal, as df -h would print it."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return "%d B" % value
    text = "%.1f" % value
    if text.endswith(".0"):
        text = text[:-2]
    return "%s %s" % (text, unit)


def format_seconds(value: float) -> str:
    """Seconds with at most two decimals, as a message shows them.

    >>> format_seconds(0.5), format_seconds(1.234), format_seconds(3)
    ('0.5', '1.23', '3')
    """
    return ("%.2f" % value).rstrip("0").rstrip(".")


def format_percent(value: float) -> str:
    text = "%.1f" % value
    return (text[:-2] if text.endswith(".0") else text) + "%"


def format_number(value: float) -> str:
    """A measured value for a message: its shortest exact form, with NaN, +Inf and -Inf
    written as Prometheus writes them.

    >>> [format_number(value) for value in (0.031, 3.0, 1e21, float("nan"), float("-inf"))]
    ['0.031', '3', '1e+21', 'NaN', '-Inf']
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


_NUMERIC_RE = re.compile(r"\d+")
_OPERATORS = (">=", "<=", "==", "!=", ">", "<")


def version_key(text: str) -> Tuple[int, ...]:
    """The numeric components of a version, in order: '9.2p1' -> (9, 2, 1), '6.1.1-3' -> (6, 1, 1, 3)."""
    return tuple(int(part) for part in _NUMERIC_RE.findall(text))


def _compare(left: Tuple[int, ...], right: Tuple[int, ...]) -> int:
    # Pad with zeros so that 6 == 6.0 == 6.0.0.
    width = max(len(left), len(right))
    left = left + (0,) * (width - len(left))
    right = right + (0,) * (width - len(right))
    return (left > right) - (left < right)


class VersionSpec:
    """A comma-joined list of clauses such as ``>=6.0,<9``, all of which must hold.

    Versions compare on their numeric components, missing ones counting as 0, so
    ``==3.11`` means 3.11.0; ``==3.11.*`` and ``!=3.11.*`` match on a prefix.
    """

    def __init__(self, text: str, clauses: List[Tuple[str, Tuple[int, ...]]]) -> None:
        self.text = text
        self.clauses = clauses

    @classmethod
    def parse(cls, text: str) -> VersionSpec:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("expected a version specifier such as '>=6.0,<9'")
        clauses = []
        for raw in text.split(","):
            clause = raw.strip()
            operator = next((op for op in _OPERATORS if clause.startswith(op)), None)
            if operator is None:
                if clause and clause[0].isdigit():
                    operator = "=="  # a bare version means exactly that version
                else:
                    raise ValueError(
                        "%r is not a version clause; use one of %s followed by a version"
                        % (clause, ", ".join(_OPERATORS))
                    )
            else:
                clause = clause[len(operator) :].strip()
            prefix = clause.endswith(".*")
            if prefix and operator not in ("==", "!="):
                raise ValueError("%r: a .* wildcard goes with == or != only" % raw.strip())
            key = version_key(clause)
            if not key:
                raise ValueError("%r has no version number" % raw.strip())
            clauses.append((operator + "*" if prefix else operator, key))
        return cls(text, clauses)

    def contains(self, version: str) -> bool:
        key = version_key(version)
        for operator, wanted in self.clauses:
            if operator.endswith("*"):  # ==3.11.* matches 3.11 and every 3.11.x
                same_prefix = key[: len(wanted)] == wanted
                if same_prefix != (operator == "==*"):
                    return False
                continue
            order = _compare(key, wanted)
            ok = {
                ">=": order >= 0,
                "<=": order <= 0,
                ">": order > 0,
                "<": order < 0,
                "==": order == 0,
                "!=": order != 0,
            }[operator]
            if not ok:
                return False
        return True

    def __str__(self) -> str:
        return self.text
