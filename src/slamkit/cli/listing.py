"""``slamkit list [encoders|projectors|llm-presets]``: the registered components."""

from __future__ import annotations

import argparse

from slamkit.cli.common import Subparsers


def print_encoder_table() -> None:
    """Every registered encoder: sample rate, frame rate, width and size at its official preset, presets."""
    from slamkit.models.encoders.base import encoder_table

    header = ("encoder", "sample rate", "frames/s", "hidden", "params", "shown at", "presets")
    rows = [(r["name"], f"{r['sample_rate']} Hz", f"{r['frame_rate']:g}", str(r["hidden_size"]), f"{r['parameters'] / 1e6:.1f} M", str(r["preset"]), str(r["presets"])) for r in encoder_table()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_list(args: argparse.Namespace) -> int:
    """The encoder table and/or the names of the registered projectors and LLM presets."""
    from slamkit.models.llm import LLM_PRESETS
    from slamkit.models.projectors import PROJECTORS

    if args.what in ("encoders", "all"):
        print_encoder_table()
    tables = {"projectors": PROJECTORS.names(), "llm-presets": LLM_PRESETS.names()}
    for name in [args.what] if args.what in tables else tables if args.what == "all" else []:
        print(f"{name}: {', '.join(tables[name])}")
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``list``."""
    p = subparsers.add_parser("list", help="list registered encoders, projectors and LLM presets")
    p.add_argument("what", nargs="?", default="all", choices=["all", "encoders", "projectors", "llm-presets"])
    p.set_defaults(func=cmd_list)
