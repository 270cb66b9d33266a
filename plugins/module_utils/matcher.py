# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Search a spec's regular expression in a value, within a deadline.

Python's re holds the GIL for a whole match and cannot be interrupted, so a pattern that
backtracks catastrophically (``^(a+)+$`` on a long value) can neither be abandoned by a
thread nor waited out: it stalls every thread of the process. Such a search runs in a
forked child that writes where it matched to a pipe; the parent waits in poll(), which
releases the GIL, and SIGKILLs the child at the deadline.

Only a search that provably cannot backtrack runs in this process: a pattern with no
repetition, alternation or back reference (none of ``* + ? { |``, no ``\\1``) tries each
position of the text once with every pattern character at most once, and only when the
text's length times the pattern's stays under IN_PROCESS_STEPS.

>>> search(r"version (\\S+)", "tool version 1.2.3", timeout=5)
Found(text='version 1.2.3', groups=('1.2.3',))
>>> search("^postgres://", "postgres://db/app", timeout=5).text
'postgres://'
>>> search("^(a+)+$", "a" * 40 + "!", timeout=0.2)
Traceback (most recent call last):
...
TimeoutError: the pattern '^(a+)+$' did not finish matching in 0.2 s
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

# select and signal are imported by the forking path only: most specs never take it.

# Measured: sre takes at most about 2 ns per text-times-pattern character on a
# backtrack-free pattern, so this keeps such a search in this process under a few ms.
IN_PROCESS_STEPS = 1_000_000
_MAY_BACKTRACK = re.compile(r"[*+?{|]|\\[1-9]")
# How much longer the child may live than the parent waits: its own bound, should the
# parent be gone before it can kill it.
CHILD_SLACK = 1.0


class Found(NamedTuple):
    """Where a pattern matched: the matched text, and each group's (None if unused)."""

    text: str
    groups: Tuple[Optional[str], ...]


Spans = List[Tuple[int, int]]


def _found(text: str, spans: Spans) -> Found:
    (start, end), groups = spans[0], spans[1:]
    return Found(text[start:end], tuple(text[a:b] if a >= 0 else None for a, b in groups))


def _spans(match: re.Match) -> Spans:
    return [match.span(group) for group in range(len(match.groups()) + 1)]


def cannot_backtrack(pattern: str) -> bool:
    """True when the pattern has no repetition, alternation or back reference.

    >>> cannot_backtrack("^production$"), cannot_backtrack("^(a+)+$"), cannot_backtrack("a|b")
    (True, False, False)
    """
    return _MAY_BACKTRACK.search(pattern) is None


def search(pattern: str, text: str, timeout: float) -> Optional[Found]:
    """``re.search(pattern, text)`` bounded by ``timeout`` seconds; TimeoutError past it."""
    compiled = re.compile(pattern)
    if cannot_backtrack(pattern) and len(text) * len(pattern) <= IN_PROCESS_STEPS:
        match = compiled.search(text)
        return _found(text, _spans(match)) if match else None

    def spans() -> Optional[Spans]:
        match = compiled.search(text)
        return _spans(match) if match else None

    found = _in_child(spans, compiled.pattern, timeout)
    return _found(text, [tuple(span) for span in found]) if found is not None else None


def search_each(pattern: str, texts: List[str], timeout: float) -> List[bool]:
    """Whether ``pattern`` is found in each of ``texts``: every search within one
    ``timeout``, in one child when any of them could run away.

    >>> search_each("gunicorn.*app:main", ["gunicorn -w 4 app:main", "nginx: worker"], 5)
    [True, False]
    """
    compiled = re.compile(pattern)
    if cannot_backtrack(pattern) and sum(map(len, texts)) * len(pattern) <= IN_PROCESS_STEPS:
        return [compiled.search(text) is not None for text in texts]
    return _in_child(
        lambda: [compiled.search(text) is not None for text in texts], pattern, timeout
    )


def _in_child(compute: Callable[[], Any], pattern: str, timeout: float) -> Any:
    """What ``compute`` returns (JSON-able), computed in a forked child killed at the
    deadline."""
    import select
    import signal  # imported here, before the fork: the child imports nothing

    deadline = time.monotonic() + timeout
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: the check reports it as an error
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:
        _child(compute, timeout, write_end)
    os.close(write_end)
    answer = b""
    try:
        poller = select.poll()
        poller.register(read_end, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(1000 * remaining):
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(
                    "the pattern %r did not finish matching in %s s"
                    % (pattern, ("%.2f" % timeout).rstrip("0").rstrip("."))
                )
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not answer:
        raise RuntimeError("the search for %r ended without an answer" % pattern)
    return json.loads(answer)


def _close_inherited(keep: int) -> None:
    # Another check's pipe or socket must not stay open in here: its reader would wait
    # for this child to see the end of it.
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) != keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                os.close(int(name))


def _child(compute: Callable[[], Any], timeout: float, write_end: int) -> None:
    # Only the forking thread exists here. The child takes no lock the parent's other
    # threads may have held at the fork (no logging, no buffered I/O, no imports) and runs
    # none of the parent's cleanup: it matches, writes the answer and leaves.
    import signal  # the parent loaded it before the fork: nothing is imported here

    status = 1
    try:
        _close_inherited(write_end)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, timeout + CHILD_SLACK)
        data = memoryview(json.dumps(compute()).encode())
        while data:
            data = data[os.write(write_end, data) :]
        status = 0
    finally:
        os._exit(status)
