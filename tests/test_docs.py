"""docs/checks.md: generated from the check types, its examples valid, its failure messages real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli

from ansible_collections.smokegate.core.plugins.module_utils import checks, schema, spec

DOC = REPO / "docs" / "checks.md"
PLACEHOLDER = re.compile(r"<[a-z][a-z ]*>")
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


def sections() -> dict[str, str]:
    """The text under each `## ` heading."""
    found: dict[str, str] = {}
    heading = ""
    for line in DOC.read_text().splitlines(keepends=True):
        if line.startswith("## "):
            heading = line[3:].strip()
            found[heading] = ""
        elif heading:
            found[heading] += line
    return found


def fenced_blocks() -> list[tuple[str, str, str]]:
    """(section, info string, text) of every fenced block, in document order."""
    blocks, heading, fence, lines = [], "", None, []
    for line in DOC.read_text().splitlines():
        if fence is None:
            if line.startswith("## "):
                heading = line[3:].strip()
            elif line.startswith("```"):
                fence, lines = line[3:], []
        elif line == "```":
            blocks.append((heading, fence, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, "unterminated code block in %s" % DOC
    return blocks


def documented_specs() -> tuple[list[tuple[str, str]], list[tuple[str, str, str, str]]]:
    """Examples as (section, yaml); failing variants as (section, yaml, status, message)."""
    examples, failing = [], []
    blocks = fenced_blocks()
    for index, (heading, fence, text) in enumerate(blocks):
        if fence == "text":
            continue
        assert fence == "yaml", "unexpected ```%s block under %s" % (fence, heading)
        following = blocks[index + 1] if index + 1 < len(blocks) else ("", "", "")
        if following[1] == "text":
            status_line, message_line = following[2].splitlines()
            assert status_line.startswith("status: ") and message_line.startswith("message: ")
            failing.append((heading, text, status_line[8:], message_line[9:]))
        else:
            examples.append((heading, text))
    results = [block for block in blocks if block[1] == "text"]
    assert len(results) == len(failing), "a result block that follows no spec"
    return examples, failing


EXAMPLES, FAILING = documented_specs()


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smoke.yml"
    path.write_text(text)
    return path


def message_pattern(documented: str) -> re.Pattern[str]:
    """The documented message as a regex: each <placeholder> stands for a machine's value."""
    return re.compile(".+".join(re.escape(part) for part in PLACEHOLDER.split(documented)))


# Both are generated from the check types: docs/checks.md and the smoke module's check options.
@pytest.mark.parametrize("generator", ["gen-check-docs", "sync-module-docs"])
def test_generated_docs_are_up_to_date(generator: str):
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / generator), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize(
    ("section", "text"),
    EXAMPLES + [(section, text) for section, text, _status, _message in FAILING],
    ids=lambda value: value.splitlines()[1] if "\n" in value else value,
)
def test_every_documented_spec_parses_with_the_spec_parser(section: str, text: str):
    parsed = spec.parse_spec(yaml.safe_load(text))
    if section in checks.CHECK_TYPES:
        assert [check.type for check in parsed] == [section]


@pytest.mark.parametrize(
    ("section", "text"), EXAMPLES, ids=[text.splitlines()[1] for _section, text in EXAMPLES]
)
def test_examples_run_without_a_spec_error(tmp_path: Path, section: str, text: str):
    completed = run_cli(
        "check", "-f", str(spec_file(tmp_path, text)), "--format", "json", "--deadline", "10"
    )
    assert completed.returncode in (0, 1), completed.stderr
    names = [result["name"] for result in json.loads(completed.stdout)["results"]]
    assert names == [check["name"] for check in yaml.safe_load(text)["checks"]]


@pytest.mark.parametrize(
    ("section", "text", "status", "message"),
    FAILING,
    ids=[text.splitlines()[1] for _section, text, _status, _message in FAILING],
)
def test_documented_failure_messages_are_what_the_engine_prints(
    tmp_path: Path, section: str, text: str, status: str, message: str
):
    assert PLACEHOLDER.sub("", message).strip(), "a message that is all placeholders tells nothing"
    completed = run_cli("check", "-f", str(spec_file(tmp_path, text)), "--format", "json")
    assert completed.returncode == 1, completed.stderr
    [result] = json.loads(completed.stdout)["results"]
    assert result["type"] == section
    assert result["status"] == status
    assert message_pattern(message).fullmatch(result["message"]), (result["message"], message)


def test_exactly_the_registered_types_fields_and_kinds_are_documented():
    found = sections()
    assert list(found) == ["Common keys", *checks.CHECK_TYPES, "Kinds of value"]
    tables = [("Common keys", schema.COMMON_FIELDS)] + [
        (name, check_type.fields) for name, check_type in checks.CHECK_TYPES.items()
    ]
    example_sections = [section for section, _text in EXAMPLES]
    failing_sections = [section for section, _text, _status, _message in FAILING]
    for name, check_type in checks.CHECK_TYPES.items():
        assert name in found, "no section for the %s check" % name
        assert check_type.doc.strip(), "the %s check has no description" % name
        assert check_type.doc in found[name]
        assert name in example_sections, "no example for the %s check" % name
        assert name in failing_sections, "no failure message for the %s check" % name
    for section, fields in tables:
        rows = {
            cells[1].strip(): cells[1:-1]
            for cells in (CELL_SEPARATOR.split(line) for line in found[section].splitlines())
            if len(cells) > 2
        }
        assert [row for row in rows if row.startswith("`")] == ["`%s`" % name for name in fields]
        for field in fields.values():
            assert field.doc.strip(), "%s.%s has no description" % (section, field.name)
            row = rows.get("`%s`" % field.name)
            assert row, "%s.%s is not in the table of %s" % (section, field.name, section)
            _field_name, kind, required, default, description = (cell.strip() for cell in row)
            assert required == ("yes" if field.required else "no")
            if field.choices:
                assert all("`%s`" % choice in kind for choice in field.choices)
            else:
                assert kind.startswith("`%s`" % field.kind)
            assert (default != "") == (field.default is not None)
            assert description == field.doc.replace("|", "\\|").replace("*", "\\*")
    kinds_table = found["Kinds of value"]
    documented_kinds = {
        field.kind for _section, fields in tables for field in fields.values() if not field.choices
    }
    for kind in documented_kinds:
        assert "| `%s` | " % kind in kinds_table, "kind %s is not explained" % kind
    assert set(schema.KINDS) == set(spec.VALIDATORS) | {"choice"}
