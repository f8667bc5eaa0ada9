"""``slamkit prepare augment MANIFEST --out DIR``: pre-rendered augmented copies of a manifest's clips.

Added to ``slamkit prepare`` by :func:`add_augment` (listed in :mod:`slamkit.cli.prepare`). The work is
:func:`slamkit.prepare.augment_run.prepare_augment`; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from slamkit.cli.common import Subparsers

DEFAULT_SPEC = "room:0.3,noise:0.5,telephone:0.1,speed:0.3"  # the same as slamkit.prepare.augment.DEFAULT_SPEC

_EPILOG = ("SPEC is KIND:P,KIND:P,… with kinds speed, room, noise, telephone (applied in that order when drawn); "
           "P is the probability per copy (a kind alone means 1). Each kind's options are set with "
           "--param KIND.NAME=VALUE (repeatable), e.g. --param noise.snr_db=0,15 --param room.rt60=0.3,1.0; "
           "--list-params lists them with their defaults. See docs/augmentation.md.")


class _ListParams(argparse.Action):
    """``--list-params``: print every kind's options and defaults, then exit (imports only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from slamkit.prepare.augment import params_help

        print(params_help())
        parser.exit()


def cmd_prepare_augment(args: argparse.Namespace) -> int:
    """`prepare augment MANIFEST --out DIR`: write augmented WAVs and DIR/NAME.jsonl; print the summary as JSON."""
    from slamkit.prepare.augment_run import prepare_augment

    summary = prepare_augment(args.manifest, args.out, spec=args.augment, copies=args.copies, keep_clean=args.keep_clean,
                              seed=args.seed, workers=args.workers, params=args.param, name=args.name, install=args.install)
    print(json.dumps(summary))
    return 0


def add_augment(prep: Subparsers) -> None:
    """Add ``prepare augment``."""
    t = prep.add_parser("augment", help="pre-rendered augmented copies of a manifest's clips (room, noise, telephone, speed)",
                        epilog=_EPILOG)
    t.add_argument("manifest", metavar="MANIFEST", help="input JSONL manifest")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder: wav/ and NAME.jsonl")
    t.add_argument("--augment", default=DEFAULT_SPEC, metavar="SPEC", help=f"kinds and their probabilities (default {DEFAULT_SPEC})")
    t.add_argument("--copies", type=int, default=1, metavar="K", help="augmented copies per clip (default 1)")
    t.add_argument("--keep-clean", action="store_true", help="also keep each input line, unchanged, in the output manifest")
    t.add_argument("--seed", type=int, default=0, help="run seed; with the clip key and copy index it fixes every draw (default 0)")
    t.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: all usable cores); the output does not depend on it")
    t.add_argument("--param", action="append", default=[], metavar="KIND.NAME=VALUE", help="a kind's option (repeatable; see --list-params)")
    t.add_argument("--name", default=None, help="output manifest name without .jsonl (default: the input's)")
    t.add_argument("--install", action="store_true", help="install missing noise assets (asterisk-moh, sonic-pi-samples) instead of leaving them out")
    t.add_argument("--list-params", action=_ListParams, help="list every kind's --param options with defaults, and exit")
    t.set_defaults(func=cmd_prepare_augment)

