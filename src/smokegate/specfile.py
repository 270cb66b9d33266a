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
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise SpecFileError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SpecFileError("%s is not valid JSON: %s" % (path, exc)) from None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise SpecFileError("%s is not valid YAML: %s" % (path, yaml_problem(exc))) from None


def load_checks(path: str) -> list[spec.Check]:
    """Validated checks from a spec file; raises SpecFileError or spec.SpecError."""
    return spec.parse_spec(read_document(path))
