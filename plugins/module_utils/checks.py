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
import json
import math
import re
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import urlencode, urlsplit, urlunsplit

from .certs import covers
from .configs import FORMATS as CONFIG_FORMATS
from .configs import Unsupported as ConfigUnsupported
from .configs import problem as config_problem
from .jsonpath import expectation_problem, lookup
from .schema import CheckType, Field
from .units import format_number, format_percent, format_seconds, format_size
from .urls import redact_url

if TYPE_CHECKING:
    from .certs import Certificate
    from .probes import FileInfo, HttpResponse, Probe

PASS, FAIL, ERROR, TIMEOUT, SKIPPED = "pass", "fail", "error", "timeout", "skipped"

# The leading group of dotted numbers, as most tools print their version.
DEFAULT_VERSION_RE = re.compile(r"\d+(?:\.\d+)+[\w.+-]*|\d+")


class Outcome(NamedTuple):
    status: str
    message: str


class Attempt(NamedTuple):
    """One attempt's bounds: when it must end, and whether side effects are allowed; and the
    host it runs for, by the name the front end knows it by (run_checks' ``host``:
    localhost for an attempt made by hand)."""

    deadline: float  # time.monotonic() value
    check_mode: bool = False
    host: str = "localhost"

    @classmethod
    def until(cls, seconds: float, check_mode: bool = False, host: str = "localhost") -> Attempt:
        return cls(time.monotonic() + seconds, check_mode, host)

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())


Params = Dict[str, Any]
Compare = Callable[[Params, "Probe", Attempt], Outcome]
Rule = Callable[[Params], List[str]]

CHECK_TYPES: Dict[str, CheckType] = {}


