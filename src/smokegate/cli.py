"""The ``smokegate`` command: run a spec on this machine and report.

Exit codes: 0 every critical check passed, 1 a critical check did not pass,
2 usage or spec error (nothing ran).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from smokegate import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("human", "json", "junit")

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

exit codes: 0 ok, 1 a critical check did not pass, 2 usage or spec error (nothing ran)
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
        "--format", choices=FORMATS, default="human", help="report format (default: human)"
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
    return parser


def _use_color(stream) -> bool:  # type: ignore[no-untyped-def]
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _check(args: argparse.Namespace) -> int:
    from smokegate.engine import report, runner, spec
    from smokegate.specfile import SpecFileError, load_checks

    try:
        checks = load_checks(args.file)
    except SpecFileError as exc:
        print("smokegate: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    except spec.SpecError as exc:
        print("smokegate: %s is not a valid spec (nothing ran):" % args.file, file=sys.stderr)
        for error in exc.errors:
            print("  " + error, file=sys.stderr)
        return EXIT_USAGE
    names = [check.name for check in checks]
    unknown = [name for name in args.only or () if name not in names]
    if unknown:
        import difflib

        for name in unknown:
            close = difflib.get_close_matches(name, names, n=1)
            hint = "; did you mean %r?" % close[0] if close else ""
            print(
                "smokegate: --only: no check named %r in %s%s" % (name, args.file, hint),
                file=sys.stderr,
            )
        return EXIT_USAGE
    if args.deadline is not None and args.deadline <= 0:
        print("smokegate: --deadline must be greater than 0", file=sys.stderr)
        return EXIT_USAGE

    result = runner.run_checks(checks, only=args.only, deadline=args.deadline)
    print(
        report.render(
            args.format, [result], color=args.format == "human" and _use_color(sys.stdout)
        )
    )
    return EXIT_OK if result["ok"] else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 for --help/--version
        return int(exc.code or 0)
    if args.command == "check":
        return _check(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE
