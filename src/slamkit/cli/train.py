"""``slamkit train CONFIG [key=value …]``: train a model from a YAML config."""

from __future__ import annotations

import argparse
import json
import time

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the resolved config; print a JSON summary of the run."""
    from slamkit.config import load_config
    from slamkit.train.loop import train

    cfg = load_config(args.config, args.overrides)
    start = time.perf_counter()
    result = train(cfg)
    print(json.dumps({"run_dir": str(result.run_dir), "step": result.step, "loss": result.last_loss,
                      "valid_loss": result.valid_loss, "skipped": result.skipped,
                      "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``train``."""
    p = subparsers.add_parser("train", help="train a model from a YAML config", epilog=EPILOG_OVERRIDES)
    p.add_argument("config", help="YAML config, e.g. recipes/tiny_asr.yaml")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.set_defaults(func=cmd_train)