def declare(
    name: str,
    doc: str,
    fields: List[Field],
    example: Params,
    requires_one_of: Tuple[str, ...] = (),
    rule: Optional[Rule] = None,
) -> Callable[[Compare], Compare]:
    """Register a check type in CHECK_TYPES: its schema, and the decorated function as its
    comparer. Types are listed (in errors, options, docs) in the order they are declared."""

    def register(compare: Compare) -> Compare:
        CHECK_TYPES[name] = CheckType(name, doc, fields, example, compare, requires_one_of, rule)
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
        Field(
            "json",
            "expectations",
            "The body is JSON, and each path holds the expected value or passes its tests.",
        ),
        Field(
            "max_latency",
            "number",
            "Seconds from the request to the last byte of the body; slower fails, whatever"
            " the status.",
        ),
    ],
    example={"url": "http://127.0.0.1:8000/healthz", "status": 200, "body": "ok"},
)
def check_http(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    method = params["method"]
    shown = "%s %s" % (method, redact_url(params["url"]))
    response = _exchange(
        probe,
        method,
        params["url"],
        params["headers"] or {},
        attempt,
        shown,
        follow_redirects=params["follow_redirects"],
        validate_certs=params["validate_certs"],
    )
    if isinstance(response, Outcome):
        return response
    status_text = " or ".join(str(code) for code in params["status"])
    if response.status not in params["status"]:
        return Outcome(FAIL, "%s returned %d, expected %s" % (shown, response.status, status_text))
    returned = "%s returned %d" % (shown, response.status)
    latency = params["max_latency"]
    if latency is not None and response.seconds > latency:
        return Outcome(
            FAIL,
            "%s in %s s, over its max_latency of %s s"
            % (returned, format_seconds(response.seconds), format_seconds(latency)),
        )
    timing = " in %s s" % format_seconds(response.seconds) if latency is not None else ""
    matched = ""
    if params["body"] is not None:
        text = response.body.decode("utf-8", "replace")
        if probe.search(params["body"], text, timeout=attempt.remaining()) is None:
            return Outcome(
                FAIL,
                "%s but the body (%d bytes) does not match %s"
                % (returned, len(response.body), params["body"]),
            )
        matched = " and the body matches %s" % params["body"]
    if params["json"] is not None:
        problems = _json_problems(response.body, params["json"], probe, attempt)
        if problems:
            return Outcome(FAIL, "%s but %s" % (returned, "; ".join(problems)))
        matched += "%s JSON %s as expected" % (
            "," if matched else " with",
            ", ".join(params["json"]),
        )
    return Outcome(PASS, returned + timing + matched)


def _exchange(
    probe: Probe,
    method: str,
    url: str,
    headers: Dict[str, str],
    attempt: Attempt,
    shown: str,
    follow_redirects: bool = False,
    validate_certs: bool = True,
) -> Union[HttpResponse, Outcome]:
    """The answer to one HTTP request, or the outcome of a request that got none. ``shown``
    names the request in messages (its URL without credentials)."""
    import http.client  # about 20 ms to import: only specs with HTTP requests pay for it

    try:
        return probe.http(
            method,
            url,
            headers,
            timeout=attempt.remaining(),
            follow_redirects=follow_redirects,
            validate_certs=validate_certs,
        )
    except (socket.timeout, TimeoutError):
        raise
    except ConnectionRefusedError:
        return Outcome(FAIL, "%s: connection refused" % shown)
    except socket.gaierror as exc:
        return Outcome(FAIL, "%s: host does not resolve: %s" % (shown, exc.strerror))
    except OSError as exc:
        return Outcome(FAIL, "%s: %s" % (shown, exc.strerror or exc))
    except http.client.HTTPException as exc:
        return Outcome(FAIL, "%s: malformed response (%s)" % (shown, type(exc).__name__))
    except ValueError:
        # http.client quotes an invalid header value in its error: never show it.
        return Outcome(ERROR, "%s: the request could not be sent (invalid URL or header)" % shown)


QUERY_PATH = "/api/v1/query"
# What a host name may hold to be put in a query: nothing that ends or escapes a PromQL
# string, whichever quotes it is written in.
QUERY_HOST = re.compile(r"[\w.:-]+")
# A sample value as Prometheus writes it: every digit, so -5e-324 takes 327 characters.
SAMPLE_VALUE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN")
MAX_VALUE_TEXT = 400
# How much of a text from the server a message shows (an error, a series' labels).
MAX_SHOWN = 200
MAX_LABELS_SHOWN = 400


class Sample(NamedTuple):
    labels: Optional[Dict[str, str]]  # None for a scalar
    value: float


class BadAnswer(Exception):
    """An answer the check cannot compare; the text says what was wrong with it."""


def _printable(text: str, limit: int = MAX_SHOWN) -> str:
    """A server's text for a message: control and non-ASCII characters escaped, so that a
    terminal shows them instead of acting on them, and cut after ``limit`` characters."""
    shown = text[: limit + 1].encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _labels(metric: Any, where: str) -> Dict[str, str]:
    if not isinstance(metric, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metric.items()
    ):
        raise BadAnswer("%s has no mapping of labels to strings" % where)
    return metric


def _series(labels: Dict[str, str]) -> str:
    """A series as PromQL writes it, name{label="value", ...}, its texts made printable."""
    inner = ", ".join(
        '%s="%s"' % (_printable(key, 60), _printable(value, 100).replace('"', '\\"'))
        for key, value in sorted(labels.items())
        if key != "__name__"
    )
    if len(inner) > MAX_LABELS_SHOWN:
        inner = inner[:MAX_LABELS_SHOWN] + "..."
    return _printable(labels.get("__name__", ""), 100) + "{%s}" % inner


def _sample_value(pair: Any, where: str) -> float:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise BadAnswer('%s is not a [time, "value"] pair' % where)
    text = pair[1]
    if len(text) > MAX_VALUE_TEXT or not SAMPLE_VALUE.fullmatch(text):
        raise BadAnswer('%s has the value "%s", not a number' % (where, _printable(text, 40)))
    return float(text)


def _samples(response: HttpResponse) -> List[Sample]:
    """The samples of an answer to an instant query, a scalar as one sample."""
    if response.truncated:
        raise BadAnswer("%s answered more than %s" % (QUERY_PATH, format_size(len(response.body))))
    try:
        document = json.loads(response.body.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser
        document = None
    if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
        raise BadAnswer("%s returned %d, not a Prometheus answer" % (QUERY_PATH, response.status))
    if document["status"] == "error":
        error, error_type = document.get("error"), document.get("errorType")
        raise BadAnswer(
            "refused the query%s: %s"
            % (
                " (%s)" % _printable(error_type, 40) if isinstance(error_type, str) else "",
                _printable(error) if isinstance(error, str) else "(no message)",
            )
        )
    data = document.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind == "scalar":
        return [Sample(None, _sample_value(data.get("result"), "the scalar"))]
    if kind == "matrix":
        raise BadAnswer(
            "the query returns a range vector (matrix); the check compares an instant vector"
            " or a scalar, such as max_over_time(...[5m])"
        )
    if kind == "string":
        raise BadAnswer("the query returns a string, not a number")
    if kind != "vector":
        raise BadAnswer("its answer has no resultType vector or scalar")
    result = data.get("result")
    if not isinstance(result, list):
        raise BadAnswer("its vector is not a list of samples")
    samples = []
    for number, item in enumerate(result, 1):
        where = "sample %d" % number
        if not isinstance(item, dict):
            raise BadAnswer("%s is not a mapping of metric and value" % where)
        samples.append(
            Sample(_labels(item.get("metric"), where), _sample_value(item.get("value"), where))
        )
    return samples


def _outside(value: float, low: Optional[float], high: Optional[float]) -> float:
    """How far outside the bounds a value lies: 0 within them; NaN and infinities, which
    no bound can hold, lie infinitely far."""
    if math.isnan(value) or math.isinf(value):
        return math.inf
    below = low - value if low is not None else 0.0
    above = value - high if high is not None else 0.0
    return max(below, above, 0.0)


def _sample_text(sample: Sample) -> str:
    value = format_number(sample.value)
    if sample.labels is None:
        return "scalar %s" % value
    return "%s for %s" % (value, _series(sample.labels))


def _query_url(base: str, query: str, seconds: float) -> str:
    parts = urlsplit(base)
    # Prometheus stops evaluating when the attempt stops waiting.
    arguments = urlencode({"query": query, "timeout": "%.3f" % seconds})
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            parts.path.rstrip("/") + QUERY_PATH,
            "&".join(filter(None, (parts.query, arguments))),
            "",
        )
    )


