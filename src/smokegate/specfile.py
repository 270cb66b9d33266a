"""Read a spec file (YAML or JSON) from disk or stdin, and validate it with the engine."""

from __future__ import annotations

import json
import sys
from typing import Any

from ansible_collections.smokegate.core.plugins.plugin_utils.yaml_errors import yaml_problem
from smokegate.engine import spec


class SpecFileError(Exception):
    """The file could not be read or parsed; the message names the file and the place."""


def read_document(path: str) -> Any:
    """The parsed document. JSON files skip the YAML import, which is the slow part."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        raise SpecFileError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecFileError("%s is not UTF-8 text (line %d)" % (path, line)) from None
    return parse_document(path, text)


def parse_document(path: str, text: str) -> Any:
    """The document of a spec file's text: JSON when ``path`` ends in .json, else YAML."""
    try:
        if path.endswith(".json"):
            return _parse_json(path, text)
        return _parse_yaml(path, text)
    except RecursionError:  # the parsers recurse once per level of nesting
        raise SpecFileError("%s is nested too deeply to be a spec" % path) from None


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpecFileError("%s is not valid JSON: %s" % (path, exc)) from None


def _parse_yaml(path: str, text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    # A well-formed scalar can still fail to construct: a date such as 2026-13-01, an
    # integer past Python's digit limit.
    except (yaml.YAMLError, ValueError) as exc:
        problem = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else exc
        raise SpecFileError("%s is not valid YAML: %s" % (path, problem)) from None


def unknown_only(checks: list[spec.Check], only: list[str] | None, path: str) -> list[str]:
    """A message for each ``--only`` name the spec has no check of, with the closest one.

    >>> checks = spec.parse_spec([{"name": "db port", "tcp": {"host": "db", "port": 5432}}])
    >>> unknown_only(checks, ["db prot"], "smoke.yml")
    ["--only: no check named 'db prot' in smoke.yml; did you mean 'db port'?"]
    """
    import difflib

    names = [check.name for check in checks]
    hints = []
    for name in only or ():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = "; did you mean %r?" % close[0] if close else ""
            hints.append("--only: no check named %r in %s%s" % (name, path, hint))
    return hints


def load_checks(path: str) -> list[spec.Check]:
    """Validated checks from a spec file; raises SpecFileError or spec.SpecError."""
    return spec.parse_spec(read_document(path))
