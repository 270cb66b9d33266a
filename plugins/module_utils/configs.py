# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a configuration file's text parses, and if not, where and why.

A problem names the line and the parser's reason, never the file's text: a config file
often holds passwords, and several parsers quote the offending line in their errors
(configparser does), so each reason here is built from the error's fields.

>>> problem("json", '{"a": 1,\\n "b": }'), problem("json", '{"a": 1}')
('line 2: Expecting value', None)
>>> problem("ini", "password = hunter2\\n[db]\\n")
'line 1: a key before any [section] header'
"""

from __future__ import annotations

import re
import sys
from typing import Optional

from .probes import env_file_problem

FORMATS = ("json", "yaml", "toml", "ini", "env")


class Unsupported(Exception):
    """This host's Python cannot parse the format (no PyYAML, no tomllib)."""


def _json(text: str) -> Optional[str]:
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return "line %d: %s" % (exc.lineno, exc.msg)
    except ValueError:  # an integer past Python's digit limit
        return "a number too long to read"
    return None


def _yaml(text: str) -> Optional[str]:
    try:
        import yaml
    except ImportError:
        raise Unsupported("PyYAML is not installed for %s" % sys.executable) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for _document in yaml.load_all(text, Loader=loader):
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "line %d: " % (mark.line + 1) if mark is not None else ""
        return where + (exc.problem or exc.context or "it cannot be parsed")
    except (yaml.YAMLError, ValueError) as exc:  # a date such as 2026-13-01
        return "a value that cannot be read (%s)" % type(exc).__name__
    return None


_TOML_AT = re.compile(r"^(.*) \(at line (\d+), column \d+\)$")


def _toml(text: str) -> Optional[str]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:
        raise Unsupported(
            "TOML needs Python 3.11 or later (tomllib); this host has %d.%d" % sys.version_info[:2]
        ) from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_AT.match(str(exc))
        return "line %s: %s" % (match.group(2), match.group(1)) if match else str(exc)
    return None


def _ini(text: str) -> Optional[str]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError as exc:
        return "line %d: a key before any [section] header" % exc.lineno
    except configparser.DuplicateSectionError as exc:
        return "line %s: section [%s] appears twice" % (exc.lineno, exc.section)
    except configparser.DuplicateOptionError as exc:
        return "line %s: %s appears twice in [%s]" % (exc.lineno, exc.option, exc.section)
    except configparser.ParsingError as exc:
        return "line %d: neither a [section] nor a key = value line" % exc.errors[0][0]
    return None


PARSERS = {"json": _json, "yaml": _yaml, "toml": _toml, "ini": _ini, "env": env_file_problem}


def problem(format: str, text: str) -> Optional[str]:
    """None when ``text`` parses as ``format``; else the line and the reason. Unsupported
    when this Python has no parser for it."""
    try:
        return PARSERS[format](text)
    except RecursionError:
        return "nested too deeply to read"
