# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""X.509 certificates read from their DER bytes: subject, issuer, validity and names.

The ssl module gives a peer's certificate as a dictionary only once it is verified; a
check of an untrusted or expired certificate still has to say whose it is and when it
expires, and there is no stdlib decoder for the bytes. So this reads the few fields it
needs from the DER structure itself (RFC 5280), refusing with ValueError anything that does
not add up: every length is checked against the bytes that hold it.

>>> utc = bytes.fromhex("170d3236303330313132303030305a")  # UTCTime 260301120000Z
>>> _time(utc, *_tlv(utc, 0))  # 2026-03-01 12:00 UTC
1772366400.0
>>> name_matches("*.example.com", "api.example.com"), name_matches("*.example.com", "a.b.example.com")
(True, False)
"""

from __future__ import annotations

import binascii
import re
from typing import List, NamedTuple, Tuple

SEQUENCE, SET, OID, OCTET_STRING, BOOLEAN = 0x30, 0x31, 0x06, 0x04, 0x01
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
EXPLICIT_VERSION, EXPLICIT_EXTENSIONS = 0xA0, 0xA3
DNS_NAME, IP_ADDRESS = 0x82, 0x87
SUBJECT_ALT_NAME = "2.5.29.17"
ATTRIBUTES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}
STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}
PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


class Certificate(NamedTuple):
    subject: str  # as openssl prints it: CN=localhost, O=Example
    issuer: str
    not_before: float  # Unix time
    not_after: float
    names: Tuple[str, ...]  # subjectAltName DNS names and IP addresses


Span = Tuple[int, int, int]  # tag, where the content starts, where it ends


def _tlv(data: bytes, offset: int) -> Span:
    if offset + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or offset + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("truncated")
    return tag, offset, offset + length


def _children(data: bytes, start: int, end: int) -> List[Span]:
    found = []
    while start < end:
        span = _tlv(data, start)
        if span[2] > end:
            raise ValueError("overlapping")
        found.append(span)
        start = span[2]
    return found


def _expect(span: Span, tag: int) -> Span:
    if span[0] != tag:
        raise ValueError("expected tag %#x, found %#x" % (tag, span[0]))
    return span


def _oid(data: bytes, start: int, end: int) -> str:
    if start >= end:
        raise ValueError("empty OID")
    parts = [min(data[start] // 40, 2)]
    parts.append(data[start] - 40 * parts[0])
    value = 0
    for byte in data[start + 1 : end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _time(data: bytes, tag: int, start: int, end: int) -> float:
    text = data[start:end].decode("ascii")
    if tag == UTC_TIME and re.fullmatch(r"\d{12}Z", text):
        year = int(text[:2])
        text = ("20" if year < 50 else "19") + text
    elif tag != GENERALIZED_TIME or not re.fullmatch(r"\d{14}Z", text):
        raise ValueError("not a certificate time: %r" % text)
    import calendar  # 2 ms to import: only a certificate needs it

    fields = [int(text[:4])] + [int(text[index : index + 2]) for index in range(4, 14, 2)]
    return float(calendar.timegm((*fields, 0, 0, 0)))


def _name(data: bytes, start: int, end: int) -> str:
    parts = []
    for relative in _children(data, start, end):
        for attribute in _children(data, *_expect(relative, SET)[1:]):
            oid_span, value_span = _children(data, *_expect(attribute, SEQUENCE)[1:])[:2]
            key = _oid(data, *_expect(oid_span, OID)[1:])
            codec = STRING_CODECS.get(value_span[0], "latin-1")
            value = data[value_span[1] : value_span[2]].decode(codec, "replace")
            parts.append("%s=%s" % (ATTRIBUTES.get(key, key), value))
    return ", ".join(parts)


def _alt_names(data: bytes, start: int, end: int) -> Tuple[str, ...]:
    import ipaddress

    names = []
    for tag, first, last in _children(data, *_expect(_tlv(data, start), SEQUENCE)[1:]):
        if tag == DNS_NAME:
            names.append(data[first:last].decode("ascii", "replace"))
        elif tag == IP_ADDRESS and last - first in (4, 16):
            names.append(str(ipaddress.ip_address(data[first:last])))
    return tuple(names)


def _extension_names(data: bytes, start: int, end: int) -> Tuple[str, ...]:
    (extensions,) = _children(data, start, end)[:1]
    for extension in _children(data, *_expect(extensions, SEQUENCE)[1:]):
        parts = _children(data, *_expect(extension, SEQUENCE)[1:])
        if _oid(data, *_expect(parts[0], OID)[1:]) == SUBJECT_ALT_NAME:
            value = _expect(parts[-1], OCTET_STRING)
            return _alt_names(data, value[1], value[2])
    return ()


def decode(der: bytes) -> Certificate:
    """The fields of a DER certificate; ValueError when it is not one."""
    try:
        certificate = _children(der, *_expect(_tlv(der, 0), SEQUENCE)[1:])
        fields = _children(der, *_expect(certificate[0], SEQUENCE)[1:])
        if fields[0][0] == EXPLICIT_VERSION:
            fields = fields[1:]
        # serial, signature algorithm, issuer, validity, subject, public key, [extras]
        issuer, validity, subject = fields[2], fields[3], fields[4]
        not_before, not_after = _children(der, *_expect(validity, SEQUENCE)[1:])[:2]
        names: Tuple[str, ...] = ()
        for tag, start, end in fields[6:]:
            if tag == EXPLICIT_EXTENSIONS:
                names = _extension_names(der, start, end)
        return Certificate(
            subject=_name(der, *_expect(subject, SEQUENCE)[1:]),
            issuer=_name(der, *_expect(issuer, SEQUENCE)[1:]),
            not_before=_time(der, *not_before),
            not_after=_time(der, *not_after),
            names=names,
        )
    except (IndexError, ValueError, OverflowError) as exc:
        reason = "truncated" if isinstance(exc, IndexError) else str(exc) or type(exc).__name__
        raise ValueError("not an X.509 certificate (%s)" % reason) from None


def pem_to_der(text: str) -> bytes:
    """The first certificate of a PEM file; ValueError when it holds none."""
    match = PEM.search(text)
    if match is None:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    try:
        return binascii.a2b_base64("".join(match.group(1).split()))
    except binascii.Error as exc:
        raise ValueError("its certificate is not valid base64 (%s)" % exc) from None


def name_matches(pattern: str, name: str) -> bool:
    """Whether a certificate name (``*.example.com`` covers one label) covers ``name``."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _dot, rest = name.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == name


def covers(certificate: Certificate, name: str) -> bool:
    """Whether the certificate's subjectAltName covers a host name or an IP address."""
    import ipaddress

    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return any(name_matches(entry, name) for entry in certificate.names)
    return any(entry == str(address) for entry in certificate.names)
