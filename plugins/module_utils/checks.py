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

from .schema import CheckType, Field
from .units import format_number, format_percent, format_size
from .urls import redact_url

if TYPE_CHECKING:
    from .probes import HttpResponse, Probe

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
    if params["body"] is not None:
        text = response.body.decode("utf-8", "replace")
        if probe.search(params["body"], text, timeout=attempt.remaining()) is None:
            return Outcome(
                FAIL,
                "%s returned %d but the body (%d bytes) does not match %s"
                % (shown, response.status, len(response.body), params["body"]),
            )
        return Outcome(
            PASS,
            "%s returned %d and the body matches %s" % (shown, response.status, params["body"]),
        )
    return Outcome(PASS, "%s returned %d" % (shown, response.status))


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
