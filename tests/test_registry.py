"""One registry of check types (checks.CHECK_TYPES) and one probe interface (probes.Probe).

Every check type is declared once, its schema with its comparer; the validator, the
argument_spec and both documents are derived from that registry (the documents are held to it
by tests/test_docs.py and tests/test_modules.py). A check reads the system only through the
probe interface, which SystemProbe and the tests' fake probe both implement.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from fake_probe import FakeProbe

from ansible_collections.smokegate.core.plugins.module_utils import checks, probes, schema, spec

CHECKS_TREE = ast.parse(Path(checks.__file__).read_text())
# Modules through which code reads or changes the system: a check uses none of them.
SYSTEM_MODULES = {"os", "subprocess", "shutil", "pathlib", "tempfile", "glob", "io", "fcntl"}


def test_every_check_type_is_one_declaration_of_schema_and_comparer():
    assert checks.CHECK_TYPES
    comparers = [check_type.compare for check_type in checks.CHECK_TYPES.values()]
    for name, check_type in checks.CHECK_TYPES.items():
        assert check_type.name == name
        assert check_type.doc.strip(), name
        # Something must be said: a required field, or one of several.
        assert check_type.requires_one_of or any(
            field.required for field in check_type.fields.values()
        ), name
        assert set(check_type.example) <= set(check_type.fields), name
        assert set(check_type.requires_one_of) <= set(check_type.fields), name
        assert inspect.getmodule(check_type.compare) is checks, name
    assert len(set(comparers)) == len(comparers), "a comparer registered for two types"
    written = {
        function
        for function_name, function in vars(checks).items()
        if function_name.startswith("check_") and inspect.isfunction(function)
    }
    assert written == set(comparers), "a comparer that no check type uses"
    assert not set(checks.CHECK_TYPES) & set(schema.COMMON_FIELDS)


@pytest.mark.parametrize("name", list(checks.CHECK_TYPES))
def test_the_validator_accepts_each_types_example(name: str):
    check_type = checks.CHECK_TYPES[name]
    [check] = spec.parse_spec([{"name": "example", name: check_type.example}])
    assert check.type == name
    assert list(check.params) == list(check_type.fields)


def test_the_validator_offers_exactly_the_registered_types():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec([{"name": "nothing"}])
    assert caught.value.errors == [
        "check 'nothing': no check type; use one of %s" % ", ".join(checks.CHECK_TYPES)
    ]


def probe_calls() -> set[str]:
    """Every method checks.py calls on a probe."""
    return {
        node.attr
        for node in ast.walk(CHECKS_TREE)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "probe"
    }


def methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def parameters(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(item.name, item.kind, item.default) for item in signature.parameters.values()]


def test_checks_call_only_the_probe_interface_and_both_probes_implement_it():
    declared = methods(probes.Probe)
    assert probe_calls() == set(declared)
    for implementation in (probes.SystemProbe, FakeProbe):
        implemented = methods(implementation)
        for name, signature in declared.items():
            assert name in implemented, "%s lacks %s" % (implementation.__name__, name)
            assert parameters(implemented[name]) == parameters(signature), name
    assert set(methods(FakeProbe)) == set(declared), "the fake has methods the interface lacks"
    for name, signature in declared.items():
        assert str(methods(probes.SystemProbe)[name]) == str(signature), name


def test_checks_import_nothing_that_reads_the_system():
    imported = set()
    for node in ast.walk(CHECKS_TREE):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & SYSTEM_MODULES
    called = {
        node.func.id
        for node in ast.walk(CHECKS_TREE)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "open" not in called
