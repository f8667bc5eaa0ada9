"""``slamkit bench encoders | serve``: benchmarks against a baseline timed in the same run."""

from __future__ import annotations

import argparse
import json
import sys

from slamkit.cli.common import Subparsers


def cmd_bench(args: argparse.Namespace) -> int:
    """Dispatch on ``what``."""
    return _BENCHES[args.what](args)


def _bench_serve(args: argparse.Namespace) -> int:
    """`bench serve RUN --manifest M`: dynamic batching vs one request at a time, at each client count."""
    from slamkit.serve.bench import bench_serve, format_table, write

    if not args.run or not args.manifest:
        raise ValueError("bench serve needs a run (--run RUN_DIR or reference) and --manifest CLIPS.jsonl")
    result = bench_serve(args.run, args.manifest, args.clients, args.requests, args.max_batch, args.max_wait_ms, args.overrides,
                         progress=lambda label: print(label, file=sys.stderr))
    write(result, args.out)
    print(format_table(result))
    return 0 if not result["mismatches"] else 1


def _bench_encoders(args: argparse.Namespace) -> int:
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


_BENCHES = {"encoders": _bench_encoders, "serve": _bench_serve}


def register(subparsers: Subparsers) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser("bench", help="benchmarks against a baseline in the same run (encoders: forward time on one clip; "
                              "serve: dynamic batching vs one request at a time)")
    p.add_argument("what", choices=sorted(_BENCHES), help="encoders: each encoder vs Whisper padded to 30 s; serve: the server's "
                   "throughput and latency at each client count, batched vs one at a time")
    p.add_argument("--encoders", nargs="*", help="registered encoder names (default: all)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; the median is reported (default 3)")
    p.add_argument("--preset", help="size preset for every encoder (default: each one's official size; `test` for a smoke run)")
    p.add_argument("--out", help="also write the rows and the machine as JSON here")
    p.add_argument("--run", help="serve: the run directory to serve, or `reference`")
    p.add_argument("--manifest", help="serve: JSONL manifest of the clips the clients send (round robin)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="serve: concurrent client counts (default 1 8 32)")
    p.add_argument("--requests", type=int, help="serve: requests per level (default max(16, 2 x clients))")
    p.add_argument("--max-batch", type=int, default=8, help="serve: batch limit of the batched server (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="serve: batching wait of the batched server (default 10)")
    p.add_argument("overrides", nargs="*", help="serve: key=value overrides of the run's config, e.g. decode.beam_size=1")
    p.set_defaults(func=cmd_bench)
