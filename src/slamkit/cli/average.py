"""``slamkit average RUN_DIR (--last N | --best N | --steps S …) [--out DIR]``: average checkpoints."""

from __future__ import annotations

import argparse
import json

from slamkit.cli.common import Subparsers


def cmd_average(args: argparse.Namespace) -> int:
    """Write the mean of the chosen checkpoints; print where it went and how to decode with it."""
    from slamkit.train.average import average_run

    done = average_run(args.run_dir, last=args.last, best=args.best, steps=args.steps, out=args.out)
    print(json.dumps({"out": str(done.path), "steps": done.steps,
                      "decode_with": f"decode.checkpoint={done.path}"}))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``average``."""
    p = subparsers.add_parser(
        "average", help="average the trainable weights of several checkpoints of a run into one",
        description="Writes the element-wise mean of the chosen checkpoints' trainable weights as a checkpoint "
                    "directory (default RUN_DIR/averaged/<choice>_step_<newest>), which decode.checkpoint=DIR "
                    "(slamkit decode, slamkit serve) and train.init_from=DIR take. See docs/checkpoints.md.")
    p.add_argument("run_dir", help="a training run directory (holds checkpoints/)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, metavar="N", help="the N newest checkpoints")
    which.add_argument("--best", type=int, metavar="N", help="the N with the lowest validation loss")
    which.add_argument("--steps", type=int, nargs="+", metavar="S", help="the checkpoints of these steps")
    p.add_argument("--out", default=None, help="the new checkpoint directory (must not exist)")
    p.set_defaults(func=cmd_average)
