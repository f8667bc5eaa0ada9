"""``slamkit train CONFIG [key=value …] [--nproc N]``: train a model from a YAML config.

Under ``torchrun`` every process runs this same command; ``--nproc N`` is the shortcut that starts
``torchrun --standalone --nproc-per-node N -m slamkit train …`` on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def torchrun_command(nproc: int, config: str, overrides: list[str]) -> list[str]:
    """The single-machine launcher command ``--nproc`` runs (torchrun through its module)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "slamkit", "train", config, *overrides]


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the resolved config; print a JSON summary of the run (rank 0)."""
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise ValueError("--nproc starts torchrun itself; under torchrun, leave it out")
        return subprocess.call(torchrun_command(args.nproc, args.config, args.overrides))
    from slamkit.config import load_config
    from slamkit.train.distributed import teardown
    from slamkit.train.loop import train

    cfg = load_config(args.config, args.overrides)
    start = time.perf_counter()
    try:
        result = train(cfg)
    finally:
        teardown()
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "step": result.step, "loss": result.last_loss,
                          "valid_loss": result.valid_loss, "skipped": result.skipped,
                          "skipped_by_reason": result.skipped_by_reason,
                          "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``train``."""
    p = subparsers.add_parser("train", help="train a model from a YAML config", epilog=EPILOG_OVERRIDES)
    p.add_argument("config", help="YAML config, e.g. recipes/tiny_asr.yaml (or a packaged recipe's name)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--nproc", type=int, default=1,
                   help="processes on this machine (starts torchrun --standalone --nproc-per-node N; default 1)")
    p.set_defaults(func=cmd_train)
