"""The ``slamkit`` command: train, average, decode, serve, score, validate, normalize, config, prepare, assets, demo, list, bench.

One module per command group (:data:`COMMAND_GROUPS`); each has ``register(subparsers)``, which adds
its subcommands with their handler as ``func``, and the handlers, which parse nothing themselves and
call library code. Heavy imports happen inside the handlers so ``--help`` is instant. This module
builds the parser, sets up logging and turns the errors a user can cause into one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from slamkit.cli import assets, average, bench, config, decode, demo, listing, memory, prepare, score, serve, train, validate
from slamkit.cli.common import EPILOG_OVERRIDES, CommandGroup, Handler

__all__ = ["COMMAND_GROUPS", "EPILOG_OVERRIDES", "build_parser", "main"]

#: The command groups, in the order ``slamkit --help`` lists their subcommands.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (train, average, decode, serve, score, validate, config, prepare, assets, demo, listing, bench, memory)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used to document them)."""
    parser = argparse.ArgumentParser(prog="slamkit", description="Train, decode and score speech LLMs (audio encoder -> projector -> LLM).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slamkit`` console script."""
    parser = build_parser()
    # key=value overrides may also follow options (`decode RUN --out H decode.beam_size=4`), which
    # argparse leaves over when a positional list precedes the options.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or not all("=" in e and not e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    _setup_logging(args.verbose)
    func: Handler = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        # User-caused errors (config, manifest, audio, run directory): one clear line, no traceback.
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"slamkit {args.command}: error: {message}", file=sys.stderr)
        return 2

