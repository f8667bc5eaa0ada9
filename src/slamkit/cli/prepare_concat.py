"""``slamkit prepare concat MANIFEST --out DIR``: clips joined into longer ones with pauses (long-form training).

Added to ``slamkit prepare`` by :func:`add_concat` (listed in :mod:`slamkit.cli.prepare`). The work is
:func:`slamkit.prepare.concat.prepare_concat`; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import json

from slamkit.cli.common import Subparsers


def cmd_prepare_concat(args: argparse.Namespace) -> int:
    """`prepare concat MANIFEST --out DIR`: write joined WAVs and DIR/NAME.jsonl; print the summary as JSON."""
    from slamkit.prepare.concat import ConcatOptions, parse_join, parse_range, prepare_concat

    options = ConcatOptions(join=parse_join(args.join), pause=parse_range(args.pause, "pause"),
                            edge=parse_range(args.edge, "edge"), max_seconds=args.max_seconds)
    summary = prepare_concat(args.manifest, args.out, count=args.count, options=options, seed=args.seed,
                             workers=args.workers, name=args.name)
    print(json.dumps(summary))
    return 0


def add_concat(prep: Subparsers) -> None:
    """Add ``prepare concat``."""
    t = prep.add_parser("concat", help="clips joined 2-3 at a time with pauses and edge silence, targets joined "
                                       "(training data for long-form segments that hold several; see docs/longform.md for what it measured)",
                        epilog="Run `slamkit prepare augment` on the output for rooms and noise over the pauses too. "
                               "See docs/augmentation.md.")
    t.add_argument("manifest", metavar="MANIFEST", help="input JSONL manifest of speech clips")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder: wav/ and NAME.jsonl")
    t.add_argument("--count", type=int, default=None, metavar="N",
                   help="joined clips to write (default: each input clip used once on average)")
    t.add_argument("--join", default="2-3", metavar="MIN-MAX", help="clips per joined clip, drawn uniformly (default 2-3)")
    t.add_argument("--pause", default="0.1,1.0", metavar="LOW,HIGH", help="seconds of silence between clips (default 0.1,1.0)")
    t.add_argument("--edge", default="0.0,0.5", metavar="LOW,HIGH", help="seconds of silence before and after (default 0.0,0.5)")
    t.add_argument("--max-seconds", type=float, default=20.0, help="drop joined clips longer than this (default 20)")
    t.add_argument("--seed", type=int, default=0, help="fixes every draw (default 0)")
    t.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: all usable cores); the output does not depend on it")
    t.add_argument("--name", default="concat", help="output manifest name without .jsonl (default concat)")
    t.set_defaults(func=cmd_prepare_concat)
