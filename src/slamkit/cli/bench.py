"""``slamkit bench encoders | serve | train | decode``: benchmarks against a baseline timed in the same run."""

from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

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


def _bench_train(args: argparse.Namespace) -> int:
    """`bench train`: the original's training path against slamkit's on the same clips."""
    from slamkit.app.bench_train import QUICK, bench_train, format_train

    steps, batch = (QUICK["steps"], QUICK["batch"]) if args.quick else (args.steps, args.batch)
    result = bench_train(args.encoder, args.llm, steps, batch, args.mix, args.device,
                         progress=lambda label: print(label, file=sys.stderr), profile=args.profile)
    _emit(result, format_train(result), args)
    return 0


def _bench_decode(args: argparse.Namespace) -> int:
    """`bench decode`: the original's decoding vs slamkit's vs faster-whisper on real speech."""
    from slamkit.app.bench_decode import QUICK_ASTERISK, bench_decode, format_decode

    result = bench_decode(args.encoder, QUICK_ASTERISK if args.quick else args.asterisk, args.device,
                          progress=lambda label: print(label, file=sys.stderr))
    _emit(result, format_decode(result), args)
    return 0


def _emit(result: dict, table: str, args: argparse.Namespace) -> None:
    """Print the JSON object (``--json``) or the table; write the JSON to ``--out`` when asked."""
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result) if args.json else table)


_BENCHES = {"encoders": _bench_encoders, "serve": _bench_serve, "train": _bench_train, "decode": _bench_decode}


def register(subparsers: Subparsers) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser("bench", help="benchmarks against a baseline in the same run (encoders: forward time on one clip; "
                              "serve: dynamic batching vs one request at a time)")
    p.add_argument("what", choices=sorted(_BENCHES), help="encoders: each encoder vs Whisper padded to 30 s; serve: the server's "
                   "throughput and latency at each client count, batched vs one at a time; train: the original SLAM-LLM training "
                   "path vs slamkit's on the same clips; decode: the original's decoding vs slamkit's vs faster-whisper on real speech")
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
    p.add_argument("--encoder", default="tiny.en", help="train/decode: Whisper encoder: tiny.en | base (real weights, assets) | test (random, tiny)")
    p.add_argument("--llm", default="smollm2-135m", help="train: smollm2-135m (real weights, asset) | tiny (random)")
    p.add_argument("--steps", type=int, default=20, help="train: optimizer steps per epoch (default 20)")
    p.add_argument("--batch", type=int, default=4, help="train: clips per batch (default 4)")
    p.add_argument("--mix", default="librispeech", choices=["librispeech", "short"], help="train: clip lengths: LibriSpeech-like "
                   "(log-normal around 12 s, 1-30 s) or short utterances (1-6 s)")
    p.add_argument("--asterisk", type=int, default=60, help="decode: Asterisk prompts beside the 5 LibriVox clips (default 60)")
    p.add_argument("--device", default="cpu", help="train/decode: cpu | cuda (default cpu)")
    p.add_argument("--quick", action="store_true", help="train/decode: a small run (minutes on 2 CPU cores)")
    p.add_argument("--profile", action="store_true", help="train: also print torch.profiler's top operators of slamkit's warm step")
    p.add_argument("--json", action="store_true", help="train/decode: print one JSON object instead of the table")
    p.add_argument("overrides", nargs="*", help="serve: key=value overrides of the run's config, e.g. decode.beam_size=1")
    p.set_defaults(func=cmd_bench)
