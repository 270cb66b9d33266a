"""The ``smokegate`` command: run a spec on this machine and report, or serve it over HTTP.

Exit codes: 0 every critical check passed, 1 a critical check did not pass,
2 usage or spec error (nothing ran). With ``--format nagios``, a plugin's: 0 OK,
1 WARNING (only warning-severity checks failed), 2 CRITICAL, 3 UNKNOWN (nothing ran).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from smokegate import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("human", "json", "junit", "tap", "nagios", "prometheus")

EXAMPLE_SPEC = """\
example spec (smoke.yml):
  checks:
    - name: free space
      disk: {path: /srv, min_free: 2GiB, min_free_percent: 10}
    - name: uploads mount
      mount: {path: /srv/uploads, options: [rw], writable: true}
    - name: database url
      env: {name: DATABASE_URL, file: /srv/app/shared/app.env, pattern: '^postgres://'}
    - name: ffmpeg
      binary: {name: ffmpeg, version: '>=6.0,<9', args: ['-version']}
    - name: db resolves
      dns: {name: db.internal}
    - name: db port
      tcp: {host: db.internal, port: 5432}
    - name: app health
      http: {url: 'http://127.0.0.1:8000/healthz', status: 200, body: ok}
      severity: warning   # critical (default) | warning: never fails the gate
      timeout: 3          # seconds per attempt, default 5
      retries: 2          # extra attempts, default 0

exit codes: 0 ok, 1 a critical check did not pass, 2 usage or spec error (nothing ran);
with --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nothing ran)
"""


ADD_TYPES = ("binary", "mount", "disk", "service", "port", "process", "file", "tls", "http")
ADD_EXAMPLES = """\
examples:
  smokegate add binary ffmpeg           version: '>=<the version found>'
  smokegate add mount /srv              fstype and options as mounted
  smokegate add disk /srv               min_free: half of today's free space
  smokegate add service nginx           active and enabled as they are
  smokegate add port 5432               (or 53/udp) something listens on it
  smokegate add process gunicorn        running (as its user, when there is one)
  smokegate add file /etc/app.json      exists, its type, and format if it parses
  smokegate add tls example.internal:443
  smokegate add http http://127.0.0.1:8000/healthz   status, max_latency 3x today's
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smokegate",
        description="Environment smoke checks that gate rolling deploys.",
        epilog=EXAMPLE_SPEC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="smokegate %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="run a spec on this machine",
        description="Run every check of a spec on this machine, in parallel, and report.",
        epilog=EXAMPLE_SPEC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "-f",
        "--file",
        default="smoke.yml",
        help="spec file, YAML or JSON; - reads stdin (default: smoke.yml)",
    )
    check.add_argument(
        "--format",
        choices=FORMATS,
        default="human",
        help="report format (default: human); nagios also sets a plugin's exit codes",
    )
    check.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="run only these checks; the rest are skipped",
    )
    check.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="bound the whole run (default: the slowest check's worst case)",
    )
    add = commands.add_parser(
        "add",
        help="add a check for what is true on this host now",
        description="Read TARGET on this host, write a check that passes for it now, run it"
        " once, and append it to the spec file (created if missing) without rewriting the"
        " rest of the file.",
        epilog=ADD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("type", choices=ADD_TYPES, metavar="TYPE", help=", ".join(ADD_TYPES))
    add.add_argument("target", metavar="TARGET", help="what to check (see the examples)")
    add.add_argument("-f", "--file", default="smoke.yml", help="spec file (default: smoke.yml)")
    add.add_argument("--name", help="the check's name (default: TYPE TARGET)")
    serve = commands.add_parser(
        "serve",
        help="serve the spec's health over HTTP (/, /healthz, /metrics)",
        description="Run the spec on request and answer GET /healthz (200 when every "
        "critical check passes, 503 otherwise), GET /metrics (Prometheus text format) and "
        "GET / (a status page for people, HTML). Results are cached; concurrent requests "
        "share one run.",
    )
    serve.add_argument("-f", "--file", default="smoke.yml", help="spec file (default: smoke.yml)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks one)")
    serve.add_argument(
        "--cache",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="reuse a run's results for this long (default: 5)",
    )
    serve.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <token>', the token being this file's content",
    )
    serve.add_argument(
        "--root",
        metavar="DIR",
        help="deploy root whose release history the status page shows",
    )
    return parser


def _refuse(args: argparse.Namespace, message: str, details: Sequence[str] = ()) -> int:
    """A usage or spec error: nothing ran. Nagios reads stdout and wants UNKNOWN (3)."""
    if getattr(args, "format", None) == "nagios":
        from smokegate.engine import report

        print(report.nagios_unknown(" ".join([message, *details])))
        return report.NAGIOS_UNKNOWN
    print("smokegate: %s" % message, file=sys.stderr)
    for line in details:
        print("  " + line, file=sys.stderr)
    return EXIT_USAGE


def _load(args: argparse.Namespace) -> Any:
    """The spec's checks, or the exit code of the refusal."""
    from smokegate.engine import spec
    from smokegate.specfile import SpecFileError, load_checks

    try:
        return load_checks(args.file)
    except SpecFileError as exc:
        return _refuse(args, str(exc))
    except spec.SpecError as exc:
        return _refuse(args, "%s is not a valid spec (nothing ran):" % args.file, exc.errors)


def _check(args: argparse.Namespace) -> int:
    from smokegate.engine import protocol, report, runner
    from smokegate.specfile import unknown_only

    checks = _load(args)
    if isinstance(checks, int):
        return checks
    hints = unknown_only(checks, args.only, args.file)
    if hints:
        return _refuse(args, hints[0], hints[1:])
    if args.deadline is not None and args.deadline <= 0:
        return _refuse(args, "--deadline must be greater than 0")

    result = runner.run_checks(checks, only=args.only, deadline=args.deadline)
    print(
        report.render(
            args.format, [result], color=args.format == "human" and report.use_color(sys.stdout)
        )
    )
    if args.format == "nagios":
        return report.nagios_status([result])
    return EXIT_OK if protocol.host_ok(result) else EXIT_FAILED


def _add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smokegate.add import AddError, add, added_text
    from smokegate.engine import spec
    from smokegate.specfile import SpecFileError

    try:
        check, notes = add(args.type, args.target, Path(args.file), args.name)
    except (AddError, SpecFileError) as exc:
        return _refuse(args, "nothing added to %s: %s" % (args.file, exc))
    except spec.SpecError as exc:
        return _refuse(args, "nothing added to %s:" % args.file, exc.errors)
    print("added to %s:\n%s" % (args.file, added_text(check)), end="")
    for note in notes:
        print("smokegate: note: %s" % note, file=sys.stderr)
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from smokegate.serve import ServeError, serve

    checks = _load(args)
    if isinstance(checks, int):
        return checks
    try:
        return serve(checks, args.host, args.port, args.cache, args.token_file, args.root)
    except ServeError as exc:
        return _refuse(args, str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 for --help/--version
        nagios = any(
            word == "--format=nagios" or (word == "--format" and following == "nagios")
            for word, following in zip(words, [*words[1:], ""])
        )
        if exc.code == EXIT_USAGE and nagios:
            from smokegate.engine import report

            print(report.nagios_unknown("smokegate: bad command line (see its usage above)"))
            return report.NAGIOS_UNKNOWN
        return int(exc.code or 0)
    if args.command == "check":
        return _check(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "add":
        return _add(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE
