# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ship the engine to a host in one exec: a short bootstrap on the command line, the
engine's sources and the request on stdin, one JSON answer back on stdout.

Beside the sources travels the engine compiled by the controller's Python. A host whose
Python has the same bytecode format (the same implementation and magic number) runs that,
and skips compiling about 250 KB of source on every request: most of the CPU an engine
request costs a host. Any other host compiles the sources, as it always could.

Both controller front ends use it: Fabric (``smokegate.remote``, over paramiko) and the
``smokegate.core.smoke`` action plugin (over the play's connection, when it pipelines).
The engine is imported from memory on the host: nothing is written there, and the spec,
which may hold HTTP header secrets, never appears in a command line ``ps`` would show.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import marshal
import os
import sys
import zlib
from importlib.machinery import SourceFileLoader
from typing import Any, Dict, Optional

from ansible_collections.smokegate.core.plugins.module_utils import spec as _engine

ENGINE_DIR = os.path.dirname(os.path.abspath(_engine.__file__))
MAGIC = b"SMOKEGATE/1\n"
ANSWER = "SMOKEGATE-ANSWER "
# The controller-only part of the engine stays home: the module's argument spec, the report
# rendering, and the stages module's options.
NOT_SHIPPED = ("argspec.py", "report.py", "stages.py")

# Python 3.8+ on the host. Reads [a sudo password line,] MAGIC, a header (the lengths of
# the compressed sources and of the compressed code, and the code's bytecode tag), the
# sources, the code, then the request; imports the engine from memory; prints the answer.
BOOTSTRAP = r"""
import json, os, sys, zlib
if sys.version_info < (3, 8):
    sys.exit("smokegate: needs Python 3.8+ on this host, found " + sys.version.split()[0])
from importlib.machinery import ModuleSpec
from importlib.util import MAGIC_NUMBER
data = sys.stdin.buffer.read()
start = data.find(%(magic)r)
if start < 0:
    sys.exit("smokegate: no request arrived on stdin")
header, _, data = data[start + %(skip)d:].partition(b"\n")
size, code_size, tag = header.decode().split(" ", 2)
size, end = int(size), int(size) + int(code_size)
if tag == "%%s %%s" %% (sys.implementation.cache_tag, MAGIC_NUMBER.hex()):
    import marshal
    modules = marshal.loads(zlib.decompress(data[size:end]))
else:
    modules = json.loads(zlib.decompress(data[:size]))
request = json.loads(data[end:])
class Engine:
    def find_spec(self, name, path=None, target=None):
        if name == "smokegate_engine":
            return ModuleSpec(name, self, origin="smokegate_engine", is_package=True)
        package, _, module = name.rpartition(".")
        if package == "smokegate_engine" and module in modules:
            return ModuleSpec(name, self, origin="smokegate_engine/%%s.py" %% module)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        code = modules.get(module.__name__.rpartition(".")[2])
        if isinstance(code, str):
            code = compile(code, module.__spec__.origin, "exec")
        if code is not None:
            exec(code, module.__dict__)
sys.meta_path.insert(0, Engine())
try:
    from smokegate_engine.agent import handle
    answer = handle(request)
except Exception as exc:
    answer = {"ok": False, "engine_error": "%%s: %%s" %% (type(exc).__name__, exc)}
sys.stdout.write("\n%(answer)s" + json.dumps(answer) + "\n")
sys.stdout.flush()
# Abandoned check threads (a hung DNS lookup) must not hold the exit.
os._exit(0)
""" % {"magic": MAGIC, "skip": len(MAGIC), "answer": ANSWER}


# This Python's bytecode format, as the bootstrap spells it on the host.
BYTECODE_TAG = "%s %s" % (sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex())


@functools.lru_cache(maxsize=1)
def engine_sources() -> Dict[str, str]:
    sources = {}
    for filename in sorted(os.listdir(ENGINE_DIR)):
        if filename.endswith(".py") and filename not in NOT_SHIPPED:
            with open(os.path.join(ENGINE_DIR, filename), encoding="utf-8") as handle:
                sources[filename[:-3]] = handle.read()
    return sources


@functools.lru_cache(maxsize=1)
def engine_bundle() -> bytes:
    """The engine's sources, compressed: about 75 KB that every request carries."""
    # Level 6, not 9: 9 costs 2.5 times the CPU for 1% less.
    return zlib.compress(json.dumps(engine_sources()).encode(), 6)


@functools.lru_cache(maxsize=1)
def engine_code() -> bytes:
    """The engine compiled by this Python, compressed (about 170 KB), for hosts whose Python
    reads this bytecode (BYTECODE_TAG)."""
    code = {}
    for name in engine_sources():
        # The loader reads the installation's __pycache__ when it is current (compiling all
        # would cost each controller run about 50 ms of CPU) and compiles otherwise.
        loader = SourceFileLoader(
            "smokegate_engine." + name, os.path.join(ENGINE_DIR, name + ".py")
        )
        code[name] = loader.get_code(loader.name)
    return zlib.compress(marshal.dumps(code), 6)


def prepare() -> None:
    """Compress and compile once, before any fan-out: Fabric's threads (one per host) would
    each do it on their first request, and Ansible's strategy imports the action plugins in
    its main process, so the workers it forks (one per host and task) inherit the result."""
    engine_bundle()
    engine_code()


def frame(request: bytes, sources: bytes, code: bytes, tag: str) -> bytes:
    """What the bootstrap reads after the optional sudo password line."""
    header = b"%d %d %s\n" % (len(sources), len(code), tag.encode())
    return MAGIC + header + sources + code + request


def payload(request: Dict[str, Any], sudo_password: Optional[str] = None) -> bytes:
    head = (sudo_password + "\n").encode() if sudo_password is not None else b""
    body = json.dumps(request, default=str).encode()
    return head + frame(body, engine_bundle(), engine_code(), BYTECODE_TAG)


def read_answer(stdout: str) -> Optional[Dict[str, Any]]:
    """The engine's answer in a run's stdout, or None when none arrived whole.

    Only a line that starts with the marker is an answer, and the last one counts. The
    answer's JSON escapes every newline, so no text inside it (a restart command's output,
    a program's version line) can start a line, whatever it prints.
    """
    lines = [line for line in stdout.split("\n") if line.startswith(ANSWER)]
    if not lines:
        return None
    try:
        answer = json.loads(lines[-1][len(ANSWER) :])
    except ValueError:
        return None  # cut off mid-answer: the same as no answer
    return answer if isinstance(answer, dict) else None
