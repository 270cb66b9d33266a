# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every check type: the fields a user writes, what it compares and the message it writes.

This module is the one registry of check types, CHECK_TYPES. Each type is declared once,
by ``declare`` on its comparer: name, description, fields, example and comparer go in
together. Everything else that lists check types reads CHECK_TYPES: the validator (spec.py), the runner (the comparer to call, the secrets to
redact), the smoke module's argument_spec and documented options (argspec.py,
scripts/sync-module-docs) and docs/checks.md (scripts/gen-check-docs). schema.py holds the
vocabulary the declarations are written in (kinds of value, Field, CheckType, the common
keys). The registry lives here rather than there so that whoever imports it gets every
type: there is no table that another module has to fill in first.

A comparer gets the check's validated fields, a probe (probes.Probe) and an attempt; it
returns an Outcome whose message says what was observed and what was expected. It reads
nothing of the system itself, every read is a call on the probe, and it never puts a
secret in a message. Adding a type is one declaration here plus the probe methods it
needs (probes.Probe and SystemProbe), and a failing variant in scripts/gen-check-docs for
its reference section.

>>> from .probes import SystemProbe
>>> disk = CHECK_TYPES["disk"]
>>> disk.compare({"path": "/", "min_free": 1, "min_free_percent": None,
...               "min_free_inodes_percent": None}, SystemProbe(), Attempt.until(5)).status
'pass'
"""

from __future__ import annotations

import errno
import re
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .schema import CheckType, Field
from .units import format_percent, format_size
from .urls import redact_url

if TYPE_CHECKING:
    from .probes import Probe

PASS, FAIL, ERROR, TIMEOUT, SKIPPED = "pass", "fail", "error", "timeout", "skipped"

# The leading group of dotted numbers, as most tools print their version.
DEFAULT_VERSION_RE = re.compile(r"\d+(?:\.\d+)+[\w.+-]*|\d+")


class Outcome(NamedTuple):
    status: str
    message: str


class Attempt(NamedTuple):
    """One attempt's bounds: when it must end, and whether side effects are allowed."""

    deadline: float  # time.monotonic() value
    check_mode: bool = False

    @classmethod
    def until(cls, seconds: float, check_mode: bool = False) -> Attempt:
        return cls(time.monotonic() + seconds, check_mode)

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())


Params = Dict[str, Any]
Compare = Callable[[Params, "Probe", Attempt], Outcome]

CHECK_TYPES: Dict[str, CheckType] = {}


def declare(
    name: str,
    doc: str,
    fields: List[Field],
    example: Params,
    requires_one_of: Tuple[str, ...] = (),
) -> Callable[[Compare], Compare]:
    """Register a check type in CHECK_TYPES: its schema, and the decorated function as its
    comparer. Types are listed (in errors, options, docs) in the order they are declared."""

    def register(compare: Compare) -> Compare:
        CHECK_TYPES[name] = CheckType(name, doc, fields, example, compare, requires_one_of)
        return compare

    return register


def _problems(problems: List[str], ok_message: str) -> Outcome:
    return Outcome(FAIL, "; ".join(problems)) if problems else Outcome(PASS, ok_message)


