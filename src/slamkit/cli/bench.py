"""``slamkit bench encoders``: benchmarks against a baseline timed in the same run."""

from __future__ import annotations

import argparse
import json
import sys

from slamkit.cli.common import Subparsers


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench encoders`: forward time of each encoder on one clip, vs Whisper padded to 30 s; prints a table and JSON."""
    from pathlib import Path

    from slamkit.app.bench import bench_encoders, format_table, machine

    try:
        rows = bench_encoders(args.encoders or None, seconds=args.seconds, repeats=args.repeats, preset=args.preset,
                              progress=lambda label: print(f"timing {label} …", file=sys.stderr))
    except ValueError as err:
        print(f"slamkit bench: error: {err}", file=sys.stderr)
        return 2
    result = {"benchmark": "encoders", "seconds": args.seconds, "repeats": args.repeats, "machine": machine(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(rows, args.seconds))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser("bench", help="benchmarks against a baseline in the same run (encoders: forward time on one clip)")
    p.add_argument("what", choices=["encoders"], help="encoders: each encoder vs Whisper padded to 30 s")
    p.add_argument("--encoders", nargs="*", help="registered encoder names (default: all)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; the median is reported (default 3)")
    p.add_argument("--preset", help="size preset for every encoder (default: each one's official size; `test` for a smoke run)")
    p.add_argument("--out", help="also write the rows and the machine as JSON here")
    p.set_defaults(func=cmd_bench)
