"""The tls check against loopback TLS servers whose certificates the test makes with
openssl: valid, expiring in 3 days, expired, the wrong name, self-signed with and without
ca_file, and the same certificates read from PEM files."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from pki import tls_server

from ansible_collections.smokegate.core.plugins.module_utils import certs
from smokegate.engine import runner, spec

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def run(*checks: dict) -> dict[str, dict]:
    report = runner.run_checks(spec.parse_spec(list(checks)))
    return {result["name"]: result for result in report["results"]}


def test_a_valid_certificate_trusted_through_ca_file_and_the_same_one_untrusted(pki: Path):
    ca = str(pki / "ca.pem")
    with tls_server(pki, "valid") as port:
        results = run(
            {"name": "by ip", "tls": {"host": "127.0.0.1", "port": port, "ca_file": ca}},
            {
                "name": "by name",
                "tls": {
                    "host": "127.0.0.1",
                    "port": port,
                    "server_name": "localhost",
                    "ca_file": ca,
                },
            },
            {"name": "system CAs", "tls": {"host": "127.0.0.1", "port": port}},
            {"name": "unverified", "tls": {"host": "127.0.0.1", "port": port, "verify": False}},
        )
    assert results["by ip"]["status"] == "pass", results["by ip"]
    assert results["by ip"]["message"].startswith(
        "the certificate of 127.0.0.1:%d: CN=localhost, O=smokegate tests, issued by"
        " CN=smokegate test CA, 90 days left (until " % port
    )
    assert results["by ip"]["message"].endswith("), verified for 127.0.0.1")
    assert results["by name"]["message"].endswith("verified for localhost")
    assert results["system CAs"]["status"] == "fail"
    assert results["system CAs"]["message"].startswith(
        "the certificate of 127.0.0.1:%d: it is not trusted: unable to get local issuer"
        " certificate (CN=localhost" % port
    )
    assert results["unverified"]["status"] == "pass"
    assert not results["unverified"]["message"].endswith("verified for 127.0.0.1")


def test_expiring_expired_and_wrong_name(pki: Path):
    ca = str(pki / "ca.pem")
    with (
        tls_server(pki, "expiring") as soon,
        tls_server(pki, "expired") as gone,
        tls_server(pki, "valid") as valid,
    ):
        results = run(
            {"name": "soon", "tls": {"host": "127.0.0.1", "port": soon, "ca_file": ca}},
            {
                "name": "soon is fine",
                "tls": {"host": "127.0.0.1", "port": soon, "ca_file": ca, "min_days": 2.5},
            },
            {"name": "gone", "tls": {"host": "127.0.0.1", "port": gone, "ca_file": ca}},
            {
                "name": "gone unverified",
                "tls": {"host": "127.0.0.1", "port": gone, "verify": False},
            },
            {
                "name": "wrong name",
                "tls": {
                    "host": "127.0.0.1",
                    "port": valid,
                    "server_name": "wrong.example",
                    "ca_file": ca,
                },
            },
        )
    assert results["soon"]["status"] == "fail"
    assert results["soon"]["message"].startswith(
        "the certificate of 127.0.0.1:%d has 3.0 days left, expected at least 14 days"
        " (CN=localhost, O=smokegate tests, issued by CN=smokegate test CA, 3 days left" % soon
    )
    assert results["soon is fine"]["status"] == "pass"
    assert results["gone"]["message"].startswith(
        "the certificate of 127.0.0.1:%d: it is not trusted: certificate has expired" % gone
    )
    assert "expired 10 days ago" in results["gone"]["message"]
    assert results["gone unverified"]["message"].startswith(
        "the certificate of 127.0.0.1:%d has expired, expected at least 14 days" % gone
    )
    assert results["wrong name"]["message"].startswith(
        "the certificate of 127.0.0.1:%d: it is not trusted: Hostname mismatch, certificate"
        " is not valid for 'wrong.example'." % valid
    )


def test_self_signed_with_and_without_ca_file(pki: Path):
    with tls_server(pki, "self") as port:
        results = run(
            {"name": "untrusted", "tls": {"host": "localhost", "port": port}},
            {
                "name": "trusted",
                "tls": {"host": "localhost", "port": port, "ca_file": str(pki / "self.pem")},
            },
        )
    assert results["untrusted"]["message"].startswith(
        "the certificate of localhost:%d: it is not trusted: self-signed certificate"
        " (CN=localhost, issued by CN=localhost, 30 days left" % port
    )
    assert results["trusted"]["status"] == "pass", results["trusted"]


def test_pem_files_expiry_and_names(pki: Path, tmp_path: Path):
    (tmp_path / "garbage.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    results = run(
        {"name": "valid", "tls": {"file": str(pki / "valid.pem")}},
        {"name": "covers", "tls": {"file": str(pki / "valid.pem"), "server_name": "localhost"}},
        {"name": "wrong", "tls": {"file": str(pki / "valid.pem"), "server_name": "api.example"}},
        {"name": "expiring", "tls": {"file": str(pki / "expiring.pem")}},
        {"name": "key", "tls": {"file": str(pki / "valid.key")}},
        {"name": "garbage", "tls": {"file": str(tmp_path / "garbage.pem")}},
        {"name": "missing", "tls": {"file": str(tmp_path / "none.pem")}},
    )
    assert results["valid"]["status"] == "pass"
    assert results["valid"]["message"].startswith(
        "the certificate of %s: CN=localhost, O=smokegate tests, issued by CN=smokegate test"
        " CA, 90 days left" % (pki / "valid.pem")
    )
    assert results["covers"]["status"] == "pass"
    assert results["wrong"]["message"].startswith(
        "the certificate of %s: it is not issued for api.example (it names localhost,"
        " 127.0.0.1)" % (pki / "valid.pem")
    )
    assert results["expiring"]["status"] == "fail"
    assert results["key"]["message"] == (
        "%s: no PEM certificate (-----BEGIN CERTIFICATE-----) in it" % (pki / "valid.key")
    )
    assert results["garbage"]["message"].startswith(
        "%s: not an X.509 certificate" % (tmp_path / "garbage.pem")
    )
    assert results["missing"]["message"] == "%s does not exist" % (tmp_path / "none.pem")


def test_the_decoder_agrees_with_openssl(pki: Path):
    for name in ("valid", "expiring", "expired", "self", "ca"):
        decoded = certs.decode(certs.pem_to_der((pki / (name + ".pem")).read_text()))
        dates = subprocess.run(
            [
                "openssl",
                "x509",
                "-in",
                str(pki / (name + ".pem")),
                "-noout",
                "-enddate",
                "-startdate",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        not_after = ssl.cert_time_to_seconds(dates[0].partition("=")[2])
        not_before = ssl.cert_time_to_seconds(dates[1].partition("=")[2])
        assert (decoded.not_after, decoded.not_before) == (not_after, not_before), name
    assert certs.decode(certs.pem_to_der((pki / "valid.pem").read_text())).names == (
        "localhost",
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    "junk", [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01", b"\x30\x80"]
)
def test_malformed_der_is_refused(junk: bytes):
    with pytest.raises(ValueError):
        certs.decode(junk)


def test_a_server_that_never_answers_times_out_and_plain_http_is_no_tls(
    silent_port: int, http_server: str
):
    http_port = int(http_server.rpartition(":")[2])
    started = time.monotonic()
    results = run(
        {"name": "silent", "timeout": 0.5, "tls": {"host": "127.0.0.1", "port": silent_port}},
        {"name": "plain", "tls": {"host": "127.0.0.1", "port": http_port}},
    )
    assert results["silent"]["status"] == "timeout"
    assert time.monotonic() - started < 1.5
    assert results["plain"]["status"] == "fail"
    assert results["plain"]["message"].startswith("TLS with 127.0.0.1:%d failed: " % http_port)


def test_tls_fields_that_do_not_go_together_are_spec_errors():
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_spec(
            [
                {"name": "a", "tls": {"host": "db"}},
                {"name": "b", "tls": {"file": "/etc/ssl/x.pem", "host": "db", "port": 443}},
                {"name": "c", "tls": {"min_days": 3}},
            ]
        )
    assert caught.value.errors == [
        "check 'a': tls needs host and port, or file",
        "check 'b': tls reads file, or connects to host and port, not both (host, port given)",
        "check 'c': tls needs at least one of host, file",
    ]
