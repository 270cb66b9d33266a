# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials in a URL (``http://user:password@host/``): where they end, and every form of
them that must never be shown.

A user or a password may hold any character percent-encoded (``%40`` for ``@``). An unencoded
``#``, ``/`` or ``?`` ends the host part early: the rest of the password then reads as a
port, path, query or fragment, the request would go to the wrong host, and that rest would
show wherever the URL does. Such a URL is refused (``url_problem``), never guessed at.

>>> redact_url("http://deploy:p%23ss@127.0.0.1:8080/healthz")
'http://***@127.0.0.1:8080/healthz'
>>> credentials("http://deploy:p%23ss%2Fw%3Frd@127.0.0.1/")
(b'deploy', b'p#ss/w?rd')
>>> url_problem("http://deploy:p#ss/w?rd@127.0.0.1/") == AMBIGUOUS
True
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

SCHEMES = ("http", "https")
AUTHORITY_END = "/?#"  # the characters that end the host part of a URL
AT_A_HOST = re.compile(r"@[^/?#@]")
BAD_PORT = "its port is not a number from 1 to 65535"
AMBIGUOUS = (
    "cannot tell where its user:password@ ends (the URL is not shown); percent-encode"
    " '#', '/', '?' and '@' in the user and the password (%23, %2F, %3F, %40), and an '@'"
    " of the path or query as %40"
)


def _after_slashes(url: str) -> str:
    return url.partition("//")[2]


def _authority(url: str) -> str:
    tail = _after_slashes(url)
    return tail[: min((tail.find(mark) for mark in AUTHORITY_END if mark in tail), default=None)]


def _bad_port(url: str) -> bool:
    try:
        return urlsplit(url).port == 0
    except ValueError:  # not a number, out of range, or a broken IPv6 host before it
        return True


def _ambiguous(url: str) -> bool:
    # An '@' after the host part, with a ':' before it and a host after it, is a
    # user:password@host whose password ended the host part early; so is a port that is
    # not a number in a URL that has an '@' somewhere.
    tail = _after_slashes(url)
    colon = tail.find(":")
    if colon >= 0 and AT_A_HOST.search(tail, max(colon + 1, len(_authority(url)))):
        return True
    return "@" in tail and _bad_port(url)


def url_problem(url: str) -> Optional[str]:
    """Why ``url`` is not an http(s) URL smokegate can request, or None.

    The reason never quotes the URL, which may hold a password.

    >>> print(url_problem("http://127.0.0.1:8000/healthz"))
    None
    >>> url_problem("http://127.0.0.1:80x/")
    'its port is not a number from 1 to 65535'
    """
    if any(character.isspace() or not character.isprintable() for character in url):
        return "must not contain spaces or control characters"
    scheme, slashes, _rest = url.partition("://")
    if scheme.lower() not in SCHEMES or not slashes:
        return "expected an http:// or https:// URL"
    if _ambiguous(url):
        return AMBIGUOUS
    try:
        parts = urlsplit(url)
    except ValueError:
        return "its host is not an IPv6 address in brackets"
    if _bad_port(url):
        return BAD_PORT
    if not parts.hostname:
        return "has no host"
    return None


def _userinfo(url: str) -> Optional[str]:
    authority = _authority(url)
    return authority.rpartition("@")[0] if "@" in authority else None


def credentials(url: str) -> Optional[Tuple[bytes, bytes]]:
    """The user and password of ``url``, percent-decoded to the bytes to send, or None."""
    userinfo = _userinfo(url)
    if userinfo is None:
        return None
    user, _colon, password = userinfo.partition(":")
    return unquote_to_bytes(user), unquote_to_bytes(password)


def basic_authorization(url: str) -> Optional[str]:
    """The ``Authorization`` header value for the credentials in ``url``, or None."""
    found = credentials(url)
    if found is None:
        return None
    import base64  # only URLs with credentials need it

    return "Basic " + base64.b64encode(b":".join(found)).decode("ascii")


def redact_url(url: str) -> str:
    """The URL with its user:password@ replaced by ***@, for messages."""
    userinfo = _userinfo(url)
    if userinfo is None:
        return url
    tail = _after_slashes(url)
    return url[: len(url) - len(tail)] + "***@" + tail[len(userinfo) + 1 :]


def _candidates(url: str) -> List[str]:
    # What the user:password may be: the one in the host part, and for a URL refused as
    # ambiguous everything up to the last '@', so that it is masked wherever it shows.
    found = [_userinfo(url)]
    if _ambiguous(url):
        found.append(_after_slashes(url).rpartition("@")[0])
    return [candidate for candidate in found if candidate]


def userinfo_forms(url: str) -> List[str]:
    """The whole user:password of ``url``, as written and percent-decoded (none: [])."""
    forms: List[str] = []
    for userinfo in _candidates(url):
        user, colon, password = userinfo.partition(":")
        forms += [userinfo, unquote(userinfo), unquote(user) + colon + unquote(password)]
    return list(dict.fromkeys(forms))


def secret_forms(url: str) -> List[str]:
    """Every form of the credentials in ``url`` a message could show, longest first.

    The whole user:password, the user and the password, each as written, percent-decoded
    and percent-encoded (with and without its '/'), and the Basic token sent for them.

    >>> secret_forms("http://ops:p%23ss@db/")
    ['b3BzOnAjc3M=', 'ops%3Ap%23ss', 'ops:p%23ss', 'ops:p#ss', 'p%23ss', 'p#ss', 'ops']
    """
    forms = userinfo_forms(url)
    for userinfo in _candidates(url):
        user, _colon, password = userinfo.partition(":")
        for text in (userinfo, user, password):
            decoded = unquote(text)
            forms += [text, decoded, quote(decoded, safe=""), quote(decoded)]
    authorization = basic_authorization(url)
    if authorization is not None:
        forms.append(authorization.split(" ", 1)[1])
    return sorted({form for form in forms if form}, key=lambda form: (-len(form), form))
