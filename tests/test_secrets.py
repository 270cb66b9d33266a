"""No secret in any output: env values, header values and URL credentials, every front end.

The formats of `smokegate check` and the answers of `smokegate serve` are held to this in
test_cli.py and test_serve.py, the module in-process in test_modules.py; here the playbook
at -vvvv both ways (shipped engine and module), validate_only, the callback's files, the
runner's redaction of URL credentials in every form, and URLs whose credentials cannot be
told apart from their host.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

import pytest
import yaml
from conftest import (
    ENV_SECRET,
    PLAIN_URL_PASSWORD,
    SECRET_ENV_NAME,
    SECRET_STATUSES,
    URL_PASSWORD,
    URL_USER,
    leaked_secrets,
    run_cli,
    secret_checks,
)
from fleet import Fleet

from ansible_collections.smokegate.core.plugins.module_utils.probes import SystemProbe
from ansible_collections.smokegate.core.plugins.module_utils.runner import run_checks
from ansible_collections.smokegate.core.plugins.module_utils.spec import parse_spec
from smokegate.specfile import SpecFileError, read_document


def test_smoke_playbook_shows_no_secret_at_vvvv_either_way(
    tmp_path: Path, http_server: str, closed_port: int
):
    fleet = Fleet(tmp_path, count=1)
    spec = tmp_path / "secrets.yml"
    spec.write_text(yaml.safe_dump({"checks": secret_checks(tmp_path, http_server, closed_port)}))
    env = {
        SECRET_ENV_NAME: ENV_SECRET,  # what the env check reads on the (local) host
        "ANSIBLE_CALLBACKS_ENABLED": "smokegate.core.smoke_report",
    }
    for pipelining in ("1", "0"):  # the shipped engine, then the module through its wrapper
        junit, report = tmp_path / ("junit-%s.xml" % pipelining), tmp_path / "report.json"
        run = fleet.playbook(
            "smoke",
            "-vvvv",
            env=dict(
                env,
                ANSIBLE_PIPELINING=pipelining,
                SMOKEGATE_REPORT_JUNIT=str(junit),
                SMOKEGATE_REPORT_JSON=str(report),
            ),
            smokegate_checks_file=str(spec),
        )
        assert run.returncode == 2, run.output
        assert ("smokegate_engine" in run.output) == (pipelining == "1")
        assert "smoke checks failed: env file bad: APP_DSN in" in run.output
        assert leaked_secrets(run.output) == [], pipelining
        (reported,) = json.loads(report.read_text())["reports"]
        statuses = {result["name"]: result["status"] for result in reported["results"]}
        assert statuses == SECRET_STATUSES, pipelining
        cases = ET.fromstring(junit.read_text()).iter("testcase")
        assert [case.get("name") for case in cases] == list(SECRET_STATUSES)
        assert leaked_secrets(junit.read_text() + report.read_text()) == [], pipelining

    run = fleet.playbook(
        "smoke",
        "-vvvv",
        env=env,
        smokegate_checks_file=str(spec),
        smokegate_smoke_validate_only=True,
    )
    assert run.returncode == 0, run.output
    assert "spec is valid: %d checks" % len(SECRET_STATUSES) in run.output
    assert '"encoded credentials ok",' in run.output  # the names, never the fields
    assert leaked_secrets(run.output) == []


# Each a user and a password holding an unencoded '#', '/' or '?'.
AMBIGUOUS = {
    "hash in password": ("ops", "zq#Kp4e7Wv"),
    "slash in password": ("ops", "zq/Kp4e7Wv"),
    "question mark in password": ("ops", "zq?Kp4e7Wv"),
    "digits then slash": ("ops", "4711/Kp4e7Wv"),
    "empty then hash": ("ops", "#Kp4e7Wv"),
    "hash in user": ("o#Kp4e7Wv", "zqRt5"),
    "every mark": ("ops", "zq#Kp4/e7W?v@:x"),
}
UNAMBIGUOUS = {
    "no credentials": "http://127.0.0.1:1/healthz",
    "encoded": "http://%s:%s@127.0.0.1:1/" % (quote(URL_USER), quote(URL_PASSWORD, safe="")),
    "at sign in password": "http://ops:p@ss@127.0.0.1:1/",  # the last '@' ends it
    "at sign in path": "http://127.0.0.1/users/ops@example.com",  # no user:password before
    "ipv6": "https://[::1]:1/healthz",
}


def test_ambiguous_credentials_are_refused_without_showing_them(write_spec):
    checks = [
        {"name": name, "http": {"url": "http://%s:%s@127.0.0.1:1/healthz" % credentials}}
        for name, credentials in AMBIGUOUS.items()
    ]
    checks += [{"name": name, "http": {"url": url}} for name, url in UNAMBIGUOUS.items()]
    completed = run_cli("check", "-f", str(write_spec(checks)))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    errors = completed.stderr.splitlines()[1:]
    assert [line.split(":")[0].strip() for line in errors] == [
        "check %r" % name for name in AMBIGUOUS
    ]
    for line in errors:
        assert "http.url: cannot tell where its user:password@ ends" in line
        assert "percent-encode '#', '/', '?' and '@'" in line and "(%23, %2F, %3F, %40)" in line
    for user, password in AMBIGUOUS.values():
        for piece in re.split("[#/?]", user + ":" + password):
            assert len(piece) < 5 or piece not in completed.stderr, piece


class CredentialQuotingProbe(SystemProbe):
    """An HTTP client whose error quotes the credentials it was given, in several forms."""

    def http(self, method, url, headers, timeout, **options):  # type: ignore[no-untyped-def]
        user, _colon, password = urlsplit(url).netloc.rpartition("@")[0].partition(":")
        sent = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
        raise OSError(
            "%s refused %s (Basic %s, %s)"
            % (url, sent.decode(), base64.b64encode(sent).decode(), quote(unquote(password)))
        )


def test_the_runner_redacts_url_credentials_in_every_form():
    encoded = "http://%s:%s@127.0.0.1:1/x" % (URL_USER, quote(URL_PASSWORD, safe=""))
    plain = "http://%s:%s@127.0.0.1:1/x" % (URL_USER, PLAIN_URL_PASSWORD)
    checks = parse_spec(
        [{"name": "encoded", "http": {"url": encoded}}, {"name": "plain", "http": {"url": plain}}]
    )
    for result in run_checks(checks, probe=CredentialQuotingProbe())["results"]:
        assert result["status"] == "fail"
        assert result["message"].startswith("GET http://***@127.0.0.1:1/x: http://***@")
        assert leaked_secrets(result["message"]) == [], result["message"]


def test_a_yaml_error_never_quotes_the_spec(tmp_path: Path, monkeypatch):
    # PyYAML built without libyaml quotes the offending lines in its errors.
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    spec = tmp_path / "smoke.yml"
    spec.write_text(
        "checks:\n  - name: api\n    http: {url: 'http://%s:%s@db/', headers: {X-Token: %s}\n"
        % (URL_USER, quote(URL_PASSWORD, safe=""), ENV_SECRET)
    )
    with pytest.raises(SpecFileError) as error:
        read_document(str(spec))
    assert "line 3, column 11" in str(error.value)
    assert leaked_secrets(str(error.value)) == []
