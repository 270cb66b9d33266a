"""The file check on real files: types, modes, owners, sizes, ages, content, and config
files that parse or do not (JSON, YAML, TOML, INI, env), on this Python and on 3.8."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import needs_root

from ansible_collections.smokegate.core.plugins.module_utils import protocol
from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import (
    BOOTSTRAP,
    payload,
    read_answer,
)
from smokegate.engine import runner, spec

PYTHON38 = str(Path.home() / ".pyenv/versions/3.8.18/bin/python3.8")
SECRET = "ini-s3cret-41aa"


def run(*checks: dict) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)))
    return {result["name"]: result for result in report["results"]}


def test_types_modes_sizes_and_ages(tmp_path: Path):
    config = tmp_path / "app.conf"
    config.write_text("listen = 8080\n")
    config.chmod(0o640)
    old = time.time() - 7200
    os.utime(config, (old, old))
    (tmp_path / "current").symlink_to(config)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    results = run(
        {"name": "file", "file": {"path": str(config), "type": "file", "mode": "0640"}},
        {"name": "wrong mode", "file": {"path": str(config), "mode": "0600"}},
        {"name": "max mode", "file": {"path": str(config), "max_mode": "0644"}},
        {"name": "too open", "file": {"path": str(config), "max_mode": "0600"}},
        {"name": "dir", "file": {"path": str(tmp_path), "type": "directory"}},
        {"name": "not a dir", "file": {"path": str(config), "type": "directory"}},
        {"name": "link", "file": {"path": str(tmp_path / "current"), "type": "symlink"}},
        {"name": "through link", "file": {"path": str(tmp_path / "current"), "type": "file"}},
        {"name": "dangling", "file": {"path": str(tmp_path / "dangling")}},
        {"name": "absent", "file": {"path": str(tmp_path / "gone"), "exists": False}},
        {"name": "present", "file": {"path": str(tmp_path / "dangling"), "exists": False}},
        {"name": "fresh", "file": {"path": str(config), "max_age": 3600}},
        {"name": "recent enough", "file": {"path": str(config), "max_age": 3 * 3600}},
        {"name": "emptied", "file": {"path": str(empty), "min_size": 1}},
        {"name": "contains", "file": {"path": str(config), "contains": r"^listen = \d+$"}},
        {"name": "lacks", "file": {"path": str(config), "contains": "^workers"}},
    )
    statuses = {name: result["status"] for name, result in results.items()}
    assert statuses == {
        "file": "pass",
        "wrong mode": "fail",
        "max mode": "pass",
        "too open": "fail",
        "dir": "pass",
        "not a dir": "fail",
        "link": "pass",
        "through link": "pass",
        "dangling": "fail",
        "absent": "pass",
        "present": "fail",
        "fresh": "fail",
        "recent enough": "pass",
        "emptied": "fail",
        "contains": "pass",
        "lacks": "fail",
    }
    assert results["file"]["message"].startswith("%s is a file, 0640 root:" % config)
    assert results["file"]["message"].endswith(", 14 B, modified 2.0 h ago")
    assert results["wrong mode"]["message"] == "%s mode is 0640, expected 0600" % config
    assert results["too open"]["message"] == "%s mode 0640 allows 0040 beyond 0600" % config
    assert results["not a dir"]["message"] == "%s is a file, expected a directory" % config
    assert results["dangling"]["message"] == "%s does not exist" % (tmp_path / "dangling")
    assert results["present"]["message"] == (
        "%s exists (a symlink), expected nothing there" % (tmp_path / "dangling")
    )
    assert results["fresh"]["message"] == (
        "%s was modified 2.0 h ago, expected at most 60 min" % config
    )
    assert results["emptied"]["message"] == "%s is 0 B, expected at least 1 B" % empty
    assert results["lacks"]["message"] == "%s does not contain ^workers" % config


@needs_root("changes a file's owner")
def test_owner_and_group_by_name_and_id(tmp_path: Path):
    owned = tmp_path / "owned"
    owned.write_text("x")
    os.chown(owned, 65534, 65534)
    results = run(
        {"name": "by name", "file": {"path": str(owned), "owner": "nobody"}},
        {"name": "by id", "file": {"path": str(owned), "owner": "65534", "group": "65534"}},
        {"name": "root", "file": {"path": str(owned), "owner": "root", "group": "root"}},
    )
    assert results["by name"]["status"] == "pass"
    assert results["by id"]["status"] == "pass"
    assert results["root"]["status"] == "fail"
    assert results["root"]["message"].startswith(
        "%s owner is nobody, expected root; group is " % owned
    )


BROKEN = {
    "app.json": ("json", '{"db": "x",\n "pool": }\n', "line 2: Expecting value"),
    "app.yaml": ("yaml", "db:\n  url: x\n   pool: 3\n", "line 3: mapping values are not allowed"),
    "app.toml": ("toml", 'db = "x"\npool = \n', "line 2: Invalid value"),
    "app.ini": (
        "ini",
        "password = %s\n[db]\nurl = x\n" % SECRET,
        "line 1: a key before any [section] header",
    ),
    "dup.ini": ("ini", "[db]\nurl = x\nurl = %s\n" % SECRET, "line 3: url appears twice in [db]"),
    "app.env": ("env", "A=1\nTOKEN=%s\nnot a line\n" % SECRET, "line 3: not a KEY=VALUE line"),
    "quote.env": ("env", 'A="%s\n' % SECRET, "line 1: its quote is never closed"),
}
GOOD = {
    "app.json": ("json", '{"db": {"url": "x"}}'),
    "app.yaml": ("yaml", "db:\n  url: x\n---\nsecond: document\n"),
    "app.toml": ("toml", '[db]\nurl = "x"\n'),
    "app.ini": ("ini", "[db]\nurl = x\n"),
    "app.env": ("env", 'export A=1\nB="two words" # note\n'),
}


def test_config_files_parse_or_say_where_and_why_without_their_content(tmp_path: Path):
    checks = []
    for name, (format, text, _reason) in BROKEN.items():
        (tmp_path / ("broken-" + name)).write_text(text)
        checks.append(
            {
                "name": "broken " + name,
                "file": {"path": str(tmp_path / ("broken-" + name)), "format": format},
            }
        )
    for name, (format, text) in GOOD.items():
        (tmp_path / name).write_text(text)
        checks.append({"name": name, "file": {"path": str(tmp_path / name), "format": format}})
    results = run(*checks)
    for name, (format, _text, reason) in BROKEN.items():
        result = results["broken " + name]
        assert result["status"] == "fail", result
        # libyaml and PyYAML's own parser word some reasons apart: the start is the same.
        assert result["message"].startswith(
            "%s does not parse as %s: %s" % (tmp_path / ("broken-" + name), format, reason)
        )
        assert SECRET not in result["message"]
    for name, (format, _text) in GOOD.items():
        assert results[name]["status"] == "pass", results[name]
        assert results[name]["message"].endswith(", parses as %s" % format)


def test_content_reads_never_block_on_a_fifo_or_read_a_directory(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    results = run(
        {"name": "fifo", "timeout": 2, "file": {"path": str(fifo), "contains": "x"}},
        {"name": "dir", "file": {"path": str(tmp_path), "format": "json"}},
    )
    assert time.monotonic() - started < 1.5
    assert results["fifo"]["message"] == "%s is a fifo: contains reads a file" % fifo
    assert results["dir"]["message"] == "%s is a directory: format reads a file" % tmp_path


def test_file_fields_that_do_not_go_together_are_spec_errors():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(
            [
                {"name": "a", "file": {"path": "/etc/x", "exists": False, "mode": "0640"}},
                {"name": "b", "file": {"path": "/etc", "type": "directory", "format": "json"}},
                {"name": "c", "file": {"path": "/etc/x", "mode": 416}},
                {"name": "d", "file": {"path": "/etc/x", "max_mode": "0999"}},
                {"name": "e", "file": {"path": "/etc/x", "format": "xml"}},
            ]
        )
    assert caught.value.errors == [
        "check 'a': file exists: false takes no other field (mode)",
        "check 'b': file format read a file's content; type is directory",
        "check 'c': file.mode: write the mode as a quoted octal string, such as '0640'"
        " (an unquoted 0640 is read as a number)",
        "check 'd': file.max_mode: '0999' is not an octal mode such as '0640'",
        "check 'e': file.format: 'xml' is not one of json, yaml, toml, ini, env",
    ]


def engine_on(python: str, document: dict) -> dict:
    """The report of a spec run by the engine on another Python, as it runs on a host."""
    completed = subprocess.run(
        [python, "-c", BOOTSTRAP],
        input=payload(protocol.request([protocol.smoke(document)])),
        capture_output=True,
        check=False,
        timeout=60,
    )
    answer = read_answer(completed.stdout.decode())
    assert answer is not None, completed.stderr.decode()
    return {result["name"]: result for result in answer["steps"][0]["report"]["results"]}


@pytest.mark.skipif(not os.path.exists(PYTHON38), reason="needs a Python 3.8 without PyYAML")
def test_on_python_38_without_pyyaml_yaml_and_toml_are_errors_that_say_why(tmp_path: Path):
    for name, (_format, text) in GOOD.items():
        (tmp_path / name).write_text(text)
    checks = [
        {"name": format, "file": {"path": str(tmp_path / name), "format": format}}
        for name, (format, _text) in GOOD.items()
    ]
    results = engine_on(PYTHON38, {"checks": checks})
    assert results["yaml"]["status"] == "error"
    assert results["yaml"]["message"] == (
        "cannot check that %s parses as yaml: PyYAML is not installed for %s"
        % (tmp_path / "app.yaml", PYTHON38)
    )
    assert results["toml"]["status"] == "error"
    assert results["toml"]["message"].endswith(
        "TOML needs Python 3.11 or later (tomllib); this host has 3.8"
    )
    assert {results[name]["status"] for name in ("json", "ini", "env")} == {"pass"}


def test_a_contains_pattern_that_runs_away_is_a_timeout(tmp_path: Path):
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("a" * 64 + "!")
    started = time.monotonic()
    results = run(
        {"name": "runaway", "timeout": 0.5, "file": {"path": str(repeated), "contains": "^(a+)+$"}}
    )
    assert results["runaway"]["status"] == "timeout", results["runaway"]
    assert time.monotonic() - started < 1.5


def test_hostile_config_files_are_failures_not_crashes(tmp_path: Path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    lines = ["l0: &l0 [%s]" % ", ".join(["lol"] * 10)]
    lines += ["l%d: &l%d [%s]" % (n, n, ", ".join(["*l%d" % (n - 1)] * 10)) for n in range(1, 9)]
    (tmp_path / "laughs.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "huge.json").write_bytes(b"[" + b"1," * (5 * 1024 * 1024) + b"1]")
    results = run(
        *(
            {"name": name, "file": {"path": str(tmp_path / name), "format": name.split(".")[1]}}
            for name in ("deep.json", "deep.yaml", "laughs.yaml", "huge.json")
        )
    )
    assert results["deep.json"]["message"].endswith(
        "does not parse as json: nested too deeply to read"
    )
    assert results["deep.yaml"]["status"] == "fail"
    assert results["laughs.yaml"]["status"] == "pass"  # aliases are references: nothing expands
    assert results["huge.json"]["message"].endswith("is over 8 MiB, too large to parse as json")