@declare(
    "prometheus",
    "Every sample of a PromQL instant query (or the scalar it returns) is within bounds,"
    " asked of Prometheus's HTTP API (/api/v1/query under url) within the check's timeout."
    " NaN and infinite samples fail whatever the bounds; a query Prometheus refuses is an"
    " error that shows its message, as is one that returns a range vector or a string.",
    [
        Field(
            "url",
            "url",
            "The Prometheus server's base URL, path prefix included (http://prometheus:9090);"
            " a user:password@ in it is sent as Basic authentication, percent-decoded, and"
            " never shown.",
            required=True,
        ),
        Field(
            "query",
            "str",
            "PromQL, evaluated now. {host} in it is replaced by the host's name as the front"
            " end knows it: the inventory_hostname in Ansible, the -H name with fab, the"
            " machine's host name for smokegate check and serve.",
            required=True,
        ),
        Field("max", "float", "Every sample must be at most this."),
        Field("min", "float", "Every sample must be at least this."),
        Field(
            "on_empty",
            "choice",
            "What a query that returns no sample is (pass: for a series that only exists"
            " while something is wrong).",
            default="fail",
            choices=("fail", "pass"),
        ),
        Field(
            "headers",
            "headers",
            "Request headers; values are secrets and never shown.",
            secret=True,
        ),
    ],
    example={
        "url": "http://127.0.0.1:9090",
        "query": 'rate(http_errors_total{instance="{host}"}[5m])',
        "max": 0.01,
    },
    requires_one_of=("max", "min"),
)
def check_prometheus(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    query = params["query"]
    if "{host}" in query:
        if not QUERY_HOST.fullmatch(attempt.host):
            return Outcome(
                ERROR,
                "the host name %s cannot be put in a query: only letters, digits and . _ : -"
                % _printable(attempt.host, 60),
            )
        query = query.replace("{host}", attempt.host)
    shown = "Prometheus at %s" % redact_url(params["url"])
    url = _query_url(params["url"], query, attempt.remaining())
    response = _exchange(probe, "GET", url, params["headers"] or {}, attempt, shown)
    if isinstance(response, Outcome):
        return response
    try:
        samples = _samples(response)
    except BadAnswer as exc:
        return Outcome(ERROR, "%s: %s" % (shown, exc))
    if not samples:
        if params["on_empty"] == "pass":
            return Outcome(PASS, "no samples for %s (on_empty: pass)" % _printable(query))
        return Outcome(FAIL, "no samples for %s" % _printable(query))
    return _within(samples, params["min"], params["max"])


def _within(samples: List[Sample], low: Optional[float], high: Optional[float]) -> Outcome:
    """Pass when every sample is within the bounds; else fail on the one furthest out."""
    want = "want " + " and ".join(
        "%s %s" % (operator, format_number(bound))
        for operator, bound in ((">=", low), ("<=", high))
        if bound is not None
    )
    distances = [_outside(sample.value, low, high) for sample in samples]
    outside = sum(1 for distance in distances if distance > 0)
    if outside:
        furthest = max(distances)
        # Of samples equally far out (NaNs, say), the same one every time, whatever the
        # order of the answer; only those are written out.
        worst = min(
            _sample_text(sample)
            for sample, distance in zip(samples, distances)
            if distance == furthest
        )
        count = " (%d of %d samples outside)" % (outside, len(samples))
        return Outcome(FAIL, "%s, %s%s" % (worst, want, count if len(samples) > 1 else ""))
    if len(samples) == 1:
        return Outcome(PASS, "%s, %s" % (_sample_text(samples[0]), want))
    values = [sample.value for sample in samples]
    return Outcome(
        PASS,
        "%d samples from %s to %s, %s"
        % (len(samples), format_number(min(values)), format_number(max(values)), want),
    )


def _json_problems(body: bytes, expected: Params, probe: Probe, attempt: Attempt) -> List[str]:
    """What in a JSON body differs from the expected paths, one line each."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "line %d: %s" % (exc.lineno, exc.msg) if hasattr(exc, "lineno") else "unreadable"
        return ["the body (%d bytes) is not JSON (%s)" % (len(body), reason)]

    def matches(pattern: str, text: str) -> bool:
        return probe.search(pattern, text, timeout=attempt.remaining()) is not None

    problems = []
    for path, wanted in expected.items():
        found, value = lookup(document, path)
        problem = expectation_problem(found, value, wanted, matches)
        if problem is not None:
            problems.append("%s %s" % (path, problem))
    return problems


# --- commands, services, processes, ports ------------------------------------------------
TAIL_LINES = 3
TAIL_CHARACTERS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escaped(text: str) -> str:
    # A program's output goes into terminals and reports: no escape sequences from it.
    return _CONTROL.sub(lambda match: "\\x%02x" % ord(match.group()), text)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    shown = " | ".join(lines[-TAIL_LINES:])
    if len(shown) > TAIL_CHARACTERS:
        shown = "..." + shown[-TAIL_CHARACTERS:]
    return _escaped(shown)


def _output_tail(stdout: str, stderr: str) -> str:
    parts = [
        "%s ends: %s" % (name, _tail(text))
        for name, text in (("stdout", stdout), ("stderr", stderr))
        if text.strip()
    ]
    return "; ".join(parts) if parts else "no output"


def _command_line(argv: List[str]) -> str:
    shown = " ".join(argv)
    return _escaped(shown if len(shown) <= 120 else shown[:117] + "...")


def _exit_text(status: int) -> str:
    return "exited %d" % status if status >= 0 else "was killed by signal %d" % -status


def _os_reason(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    filename = getattr(exc, "filename", None)
    return "%s: %s" % (reason, filename) if filename and getattr(exc, "strerror", None) else reason


@declare(
    "command",
    "A command (a smoke script, pytest -m smoke, manage.py check --deploy) exits as expected,"
    " its output matching. Run without a shell, in its own process group, killed with the"
    " whole group at its timeout; not run in check mode, since a command may change things.",
    [
        Field(
            "argv",
            "list",
            "The program (on PATH, or a path) and its arguments, never run by a shell; they"
            " are shown in messages, so pass secrets in env.",
            required=True,
        ),
        Field("exit", "exits", "Expected exit status, or a list of them.", default=[0]),
        Field("stdout", "regex", "Regular expression its standard output must match."),
        Field("stderr", "regex", "Regular expression its standard error must match."),
        Field("cwd", "path", "Directory to run it in."),
        Field(
            "env",
            "environment",
            "Variables added to its environment; the values are secrets, never shown.",
            secret=True,
        ),
        Field(
            "quiet",
            "bool",
            "Leave its output out of failure messages (the exit status is still shown).",
            default=False,
        ),
    ],
    example={
        "argv": ["python3", "smoke.py"],
        "cwd": "/srv/app/current",
        "stdout": "all checks passed",
    },
)
def check_command(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    argv = params["argv"]
    shown = _command_line(argv)
    if attempt.check_mode:
        return Outcome(SKIPPED, "%s not run in check mode: a command may change the host" % shown)
    try:
        result = probe.run_command(
            argv, timeout=attempt.remaining(), cwd=params["cwd"], env=params["env"]
        )
    except (socket.timeout, TimeoutError):
        raise
    except OSError as exc:
        return Outcome(FAIL, "cannot run %s: %s" % (shown, _os_reason(exc)))
    exit_ok = result.status in params["exit"]
    expected = " or ".join(str(code) for code in params["exit"])
    problems = [] if exit_ok else ["%s, expected %s" % (_exit_text(result.status), expected)]
    for stream in ("stdout", "stderr"):
        pattern = params[stream]
        text = getattr(result, stream)
        if pattern is not None and probe.search(pattern, text, timeout=attempt.remaining()) is None:
            problems.append("its %s does not match %s" % (stream, pattern))
    matched = [params[stream] for stream in ("stdout", "stderr") if params[stream] is not None]
    if not problems:
        also = " and matches %s" % ", ".join(matched) if matched else ""
        return Outcome(PASS, "%s %s%s" % (shown, _exit_text(result.status), also))
    lead = "%s %s but " % (shown, _exit_text(result.status)) if exit_ok else shown + " "
    output = (
        "output hidden (quiet)" if params["quiet"] else _output_tail(result.stdout, result.stderr)
    )
    return Outcome(FAIL, "%s%s; %s" % (lead, "; ".join(problems), output))


def _for(seconds: float) -> str:
    """A duration as people read it: 45 s, 12 min, 3.1 h, 4.2 days."""
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%.1f h" % (seconds / 3600)
    return "%.1f days" % (seconds / 86400)


@declare(
    "service",
    "A systemd unit is active (or is not), enabled, has been up for a while and is not"
    " restarting in a loop. Read with systemctl show; on a host without systemd it is an"
    " error.",
    [
        Field("name", "unit", "The unit; .service is assumed without a suffix.", required=True),
        Field("active", "bool", "Whether it must be active, or must not be.", default=True),
        Field("enabled", "bool", "Whether it must be enabled (started at boot), or must not be."),
        Field(
            "min_uptime",
            "number",
            "Seconds it must have been active: a unit in a restart loop that happens to be"
            " up fails.",
        ),
        Field(
            "max_restarts",
            "count",
            "Automatic restarts (systemd's NRestarts) it may have had at most.",
        ),
    ],
    example={"name": "nginx", "enabled": True, "min_uptime": 30, "max_restarts": 3},
)
def check_service(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    unit = params["name"]
    try:
        state = probe.service_state(unit, timeout=attempt.remaining())
    except (socket.timeout, TimeoutError):
        raise
    except (OSError, ValueError) as exc:
        return Outcome(ERROR, "cannot read the state of %s: %s" % (unit, _os_reason(exc)))
    described = state.active_state + (" (%s)" % state.sub_state if state.sub_state else "")
    active = state.active_state in ("active", "reloading")  # as systemctl is-active
    if state.load_state == "not-found":
        if params["active"] or params["enabled"]:
            return Outcome(FAIL, "%s is not installed on this host" % unit)
        return Outcome(PASS, "%s is not installed, so not active" % unit)
    problems = []
    if params["active"] != active:
        problems.append(
            "%s is %s, expected %s"
            % (unit, described, "active" if params["active"] else "not active")
        )
    if params["enabled"] is not None and state.enabled != params["enabled"]:
        problems.append(
            "%s is %s, expected %s"
            % (
                unit,
                state.unit_file_state or "without a unit file",
                "enabled" if params["enabled"] else "not enabled",
            )
        )
    restarts = "" if state.restarts is None else ", %d restarts" % state.restarts
    if params["min_uptime"] is not None and active and (state.uptime or 0) < params["min_uptime"]:
        problems.append(
            "%s has been active for %s, expected at least %s (%s%s)"
            % (unit, _for(state.uptime or 0), _for(params["min_uptime"]), described, restarts)
        )
    wanted_restarts = params["max_restarts"]
    if wanted_restarts is not None and (state.restarts or 0) > wanted_restarts:
        problems.append(
            "%s restarted %d times, at most %d allowed" % (unit, state.restarts, wanted_restarts)
        )
    since = " for %s" % _for(state.uptime) if state.uptime is not None else ""
    file_state = ", " + state.unit_file_state if state.unit_file_state else ""
    return _problems(problems, "%s is %s%s%s%s" % (unit, described, since, file_state, restarts))


def _counted(params: Params) -> List[str]:
    if params["max"] is not None and params["max"] < params["min"]:
        return ["max (%d) is less than min (%d)" % (params["max"], params["min"])]
    return []


def _account(wanted: str, name: str, number: int) -> bool:
    """Whether a user or group given as a name, or as an id in digits, is this one."""
    return wanted == str(number) if wanted.isdigit() else wanted == name


def _pids(pids: List[int]) -> str:
    shown = ", ".join(str(pid) for pid in pids[:5])
    return "pid%s %s%s" % ("s" if len(pids) > 1 else "", shown, ", ..." if len(pids) > 5 else "")


@declare(
    "process",
    "Processes are running, found by their exact name or a regex over their command line,"
    " and counted. Read from /proc (psutil when present); zombies do not count.",
    [
        Field(
            "name",
            "str",
            "Exact process name, as pgrep and ps -o comm show it (the kernel keeps 15"
            " characters of it; a longer one is completed from the command line).",
        ),
        Field(
            "cmdline",
            "regex",
            "Regular expression over the command line (its arguments joined by spaces).",
        ),
        Field("min", "count", "At least this many must run.", default=1),
        Field("max", "count", "At most this many may run."),
        Field("user", "str", "Only processes of this user count (a name, or an id as digits)."),
    ],
    example={"name": "gunicorn", "min": 2, "user": "app"},
    requires_one_of=("name", "cmdline"),
    rule=_counted,
)
def check_process(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    found = [
        process
        for process in probe.processes()
        if (params["name"] is None or process.name == params["name"])
        and (params["user"] is None or _account(params["user"], process.user, process.uid))
    ]
    if params["cmdline"] is not None and found:
        matches = probe.search_each(
            params["cmdline"], [process.cmdline for process in found], timeout=attempt.remaining()
        )
        found = [process for process, matched in zip(found, matches) if matched]
    what = []
    if params["name"] is not None:
        what.append("named %s" % params["name"])
    if params["cmdline"] is not None:
        what.append("matching %s" % params["cmdline"])
    if params["user"] is not None:
        what.append("of user %s" % params["user"])
    described = " ".join(what)
    pids = sorted(process.pid for process in found)
    count = "%d process%s %s" % (len(pids), "" if len(pids) == 1 else "es", described)
    if pids:
        count += " (%s)" % _pids(pids)
    if len(pids) < params["min"]:
        if not pids:
            return Outcome(FAIL, "no process %s, expected at least %d" % (described, params["min"]))
        return Outcome(FAIL, "%s, expected at least %d" % (count, params["min"]))
    if params["max"] is not None and len(pids) > params["max"]:
        return Outcome(FAIL, "%s, expected at most %d" % (count, params["max"]))
    return Outcome(PASS, count)


WILDCARDS = {"0.0.0.0": ("ipv4",), "::": ("ipv4", "ipv6")}  # dual-stack unless IPV6_V6ONLY


def _bound_to(listener_address: str, wanted: str) -> bool:
    family = "ipv6" if ":" in wanted else "ipv4"
    return listener_address == wanted or family in WILDCARDS.get(listener_address, ())


def _endpoint(address: str, port: int) -> str:
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)


@declare(
    "port",
    "Something listens on a local port: read from the kernel's socket tables (/proc/net),"
    " so no connection is made.",
    [
        Field("port", "port", "Port number.", required=True),
        Field(
            "protocol",
            "choice",
            "tcp (a listening socket) or udp (a bound, unconnected one).",
            default="tcp",
            choices=("tcp", "udp"),
        ),
        Field(
            "address",
            "address",
            "Local address it must listen on; a listener on 0.0.0.0 or :: listens on every"
            " address. Default: any.",
        ),
    ],
    example={"port": 5432, "address": "127.0.0.1"},
)
def check_port(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    port, protocol, wanted = params["port"], params["protocol"], params["address"]
    listeners = probe.listeners(protocol)
    on_port = sorted({listener.address for listener in listeners if listener.port == port})
    if not on_port:
        others = sorted({listener.port for listener in listeners})
        shown = ", ".join(map(str, others[:10])) + (", ..." if len(others) > 10 else "")
        return Outcome(
            FAIL,
            "nothing listens on %s port %d (%s)"
            % (protocol, port, "listening: " + shown if others else "no %s listeners" % protocol),
        )
    at = ", ".join(_endpoint(address, port) for address in on_port)
    if wanted is not None and not any(_bound_to(address, wanted) for address in on_port):
        return Outcome(
            FAIL, "%s port %d is listened on at %s only, not at %s" % (protocol, port, at, wanted)
        )
    return Outcome(PASS, "%s port %d is listened on at %s" % (protocol, port, at))


# --- files and certificates ----------------------------------------------------------------
MAX_READ = 8 * 1024 * 1024  # bytes of a file that contains and format read
FILE_TYPES = ("file", "directory", "symlink")
FILE_TESTS = (
    "type",
    "mode",
    "max_mode",
    "owner",
    "group",
    "contains",
    "min_size",
    "max_age",
    "format",
)


def _file_rule(params: Params) -> List[str]:
    given = [name for name in FILE_TESTS if params[name] is not None]
    if not params["exists"] and given:
        return ["exists: false takes no other field (%s)" % ", ".join(given)]
    reads = [name for name in ("contains", "format") if params[name] is not None]
    if reads and params["type"] in ("directory", "symlink"):
        return ["%s read a file's content; type is %s" % (" and ".join(reads), params["type"])]
    return []


def _mode(bits: int) -> str:
    return "%04o" % bits


def _file_problems(params: Params, info: FileInfo, probe: Probe) -> List[str]:
    problems = []
    if params["type"] is not None and info.type != params["type"]:
        problems.append("is a %s, expected a %s" % (info.type, params["type"]))
    if params["mode"] is not None and info.mode != params["mode"]:
        problems.append("mode is %s, expected %s" % (_mode(info.mode), _mode(params["mode"])))
    if params["max_mode"] is not None and info.mode & ~params["max_mode"]:
        problems.append(
            "mode %s allows %s beyond %s"
            % (_mode(info.mode), _mode(info.mode & ~params["max_mode"]), _mode(params["max_mode"]))
        )
    for field, name, number in (("owner", info.owner, info.uid), ("group", info.group, info.gid)):
        if params[field] is not None and not _account(params[field], name, number):
            problems.append("%s is %s, expected %s" % (field, name, params[field]))
    if params["min_size"] is not None and info.size < params["min_size"]:
        problems.append(
            "is %s, expected at least %s"
            % (format_size(info.size), format_size(params["min_size"]))
        )
    if params["max_age"] is not None:
        age = probe.now() - info.mtime
        if age > params["max_age"]:
            problems.append(
                "was modified %s ago, expected at most %s" % (_for(age), _for(params["max_age"]))
            )
    return problems


def _content_problems(
    path: str, params: Params, info: FileInfo, probe: Probe, attempt: Attempt
) -> List[str]:
    if info.type != "file":
        return [
            "is a %s: %s reads a file" % (info.type, "contains" if params["contains"] else "format")
        ]
    data = probe.read_file(path, MAX_READ + 1)
    text = data[:MAX_READ].decode("utf-8", "replace")
    problems = []
    pattern = params["contains"]
    if pattern is not None and probe.search(pattern, text, timeout=attempt.remaining()) is None:
        within = " (in its first %s)" % format_size(MAX_READ) if len(data) > MAX_READ else ""
        problems.append("does not contain %s%s" % (params["contains"], within))
    if params["format"] is not None:
        if len(data) > MAX_READ:
            problems.append(
                "is over %s, too large to parse as %s" % (format_size(MAX_READ), params["format"])
            )
        else:
            reason = config_problem(params["format"], text)  # Unsupported: the caller's error
            if reason is not None:
                problems.append("does not parse as %s: %s" % (params["format"], reason))
    return problems


@declare(
    "file",
    "A file, directory or link is there (or is not), with its type, permissions, owner,"
    " size, age, content and syntax. Nothing is written.",
    [
        Field("path", "path", "What to look at.", required=True),
        Field(
            "exists",
            "bool",
            "Whether something must be there; false: nothing, not even a dangling link.",
            default=True,
        ),
        Field(
            "type",
            "choice",
            "What it must be: symlink looks at the link itself, the others follow links.",
            choices=FILE_TYPES,
        ),
        Field("mode", "mode", "The exact permission bits, such as '0640'."),
        Field("max_mode", "mode", "The most it may allow, such as '0644': no bit beyond these."),
        Field("owner", "str", "The owning user: a name, or an id as digits."),
        Field("group", "str", "The owning group: a name, or an id as digits."),
        Field("contains", "regex", "Regular expression its content must match (the first 8 MiB)."),
        Field("min_size", "size", "The least size it may have (1 catches an emptied file)."),
        Field("max_age", "number", "Seconds since it was last modified, at most."),
        Field(
            "format",
            "choice",
            "It must parse as this format, or the message gives the line and the reason; yaml"
            " needs PyYAML on the host, toml Python 3.11+.",
            choices=CONFIG_FORMATS,
        ),
    ],
    example={
        "path": "/srv/app/shared/config.json",
        "type": "file",
        "max_mode": "0640",
        "owner": "app",
        "format": "json",
    },
    rule=_file_rule,
)
def check_file(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    path = params["path"]
    follow = params["exists"] and params["type"] != "symlink"
    try:
        info = probe.file_info(path, follow_links=follow)
    except FileNotFoundError:
        if not params["exists"]:
            return Outcome(PASS, "%s does not exist" % path)
        return Outcome(FAIL, "%s does not exist" % path)
    except OSError as exc:
        return Outcome(ERROR, "cannot look at %s: %s" % (path, exc.strerror or exc))
    if not params["exists"]:
        return Outcome(FAIL, "%s exists (a %s), expected nothing there" % (path, info.type))
    problems = _file_problems(params, info, probe)
    if params["contains"] is not None or params["format"] is not None:
        try:
            problems += _content_problems(path, params, info, probe, attempt)
        except (socket.timeout, TimeoutError):
            raise  # a runaway contains pattern: the runner's to report as a timeout
        except ConfigUnsupported as exc:
            return Outcome(
                ERROR, "cannot check that %s parses as %s: %s" % (path, params["format"], exc)
            )
        except OSError as exc:
            return Outcome(ERROR, "cannot read %s: %s" % (path, exc.strerror or exc))
    if problems:
        return Outcome(FAIL, "%s %s" % (path, "; ".join(problems)))
    parsed = ", parses as %s" % params["format"] if params["format"] else ""
    contains = ", contains %s" % params["contains"] if params["contains"] else ""
    return Outcome(
        PASS,
        "%s is a %s, %s %s:%s, %s, modified %s ago%s%s"
        % (
            path,
            info.type,
            _mode(info.mode),
            info.owner,
            info.group,
            format_size(info.size),
            _for(max(0.0, probe.now() - info.mtime)),
            contains,
            parsed,
        ),
    )


def _tls_rule(params: Params) -> List[str]:
    if params["file"] is not None:
        extra = [name for name in ("host", "port", "ca_file") if params[name] is not None]
        if extra:
            return [
                "reads file, or connects to host and port, not both (%s given)" % ", ".join(extra)
            ]
        return []
    if params["host"] is None or params["port"] is None:
        return ["needs host and port, or file"]
    return []


def _date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _certificate_text(certificate: Certificate, days_left: float) -> str:
    left = "%.0f days left" % days_left if days_left >= 0 else "expired %.0f days ago" % -days_left
    return "%s, issued by %s, %s (until %s)" % (
        certificate.subject or "no subject",
        certificate.issuer or "no issuer",
        left,
        _date(certificate.not_after),
    )


@declare(
    "tls",
    "A TLS certificate, a server's or a PEM file's, is valid for long enough; a server's is"
    " also trusted and issued for its name. The message gives its subject, issuer and the"
    " days it has left.",
    [
        Field("host", "str", "Server to connect to, with port."),
        Field("port", "port", "The server's port."),
        Field("file", "path", "A PEM certificate file to read instead of a server."),
        Field("min_days", "days", "Days it must still be valid.", default=14),
        Field(
            "server_name",
            "str",
            "Name sent as SNI and verified (default: host); with file, a name it must cover.",
        ),
        Field("ca_file", "path", "PEM bundle of the CAs to trust instead of the system's."),
        Field("verify", "bool", "Verify the server's chain and name.", default=True),
    ],
    example={"host": "example.internal", "port": 443, "min_days": 14},
    requires_one_of=("host", "file"),
    rule=_tls_rule,
)
def check_tls(params: Params, probe: Probe, attempt: Attempt) -> Outcome:
    name = params["server_name"]
    if params["file"] is not None:
        where = params["file"]
        try:
            certificate = probe.certificate_file(where)
        except FileNotFoundError:
            return Outcome(FAIL, "%s does not exist" % where)
        except OSError as exc:
            return Outcome(ERROR, "cannot read %s: %s" % (where, exc.strerror or exc))
        except ValueError as exc:
            return Outcome(FAIL, "%s: %s" % (where, exc))
        verify_error = None
        if name is not None and not covers(certificate, name):
            names = ", ".join(certificate.names) or "no subjectAltName"
            verify_error = "it is not issued for %s (it names %s)" % (name, names)
    else:
        host, port = params["host"], params["port"]
        where = "%s:%d" % (host, port)
        try:
            peer = probe.tls_peer(
                host,
                port,
                name or host,
                params["ca_file"],
                params["verify"],
                timeout=attempt.remaining(),
            )
        except (socket.timeout, TimeoutError):
            raise
        except ConnectionRefusedError:
            return Outcome(FAIL, "connection to %s refused" % where)
        except socket.gaierror as exc:
            return Outcome(FAIL, "%s does not resolve: %s" % (host, exc.strerror or exc))
        except FileNotFoundError as exc:
            return Outcome(ERROR, "cannot read ca_file %s: %s" % (params["ca_file"], exc.strerror))
        except OSError as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or exc
            return Outcome(FAIL, "TLS with %s failed: %s" % (where, reason))
        except ValueError as exc:
            return Outcome(
                ERROR, "%s presented a certificate that cannot be read: %s" % (where, exc)
            )
        certificate, verify_error = peer
        if verify_error is not None:
            verify_error = "it is not trusted: %s" % verify_error
    now = probe.now()
    days_left = (certificate.not_after - now) / 86400
    shown = _certificate_text(certificate, days_left)
    if verify_error is not None:
        return Outcome(FAIL, "the certificate of %s: %s (%s)" % (where, verify_error, shown))
    if certificate.not_before > now:
        return Outcome(
            FAIL,
            "the certificate of %s is not valid before %s (%s)"
            % (where, _date(certificate.not_before), shown),
        )
    if days_left < params["min_days"]:
        return Outcome(
            FAIL,
            "the certificate of %s has %s, expected at least %s days (%s)"
            % (
                where,
                "%.1f days left" % days_left if days_left >= 0 else "expired",
                ("%.1f" % params["min_days"]).rstrip("0").rstrip("."),
                shown,
            ),
        )
    verified = (
        ", verified for %s" % (name or params["host"])
        if params["file"] is None and params["verify"]
        else ""
    )
    return Outcome(PASS, "the certificate of %s: %s%s" % (where, shown, verified))
