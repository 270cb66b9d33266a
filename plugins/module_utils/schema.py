# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one schema of a check spec: every check type, its fields, the common keys.

The validator (spec.py), the Ansible argument_spec and the reference docs are all
derived from these tables, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

# What each kind of field accepts; spec.py has one validator per kind.
KINDS: Dict[str, str] = {
    "str": "A non-empty string.",
    "path": "An absolute path.",
    "strlist": "A string, or a list of strings.",
    "list": "A list of strings.",
    "bool": "true or false.",
    "size": "Bytes, or a number with a unit: K, M, G, T, P and KiB to PiB are powers of 1024,"
    " KB to PB powers of 1000 (500M, 2GiB, 10GB).",
    "percent": "A number from 0 to 100.",
    "port": "A whole number from 1 to 65535.",
    "number": "Seconds, greater than 0.",
    "delay": "Seconds, 0 or more.",
    "count": "A whole number, 0 or more.",
    "regex": "A Python regular expression, searched for anywhere in the text.",
    "version": "Clauses joined by commas, all of which must hold: >=, <=, >, <, ==, != and a"
    " version (a bare version means ==); ==3.11.* and !=3.11.* match a prefix. Versions"
    " compare on their numbers (9.2p1, 6.1.1-3), a missing one counting as 0.",
    "choice": "One of the listed values.",
    "statuses": "An HTTP status code (100-599), or a list of them.",
    "headers": "A mapping of header names to string values.",
    "url": "An http:// or https:// URL. A user:password@ in it is a secret, never shown:"
    " percent-encode '#', '/', '?' and '@' in the user and the password (%23, %2F, %3F, %40);"
    " a URL where they cannot be told apart from the host is refused.",
}


