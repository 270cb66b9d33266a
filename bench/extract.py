"""Time unpacking a 100 MB release four ways, alternating in rounds.

Usage: .venv/bin/python bench/extract.py [--rounds 5] [--write bench/RESULTS.md]

(a) GNU `tar -xzf`, the floor; (b) tarfile's `extractall(filter="data")`, how smokegate
unpacked before it decided every member itself; (c) smokegate's extraction (every member
decided from the headers, then written), without syncing; (d) `DeployRoot.create`, what a
deploy does: (c), then the release is synced to disk, renamed into place and recorded.
Each is a process of its own; the page cache is flushed (sync) before every run so that
one run's writeback does not land on the next.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from results import machine, write_section

MODULE_UTILS = "ansible_collections.smokegate.core.plugins.module_utils"


def build(path: Path, total: int = 100 * 1024 * 1024) -> tuple[int, int]:
    """A release-shaped archive: many small text files, a few large binaries, links."""
    rng = random.Random(7)
    words = [
        ("".join(rng.choice("abcdefghijklmnop") for _index in range(rng.randint(2, 9))))
        for _index in range(4000)
    ]
    written = members = 0
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:

        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            nonlocal written, members
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tar.addfile(info, io.BytesIO(data))
            written += len(data)
            members += 1

        index = 0
        while written < total * 0.7:
            text = " ".join(rng.choice(words) for _index in range(rng.randint(500, 8000)))
            add("app/lib/pkg%03d/module%04d.py" % (index % 200, index), text.encode())
            index += 1
        for blob in range(6):
            add("app/assets/blob%d.bin" % blob, rng.randbytes(5 * 1024 * 1024))
        link = tarfile.TarInfo("bin/app")
        link.type, link.linkname = tarfile.SYMTYPE, "../app/lib/pkg000/module0000.py"
        tar.addfile(link)
    return written, members + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="write the figures as markdown to this file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="smokegate-bench-extract-", dir="/var/tmp"))
    archive = workdir / "release.tar.gz"
    unpacked, members = build(archive)
    compressed = archive.stat().st_size
    target = workdir / "out"
    python = sys.executable
    commands = {
        "(a) tar -xzf": ["tar", "-xzf", str(archive), "-C", str(target)],
        '(b) tarfile extractall(filter="data")': [
            python,
            "-c",
            "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')",
            str(archive),
            str(target),
        ],
        "(c) smokegate extract, no sync": [
            python,
            "-c",
            "import sys; from %s.extract import extract; "
            "extract(sys.argv[1], sys.argv[2] + '/r', 1 << 40)" % MODULE_UTILS,
            str(archive),
            str(target),
        ],
        "(d) DeployRoot.create (extract, sync, rename, ledger)": [
            python,
            "-c",
            "import sys; from %s.releases import DeployRoot; "
            "DeployRoot(sys.argv[2]).create('r1', archive=sys.argv[1])" % MODULE_UTILS,
            str(archive),
            str(target),
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for round_number in range(args.rounds + 1):  # the first round warms the page cache
        for name, argv in commands.items():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            os.sync()
            started = time.perf_counter()
            subprocess.run(argv, check=True)
            if round_number:
                timings[name].append(1000 * (time.perf_counter() - started))
    shutil.rmtree(workdir)

    floor = statistics.median(timings["(a) tar -xzf"])
    lines = [
        "| how | median ms | min ms | max ms | vs (a) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in timings.items():
        median = statistics.median(values)
        lines.append(
            "| %s | %.0f | %.0f | %.0f | %.2fx |"
            % (name, median, min(values), max(values), median / floor)
        )
    table = "\n".join(lines)
    header = "%s; %d members, %.0f MB unpacked from %.0f MB" % (
        machine(),
        members,
        unpacked / 1e6,
        compressed / 1e6,
    )
    print(header)
    print(table)
    if args.write:
        write_section(
            args.write,
            "extract",
            "## Unpacking a 100 MB release\n\n"
            "%s, %d rounds alternating, `sync` before every run. Regenerated by "
            "`.venv/bin/python bench/extract.py --write bench/RESULTS.md`.\n\n%s"
            % (header, args.rounds, table),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
