# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each check type compares, and the message it writes.

A check gets its validated fields, a probe (probes.py) and an attempt context; it
returns an Outcome whose message says what was observed and what was expected. Checks
never read the system themselves and never put a secret in a message.

>>> from .probes import SystemProbe
>>> check_disk({"path": "/", "min_free": 1, "min_free_percent": None,
...             "min_free_inodes_percent": None}, SystemProbe(), Attempt.until(5)).status
'pass'
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from .units import format_percent, format_size
from .urls import redact_url

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


def _problems(problems: List[str], ok_message: str) -> Outcome:
    return Outcome(FAIL, "; ".join(problems)) if problems else Outcome(PASS, ok_message)


def check_mount(params: Params, probe: Any, attempt: Attempt) -> Outcome:
    path = params["path"]
    if not os.path.exists(path):
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


def check_disk(params: Params, probe: Any, attempt: Attempt) -> Outcome:
    path = params["path"]
    if not os.path.exists(path):
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


def check_env(params: Params, probe: Any, attempt: Attempt) -> Outcome:
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


def _version_in(output: str, regex: Optional[str], probe: Any, attempt: Attempt) -> Optional[str]:
    """The version a program printed: the regex's first group, else its match."""
    if regex is None:
        # The engine's own pattern cannot run away on any output: searched in place.
        match = DEFAULT_VERSION_RE.search(output)
        return match.group(0) if match else None
    found = probe.search(regex, output, timeout=attempt.remaining())
    if found is None:
        return None
    return found.groups[0] if found.groups else found.text


def check_binary(params: Params, probe: Any, attempt: Attempt) -> Outcome:
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


def check_dns(params: Params, probe: Any, attempt: Attempt) -> Outcome:
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


def check_tcp(params: Params, probe: Any, attempt: Attempt) -> Outcome:
    host, port = params["host"], params["port"]
    started = time.monotonic()
    try:
        probe.tcp_connect(host, port, timeout=attempt.remaining())
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
    return Outcome(
        PASS,
        "%s:%d accepts connections (%.1f ms)" % (host, port, 1000 * (time.monotonic() - started)),
    )


def check_http(params: Params, probe: Any, attempt: Attempt) -> Outcome:
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


CHECKS: Dict[str, Callable[[Params, Any, Attempt], Outcome]] = {
    "mount": check_mount,
    "disk": check_disk,
    "env": check_env,
    "binary": check_binary,
    "dns": check_dns,
    "tcp": check_tcp,
    "http": check_http,
}
