# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ship the engine to a host in one exec: a short bootstrap on the command line, the
engine's sources and the request on stdin, one JSON answer back on stdout.

Both controller front ends use it: Fabric (``smokegate.remote``, over paramiko) and the
``smokegate.core.smoke`` action plugin (over the play's connection, when it pipelines).
The engine is imported from memory on the host: nothing is written there, and the spec,
which may hold HTTP header secrets, never appears in a command line ``ps`` would show.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from typing import Any, Dict, Optional

from ansible_collections.smokegate.core.plugins.module_utils import spec as _engine

ENGINE_DIR = os.path.dirname(os.path.abspath(_engine.__file__))
MAGIC = b"SMOKEGATE/1\n"
ANSWER = "SMOKEGATE-ANSWER "
# The controller-only part of the engine stays home: the module's argument spec, the report
# rendering, and the stages module's options.
NOT_SHIPPED = ("argspec.py", "report.py", "stages.py")

# Python 3.8+ on the host. Reads [a sudo password line,] MAGIC, the engine's length, the
# compressed engine, then the request; imports the engine from memory; prints the answer.
BOOTSTRAP = r"""
import json, os, sys, zlib
if sys.version_info < (3, 8):
    sys.exit("smokegate: needs Python 3.8+ on this host, found " + sys.version.split()[0])
from importlib.machinery import ModuleSpec
data = sys.stdin.buffer.read()
start = data.find(%(magic)r)
if start < 0:
    sys.exit("smokegate: no request arrived on stdin")
size, _, data = data[start + %(skip)d:].partition(b"\n")
sources = json.loads(zlib.decompress(data[:int(size)]))
request = json.loads(data[int(size):])
class Engine:
    def find_spec(self, name, path=None, target=None):
        if name == "smokegate_engine":
            return ModuleSpec(name, self, origin="smokegate_engine", is_package=True)
        package, _, module = name.rpartition(".")
        if package == "smokegate_engine" and module in sources:
            return ModuleSpec(name, self, origin="smokegate_engine/%%s.py" %% module)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module_name = module.__name__.rpartition(".")[2]
        if module_name in sources:
            exec(compile(sources[module_name], module.__spec__.origin, "exec"), module.__dict__)
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


@functools.lru_cache(maxsize=1)
def engine_bundle() -> bytes:
    """The engine's sources, compressed: about 45 KB that every request carries."""
    sources = {}
    for filename in sorted(os.listdir(ENGINE_DIR)):
        if filename.endswith(".py") and filename not in NOT_SHIPPED:
            with open(os.path.join(ENGINE_DIR, filename), encoding="utf-8") as handle:
                sources[filename[:-3]] = handle.read()
    # Level 6, not 9: 9 costs 2.5 times the CPU for 1% less.
    return zlib.compress(json.dumps(sources).encode(), 6)


# Compressed once, at import, before any fan-out: Fabric's threads (one per host) would
# each compress it on their first request, and Ansible's strategy imports the action plugins
# in its main process, so the workers it forks (one per host and task) inherit it.
engine_bundle()


def payload(request: Dict[str, Any], sudo_password: Optional[str] = None) -> bytes:
    bundle = engine_bundle()
    head = (sudo_password + "\n").encode() if sudo_password is not None else b""
    body = json.dumps(request, default=str).encode()
    return head + MAGIC + b"%d\n" % len(bundle) + bundle + body


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