class Field:
    """One key a user may write.

    ``kind`` is a key of KINDS. ``example`` is a value to show in the docs (a check
    type's fields are shown through its ``example`` instead).
    """

    def __init__(
        self,
        name: str,
        kind: str,
        doc: str,
        required: bool = False,
        default: Any = None,
        choices: Optional[Sequence[str]] = None,
        secret: bool = False,
        example: Any = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.doc = doc
        self.required = required
        self.default = default
        self.choices = tuple(choices) if choices else None
        self.secret = secret
        self.example = example


class CheckType:
    def __init__(
        self,
        name: str,
        doc: str,
        fields: List[Field],
        example: Dict[str, Any],
        requires_one_of: Tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.doc = doc
        self.fields = {field.name: field for field in fields}
        self.example = example
        self.requires_one_of = requires_one_of


CHECK_TYPES: Dict[str, CheckType] = {
    check_type.name: check_type
    for check_type in (
        CheckType(
            "mount",
            "A path is a mount point (read from the mount table, so bind mounts count).",
            [
                Field("path", "path", "Mount point that must exist.", required=True),
                Field("fstype", "strlist", "Allowed filesystem type or list of types."),
                Field("options", "list", "Mount options that must all be present, e.g. [rw]."),
                Field("source", "str", "Expected mount source (device, export or bind root)."),
                Field(
                    "writable",
                    "bool",
                    "Create and remove a temporary file under the mount point.",
                    default=False,
                ),
            ],
            {
                "path": "/srv/uploads",
                "fstype": ["nfs4", "ext4"],
                "options": ["rw"],
                "writable": True,
            },
        ),
        CheckType(
            "disk",
            "Free space and free inodes on the filesystem holding a path.",
            [
                Field("path", "path", "Any path on the filesystem to measure.", required=True),
                Field(
                    "min_free",
                    "size",
                    "Free bytes available to unprivileged users (500M, 2GiB, 10GB).",
                ),
                Field(
                    "min_free_percent", "percent", "Free space as a percentage of the filesystem."
                ),
                Field(
                    "min_free_inodes_percent",
                    "percent",
                    "Free inodes as a percentage of all inodes.",
                ),
            ],
            {"path": "/srv", "min_free": "2GiB", "min_free_percent": 10},
            requires_one_of=("min_free", "min_free_percent", "min_free_inodes_percent"),
        ),
        CheckType(
            "env",
            "An environment variable is set (and matches a pattern); its value is never shown.",
            [
                Field("name", "str", "Variable name.", required=True),
                Field(
                    "file", "path", "Read a KEY=VALUE env file instead of the process environment."
                ),
                Field("pattern", "regex", "Regular expression the value must match (re.search)."),
                Field(
                    "allow_empty", "bool", "Accept a variable that is set but empty.", default=False
                ),
            ],
            {"name": "DATABASE_URL", "file": "/srv/app/shared/app.env", "pattern": "^postgres://"},
        ),
        CheckType(
            "binary",
            "A command exists and, with version, reports a version inside a specifier.",
            [
                Field("name", "str", "Command on PATH, or an absolute path.", required=True),
                Field("version", "version", "Version specifier such as '>=6.0,<9'."),
                Field(
                    "args",
                    "list",
                    "Arguments that make it print its version (stdout and stderr are read).",
                    default=["--version"],
                ),
                Field("regex", "regex", "Where the version is: its first group, else its match."),
            ],
            {
                "name": "ffmpeg",
                "version": ">=6.0,<9",
                "args": ["-version"],
                "regex": r"version (\S+)",
            },
        ),
        CheckType(
            "dns",
            "A name resolves through the system resolver (and to the expected addresses).",
            [
                Field("name", "str", "Name to resolve.", required=True),
                Field("addresses", "list", "Addresses that must all be among the resolved ones."),
                Field(
                    "family",
                    "choice",
                    "Address family to ask for.",
                    default="any",
                    choices=("any", "ipv4", "ipv6"),
                ),
            ],
            {"name": "db.internal", "addresses": ["10.0.0.5"]},
        ),
        CheckType(
            "tcp",
            "A TCP port accepts connections.",
            [
                Field("host", "str", "Host name or address.", required=True),
                Field("port", "port", "Port number.", required=True),
            ],
            {"host": "db.internal", "port": 5432},
        ),
        CheckType(
            "http",
            "An HTTP(S) request returns the expected status (and body).",
            [
                Field(
                    "url",
                    "url",
                    "http:// or https:// URL; a user:password@ in it is sent as Basic"
                    " authentication, percent-decoded, and never shown.",
                    required=True,
                ),
                Field(
                    "status", "statuses", "Expected status code or list of codes.", default=[200]
                ),
                Field("body", "regex", "Regular expression the response body must match."),
                Field(
                    "method",
                    "choice",
                    "Request method.",
                    default="GET",
                    choices=("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
                ),
                Field(
                    "headers",
                    "headers",
                    "Request headers; values are secrets and never shown.",
                    secret=True,
                ),
                Field("follow_redirects", "bool", "Follow up to 5 redirects.", default=False),
                Field(
                    "validate_certs",
                    "bool",
                    "Verify the server certificate for https.",
                    default=True,
                ),
            ],
            {"url": "http://127.0.0.1:8000/healthz", "status": 200, "body": "ok"},
        ),
    )
}

SEVERITIES = ("critical", "warning")

COMMON_FIELDS: Dict[str, Field] = {
    field.name: field
    for field in (
        Field("name", "str", "Unique name of the check.", required=True, example="app health"),
        Field(
            "severity",
            "choice",
            "A failing warning is reported but never fails the gate.",
            default="critical",
            choices=SEVERITIES,
            example="warning",
        ),
        Field(
            "timeout",
            "number",
            "Seconds one attempt may take; always enforced.",
            default=5.0,
            example=3,
        ),
        Field("retries", "count", "Extra attempts after a failed one.", default=0, example=2),
        Field("retry_delay", "delay", "Seconds between attempts.", default=1.0, example=0.5),
    )
}
