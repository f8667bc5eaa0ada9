"""``slamkit decode RUN_DIR --manifest M --out H [key=value …]``: transcribe a manifest."""

from __future__ import annotations

import argparse
import json
import time

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode the manifest with the run's checkpoint; print where the hypotheses went."""
    from slamkit.infer.decode import decode

    start = time.perf_counter()
    n = decode(args.run_dir, args.manifest, args.out, args.overrides)
    print(json.dumps({"out": args.out, "utterances": n, "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``decode``."""
    p = subparsers.add_parser("decode", help="transcribe a manifest with a trained run", epilog=EPILOG_OVERRIDES)
    p.add_argument("run_dir", help="a training run directory (holds config.yaml and checkpoints/)")
    p.add_argument("--manifest", required=True, help="JSONL manifest to decode")
    p.add_argument("--out", required=True, help="output JSONL of {key, hyp, ref} lines")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. decode.beam_size=4 decode.batch_size=16")
    p.set_defaults(func=cmd_decode)