@declare(
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
    example={
        "path": "/srv/uploads",
        "fstype": ["nfs4", "ext4"],
        "options": ["rw"],
        "writable": True,
    },
)
def check_mount(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    path = params["path"]
    if not probe.exists(path):
        return Outcome(FAIL, "%s does not exist" % path)
    entry = probe.mount_at(path)
    if entry is None:
        parent = probe.mount_containing(path)
        where = " (it is on %s, %s)" % (parent.target, parent.fstype) if parent else ""
        return Outcome(FAIL, "%s is not a mount point%s" % (path, where))
    problems = []
    if params["fstype"] and entry.fstype not in params["fstype"]:
        problems.append("fstype is %s, expected %s" % (entry.fstype, " or ".join(params["fstype"])))
    missing = [option for option in params["options"] or () if option not in entry.options]
    if missing:
        problems.append("options lack %s (have %s)" % (",".join(missing), ",".join(entry.options)))
    if params["source"] and entry.source != params["source"]:
        problems.append("source is %s, expected %s" % (entry.source, params["source"]))
    writable_note = ""
    if params["writable"]:
        if attempt.check_mode:
            writable_note = ", write test skipped in check mode"
        else:
            try:
                probe.try_write(path)
                writable_note = ", writable"
            except OSError as exc:
                problems.append("cannot write to %s: %s" % (path, exc.strerror or exc))
    return _problems(
        ["%s: %s" % (path, problem) for problem in problems],
        "%s is mounted (%s from %s%s)" % (path, entry.fstype, entry.source, writable_note),
    )


@declare(
    "disk",
    "Free space and free inodes on the filesystem holding a path.",
    [
        Field("path", "path", "Any path on the filesystem to measure.", required=True),
        Field(
            "min_free",
            "size",
            "Free bytes available to unprivileged users (500M, 2GiB, 10GB).",
        ),
        Field("min_free_percent", "percent", "Free space as a percentage of the filesystem."),
        Field(
            "min_free_inodes_percent",
            "percent",
            "Free inodes as a percentage of all inodes.",
        ),
    ],
    example={"path": "/srv", "min_free": "2GiB", "min_free_percent": 10},
    requires_one_of=("min_free", "min_free_percent", "min_free_inodes_percent"),
)
def check_disk(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    path = params["path"]
    if not probe.exists(path):
        return Outcome(FAIL, "%s does not exist" % path)
    usage = probe.disk_usage(path)
    problems = []
    if params["min_free"] is not None and usage.free < params["min_free"]:
        problems.append(
            "%s free on %s, need %s"
            % (format_size(usage.free), path, format_size(params["min_free"]))
        )
    if params["min_free_percent"] is not None and usage.free_percent < params["min_free_percent"]:
        problems.append(
            "%s free on %s, need %s"
            % (format_percent(usage.free_percent), path, format_percent(params["min_free_percent"]))
        )
    inode_text = ""
    if params["min_free_inodes_percent"] is not None:
        if not usage.inodes_total:
            return Outcome(ERROR, "the filesystem of %s does not report inode counts" % path)
        inodes_percent = 100.0 * usage.inodes_free / usage.inodes_total
        inode_text = ", %s inodes free" % format_percent(inodes_percent)
        if inodes_percent < params["min_free_inodes_percent"]:
            problems.append(
                "%s inodes free on %s, need %s"
                % (
                    format_percent(inodes_percent),
                    path,
                    format_percent(params["min_free_inodes_percent"]),
                )
            )
    return _problems(
        problems,
        "%s (%s) free on %s%s"
        % (format_size(usage.free), format_percent(usage.free_percent), path, inode_text),
    )


@declare(
    "env",
    "An environment variable is set (and matches a pattern); its value is never shown.",
    [
        Field("name", "str", "Variable name.", required=True),
        Field("file", "path", "Read a KEY=VALUE env file instead of the process environment."),
        Field("pattern", "regex", "Regular expression the value must match (re.search)."),
        Field("allow_empty", "bool", "Accept a variable that is set but empty.", default=False),
    ],
    example={"name": "DATABASE_URL", "file": "/srv/app/shared/app.env", "pattern": "^postgres://"},
)
def check_env(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    # The value is a secret: it is read, compared and dropped, never formatted.
    name, source = params["name"], params["file"]
    where = " in %s" % source if source else " in the environment"
    if source:
        try:
            values = probe.env_file(source)
        except FileNotFoundError:
            return Outcome(FAIL, "env file %s does not exist" % source)
        except OSError as exc:
            return Outcome(ERROR, "cannot read env file %s: %s" % (source, exc.strerror or exc))
    else:
        values = probe.environ()
    if name not in values:
        return Outcome(FAIL, "%s is not set%s" % (name, where))
    value = values[name]
    if value == "" and not params["allow_empty"]:
        return Outcome(FAIL, "%s is set but empty%s" % (name, where))
    if params["pattern"] is not None:
        if probe.search(params["pattern"], value, timeout=attempt.remaining()) is None:
            return Outcome(
                FAIL, "%s%s does not match %s (value hidden)" % (name, where, params["pattern"])
            )
        return Outcome(PASS, "%s is set%s and matches %s" % (name, where, params["pattern"]))
    return Outcome(PASS, "%s is set%s" % (name, where))


def _version_in(output: str, regex: Optional[str], probe: Probe, attempt: Attempt) -> Optional[str]:
    """The version a program printed: the regex's first group, else its match."""
    if regex is None:
        # The engine's own pattern cannot run away on any output: searched in place.
        match = DEFAULT_VERSION_RE.search(output)
        return match.group(0) if match else None
    found = probe.search(regex, output, timeout=attempt.remaining())
    if found is None:
        return None
    return found.groups[0] if found.groups else found.text


@declare(
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
    example={
        "name": "ffmpeg",
        "version": ">=6.0,<9",
        "args": ["-version"],
        "regex": r"version (\S+)",
    },
)
def check_binary(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    name = params["name"]
    path = probe.which(name)
    if path is None:
        if "/" in name:
            return Outcome(FAIL, "%s does not exist or is not executable" % name)
        return Outcome(FAIL, "%s not found on PATH" % name)
    wanted = params["version"]
    if wanted is None:
        return Outcome(PASS, "%s is %s" % (name, path))
    argv = [path, *params["args"]]
    try:
        returncode, output = probe.run(argv, timeout=attempt.remaining())
    except (socket.timeout, TimeoutError):
        raise  # a TimeoutError is an OSError, but it is the runner's to report as a timeout
    except OSError as exc:
        return Outcome(FAIL, "cannot run %s: %s" % (path, exc.strerror or exc))
    found = _version_in(output, params["regex"], probe, attempt)
    if found is None:
        first_line = output.strip().splitlines()[0][:120] if output.strip() else "(no output)"
        return Outcome(
            ERROR,
            "no version found in the output of %s (exit %d): %s"
            % (" ".join(argv), returncode, first_line),
        )
    if not wanted.contains(found):
        return Outcome(FAIL, "%s %s does not satisfy %s (%s)" % (name, found, wanted, path))
    return Outcome(PASS, "%s %s satisfies %s (%s)" % (name, found, wanted, path))


@declare(
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
    example={"name": "db.internal", "addresses": ["10.0.0.5"]},
)
def check_dns(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    name = params["name"]
    try:
        addresses = probe.resolve(name, params["family"])
    except socket.gaierror as exc:
        return Outcome(FAIL, "%s does not resolve: %s" % (name, exc.strerror or exc))
    if not addresses:
        return Outcome(FAIL, "%s resolves to no %s address" % (name, params["family"]))
    missing = [address for address in params["addresses"] or () if address not in addresses]
    if missing:
        return Outcome(
            FAIL,
            "%s resolves to %s; expected %s among them"
            % (name, ", ".join(addresses), ", ".join(missing)),
        )
    return Outcome(PASS, "%s resolves to %s" % (name, ", ".join(addresses)))


@declare(
    "tcp",
    "A TCP port accepts connections.",
    [
        Field("host", "str", "Host name or address.", required=True),
        Field("port", "port", "Port number.", required=True),
    ],
    example={"host": "db.internal", "port": 5432},
)
def check_tcp(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    host, port = params["host"], params["port"]
    try:
        seconds = probe.tcp_connect(host, port, timeout=attempt.remaining())
    except socket.gaierror as exc:
        return Outcome(FAIL, "%s does not resolve: %s" % (host, exc.strerror or exc))
    except ConnectionRefusedError:
        return Outcome(FAIL, "connection to %s:%d refused" % (host, port))
    except (socket.timeout, TimeoutError):
        raise
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return Outcome(FAIL, "%s:%d is unreachable: %s" % (host, port, exc.strerror))
        return Outcome(FAIL, "cannot connect to %s:%d: %s" % (host, port, exc.strerror or exc))
    return Outcome(PASS, "%s:%d accepts connections (%.1f ms)" % (host, port, 1000 * seconds))


@declare(
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
        Field("status", "statuses", "Expected status code or list of codes.", default=[200]),
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
    example={"url": "http://127.0.0.1:8000/healthz", "status": 200, "body": "ok"},
)
def check_http(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    import http.client  # about 20 ms to import: only specs with http checks pay for it

    method, shown = params["method"], redact_url(params["url"])
    try:
        response = probe.http(
            method,
            params["url"],
            params["headers"] or {},
            timeout=attempt.remaining(),
            follow_redirects=params["follow_redirects"],
            validate_certs=params["validate_certs"],
        )
    except (socket.timeout, TimeoutError):
        raise
    except ConnectionRefusedError:
        return Outcome(FAIL, "%s %s: connection refused" % (method, shown))
    except socket.gaierror as exc:
        return Outcome(FAIL, "%s %s: host does not resolve: %s" % (method, shown, exc.strerror))
    except OSError as exc:
        return Outcome(FAIL, "%s %s: %s" % (method, shown, exc.strerror or exc))
    except http.client.HTTPException as exc:
        return Outcome(FAIL, "%s %s: malformed response (%s)" % (method, shown, type(exc).__name__))
    except ValueError:
        # http.client quotes an invalid header value in its error: never show it.
        return Outcome(
            ERROR, "%s %s: the request could not be sent (invalid URL or header)" % (method, shown)
        )
    status_text = " or ".join(str(code) for code in params["status"])
    if response.status not in params["status"]:
        return Outcome(
            FAIL, "%s %s returned %d, expected %s" % (method, shown, response.status, status_text)
        )
    if params["body"] is not None:
        text = response.body.decode("utf-8", "replace")
        if probe.search(params["body"], text, timeout=attempt.remaining()) is None:
            return Outcome(
                FAIL,
                "%s %s returned %d but the body (%d bytes) does not match %s"
                % (method, shown, response.status, len(response.body), params["body"]),
            )
        return Outcome(
            PASS,
            "%s %s returned %d and the body matches %s"
            % (method, shown, response.status, params["body"]),
        )
    return Outcome(PASS, "%s %s returned %d" % (method, shown, response.status))
