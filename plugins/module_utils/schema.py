# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vocabulary of a check spec: kinds of value, fields, check types, the common keys.

The check types themselves are declared in checks.py, each with its comparer, into the
one registry CHECK_TYPES. The validator (spec.py), the Ansible argument_spec and the
reference docs are derived from that registry and from these tables, so they cannot
disagree. At run time this module imports nothing of the engine, so any module may import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from .checks import Compare

    # A type's rule over its validated fields: one line per problem, naming the fields.
    Rule = Callable[[Dict[str, Any]], List[str]]

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
    "float": "A number, whole or decimal, negative or not.",
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
    "exits": "An exit status (0-255), or a list of them.",
    "environment": "A mapping of variable names to string values.",
    "unit": "A systemd unit name (nginx, nginx.service, app@1.service); .service is assumed"
    " when it has no suffix.",
    "mode": "Permission bits as a quoted octal string, such as '0640' or '755' (an unquoted"
    " 0640 is read by YAML as a number, and refused).",
    "address": "An IPv4 or IPv6 address.",
    "days": "Days, 0 or more (1.5 is a day and a half).",
    "expectations": "A mapping of JSON paths (status, checks.db.ok, items.0.id: keys and list"
    " indexes joined by dots) to the expected value, or to a mapping of tests: regex (the"
    " value as text must match), min and max (a number in range), type (string, number,"
    " integer, boolean, null, object or array), exists (false: the path must be absent).",
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
    """One kind of check: the key that names it, its fields, and its comparer.

    ``example`` holds valid fields, shown in the docs; ``requires_one_of`` names fields of
    which at least one must be given; ``rule`` checks how the validated fields go together
    (one line per problem); ``compare`` (checks.py) decides a check of this type.
    """

    def __init__(
        self,
        name: str,
        doc: str,
        fields: List[Field],
        example: Dict[str, Any],
        compare: Compare,
        requires_one_of: Tuple[str, ...] = (),
        rule: Optional[Rule] = None,
    ) -> None:
        self.name = name
        self.doc = doc
        self.fields = {field.name: field for field in fields}
        self.example = example
        self.compare = compare
        self.requires_one_of = requires_one_of
        self.rule = rule


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
