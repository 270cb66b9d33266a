"""Spec validation: every error at once, naming the check and the field; nothing runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import hostile_specs, memory_capped, run_cli, smokegate_executable

from ansible_collections.smokegate.core.plugins.module_utils.units import (
    VersionSpec,
    format_size,
    parse_size,
)
from smokegate.engine import spec


def errors_of(document) -> list[str]:
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(document)
    return caught.value.errors


BAD_SPECS = [
    (
        [{"name": "free space", "disk": {"path": "/srv", "min_fre": "2GiB"}}],
        [
            "check 'free space': disk.min_fre is not a known field; did you mean min_free?",
            "check 'free space': disk needs at least one of min_free, min_free_percent, min_free_inodes_percent",
        ],
    ),
    ([{"disk": {"path": "/", "min_free": 1}}], ["check #1: name is required"]),
    (
        [{"name": "x", "disk": {"path": "/", "min_free": 1}}, {"name": "x", "env": {"name": "A"}}],
        ["check #2: name 'x' is already used by check #1"],
    ),
    (
        [{"name": "nothing"}],
        ["check 'nothing': no check type; use one of mount, disk, env, binary, dns, tcp, http"],
    ),
    (
        [{"name": "two", "disk": {"path": "/", "min_free": 1}, "mount": {"path": "/"}}],
        ["check 'two': has disk and mount; a check has exactly one type"],
    ),
    (
        [{"name": "typo", "tcp": {"host": "db", "port": 5432}, "timeuot": 3}],
        ["check 'typo': timeuot is not a known key; did you mean timeout?"],
    ),
    (
        [{"name": "size", "disk": {"path": "/", "min_free": "2 gigs"}}],
        ["check 'size': disk.min_free: '2 gigs' is not a size"],
    ),
    (
        [{"name": "rel", "mount": {"path": "srv"}}],
        ["check 'rel': mount.path: 'srv' is not an absolute path"],
    ),
    (
        [{"name": "port", "tcp": {"host": "db", "port": 70000}}],
        ["check 'port': tcp.port: expected a port number from 1 to 65535"],
    ),
    ([{"name": "nohost", "tcp": {"port": 22}}], ["check 'nohost': tcp.host is required"]),
    (
        [{"name": "re", "env": {"name": "A", "pattern": "(["}}],
        ["check 're': env.pattern: '([' is not a valid regular expression"],
    ),
    (
        [{"name": "ver", "binary": {"name": "x", "version": "~>6"}}],
        ["check 'ver': binary.version: '~>6' is not a version clause"],
    ),
    (
        [{"name": "sev", "env": {"name": "A"}, "severity": "fatal"}],
        ["check 'sev': severity: 'fatal' is not one of critical, warning"],
    ),
    (
        [{"name": "t", "env": {"name": "A"}, "timeout": 0}],
        ["check 't': timeout: expected a number of seconds greater than 0"],
    ),
    (
        [{"name": "r", "env": {"name": "A"}, "retries": -1}],
        ["check 'r': retries: expected a whole number, 0 or more"],
    ),
    (
        [{"name": "fam", "dns": {"name": "db", "family": "ipv5"}}],
        ["check 'fam': dns.family: 'ipv5' is not one of any, ipv4, ipv6"],
    ),
    (
        [{"name": "st", "http": {"url": "http://x/", "status": 999}}],
        ["check 'st': http.status: expected an HTTP status code"],
    ),
    (
        [{"name": "body", "http": {"url": "http://x/", "method": "FETCH"}}],
        ["check 'body': http.method: 'FETCH' is not one of GET"],
    ),
    (
        [{"name": "p", "prometheus": {"url": "http://p:9090", "query": "up"}}],
        ["check 'p': prometheus needs at least one of max, min"],
    ),
    (
        [{"name": "p", "prometheus": {"url": "http://p:9090", "query": "up", "max": "lots"}}],
        ["check 'p': prometheus.max: expected a number"],
    ),
    (
        [{"name": "p", "prometheus": {"url": "p:9090", "query": "up", "min": True}}],
        [
            "check 'p': prometheus.url: expected an http:// or https:// URL",
            "check 'p': prometheus.min: expected a number",
        ],
    ),
    (
        [
            {
                "name": "p",
                "prometheus": {"url": "http://p:9090", "query": "up", "max": 1, "on_empty": "skip"},
            }
        ],
        ["check 'p': prometheus.on_empty: 'skip' is not one of fail, pass"],
    ),
    (
        [{"name": "shape", "disk": "/srv"}],
        ["check 'shape': disk: expected a mapping of fields (path, min_free"],
    ),
    (["just a string"], ["check #1: expected a mapping with a name and one check type"]),
    (
        {"chekcs": []},
        ["spec: chekcs is not a known key; did you mean checks?", "spec: checks is required"],
    ),
    ({"checks": []}, ["spec: checks is empty; nothing would be checked"]),
    ({"checks": {"name": "x"}}, ["spec: checks must be a list of checks"]),
]


@pytest.mark.parametrize(("document", "expected"), BAD_SPECS)
def test_bad_specs_name_the_check_and_the_field(document, expected):
    errors = errors_of(document)
    assert len(errors) == len(expected), errors
    for error, prefix in zip(errors, expected):
        assert error.startswith(prefix), (error, prefix)


NUMERIC_FIELDS = {
    # the field as errors name it: a check with the value in that field
    "disk.min_free": lambda value: {"disk": {"path": "/", "min_free": value}},
    "disk.min_free_percent": lambda value: {"disk": {"path": "/", "min_free_percent": value}},
    "disk.min_free_inodes_percent": lambda value: {
        "disk": {"path": "/", "min_free_inodes_percent": value}
    },
    "tcp.port": lambda value: {"tcp": {"host": "db", "port": value}},
    "prometheus.max": lambda value: {
        "prometheus": {"url": "http://p/", "query": "up", "max": value}
    },
    "timeout": lambda value: {"env": {"name": "A"}, "timeout": value},
    "retries": lambda value: {"env": {"name": "A"}, "retries": value},
    "retry_delay": lambda value: {"env": {"name": "A"}, "retry_delay": value},
}


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        ("nan", "nan"),  # a templated value arrives as a string
        ("inf", "inf"),
        ("-Infinity", "-inf"),
        ("1e999", "inf"),
    ],
)
def test_nan_and_inf_are_refused_for_every_numeric_field(field, value, shown):
    assert errors_of([{"name": "c", **NUMERIC_FIELDS[field](value)}]) == [
        "check 'c': %s: %s is not a finite number" % (field, shown)
    ]


def test_nan_and_inf_in_yaml_and_json_files_are_spec_errors(tmp_path: Path):
    yaml_spec = tmp_path / "smoke.yml"
    yaml_spec.write_text(
        "checks:\n"
        "  - {name: slow, env: {name: HOME}, timeout: .nan}\n"
        "  - {name: space, disk: {path: /, min_free: .inf}}\n"
    )
    json_spec = tmp_path / "smoke.json"
    json_spec.write_text(
        '{"checks": [{"name": "slow", "env": {"name": "HOME"}, "retry_delay": NaN},'
        ' {"name": "space", "disk": {"path": "/", "min_free_percent": -Infinity}}]}'
    )
    for path, errors in [
        (yaml_spec, ["timeout: nan is not", "disk.min_free: inf is not"]),
        (json_spec, ["retry_delay: nan is not", "disk.min_free_percent: -inf is not"]),
    ]:
        completed = run_cli("check", "-f", str(path))
        assert completed.returncode == 2, completed.stderr
        assert "check 'slow': %s a finite number" % errors[0] in completed.stderr
        assert "check 'space': %s a finite number" % errors[1] in completed.stderr


def test_every_error_is_reported_at_once():
    errors = errors_of(
        [
            {"name": "a", "disk": {"path": "relative", "min_free": "lots"}},
            {"name": "b", "tcp": {"host": "", "port": "ssh"}},
            {"name": "c", "http": {"url": "http://x/", "status": 0, "bogus": 1}},
        ]
    )
    assert [error.split(":")[0] for error in errors] == [
        "check 'a'",
        "check 'a'",
        "check 'b'",
        "check 'b'",
        "check 'c'",
        "check 'c'",
    ]


def test_a_header_value_is_never_echoed_in_an_error():
    errors = errors_of(
        [{"name": "h", "http": {"url": "http://x/", "headers": {"X-Token": 12345987}}}]
    )
    assert errors == [
        "check 'h': http.headers: expected a mapping of header names to string values"
    ]


def test_defaults_are_filled_in():
    (check,) = spec.parse_spec(
        {"checks": [{"name": "py", "binary": {"name": "python3", "version": 3.8}}]}
    )
    assert check.severity == "critical"
    assert (check.timeout, check.retries, check.retry_delay) == (5.0, 0, 1.0)
    assert check.params["args"] == ["--version"]
    assert str(check.params["version"]) == "3.8"


def test_bounds_are_numbers_of_any_sign_templated_ones_too():
    (check,) = spec.parse_spec(
        [{"name": "p", "prometheus": {"url": "http://p/", "query": "up", "min": -2, "max": "0.5"}}]
    )
    assert (check.params["min"], check.params["max"], check.params["on_empty"]) == (-2, 0.5, "fail")


def test_a_bad_spec_through_the_cli_exits_2_and_runs_nothing(tmp_path: Path, write_spec):
    marker = tmp_path / "ran"
    # The first check would create the marker if anything ran at all.
    path = write_spec(
        [
            {
                "name": "would run",
                "binary": {
                    "name": sys.executable,
                    "args": ["-c", "open(%r, 'w'); print('1.0')" % str(marker)],
                    "version": ">=1",
                },
            },
            {"name": "free space", "disk": {"path": "/srv", "min_fre": "2GiB"}},
            {"name": "db port", "tcp": {"host": "db", "port": 0}},
        ],
        name="smoke.yml",
    )
    completed = run_cli("check", "-f", str(path))
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "is not a valid spec (nothing ran)" in completed.stderr
    assert (
        "check 'free space': disk.min_fre is not a known field; did you mean min_free?"
        in completed.stderr
    )
    assert "check 'db port': tcp.port: expected a port number from 1 to 65535" in completed.stderr
    assert not marker.exists()


def test_unparseable_and_missing_files_exit_2(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text("checks:\n  - name: x\n    disk: {path: /\n")
    completed = run_cli("check", "-f", str(broken))
    assert completed.returncode == 2
    assert "is not valid YAML" in completed.stderr and "line" in completed.stderr
    completed = run_cli("check", "-f", str(tmp_path / "absent.yml"))
    assert completed.returncode == 2
    assert (
        "cannot read %s: No such file or directory" % (tmp_path / "absent.yml") in completed.stderr
    )


def test_hostile_spec_files_are_spec_errors_at_once(tmp_path: Path):
    expected = {
        "bomb.yml": "spec: more than 100000 values once its aliases are expanded",
        "latin1.yml": "latin1.yml is not UTF-8 text (line 2)",
        "deep.json": "deep.json is nested too deeply to be a spec",
        "deep.yml": "exceeded maximum nesting depth",
        "nested.json": "spec: nested more than 32 levels deep",
    }
    for name, path in hostile_specs(tmp_path).items():
        for options, code, stream in [([], 2, "stderr"), (["--format", "nagios"], 3, "stdout")]:
            completed = subprocess.run(
                memory_capped([smokegate_executable(), "check", "-f", str(path), *options]),
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            shown = getattr(completed, stream)
            assert completed.returncode == code, (name, options, completed.stderr[-2000:])
            assert expected[name] in shown, (name, options, shown)
            assert "Traceback" not in completed.stderr and len(shown) < 1000, (name, shown)
    # serve reads its spec the same way, and refuses it before it binds a port
    completed = subprocess.run(
        memory_capped([smokegate_executable(), "serve", "-f", str(tmp_path / "bomb.yml")]),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert completed.returncode == 2 and expected["bomb.yml"] in completed.stderr


# --- sizes and versions -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("500M", 500 * 1024**2),
        ("2GiB", 2 * 1024**3),
        ("2g", 2 * 1024**3),
        ("1.5K", 1536),
        ("10GB", 10 * 1000**3),
        ("1 TB", 1000**4),
        ("1PiB", 1024**5),
        ("3MB", 3 * 1000**2),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["2 gigs", "-1", "G", "", True])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size():
    assert format_size(int(1.2 * 1024**3)) == "1.2 GiB"
    assert format_size(2 * 1024**3) == "2 GiB"
    assert format_size(512) == "512 B"


@pytest.mark.parametrize(
    ("specifier", "version", "expected"),
    [
        (">=6.0,<9", "6.1.1-3", True),
        (">=6.0,<9", "9.0", False),
        (">=9.3", "9.2p1", False),
        (">9.2", "9.2p1", True),
        ("==1.34", "1.34.0", True),
        ("!=1.34", "1.34", False),
        ("<=3.11", "3.11.7", False),
        ("3.11", "3.11.0", True),
        (">=1.34,<1.35", "1.34", True),
        ("==3.11.*", "3.11.7", True),
        ("!=3.11.*", "3.11.7", False),
        ("!=3.11.*", "3.12.0", True),
    ],
)
def test_version_specifiers(specifier, version, expected):
    assert VersionSpec.parse(specifier).contains(version) is expected
