"""``slamkit memory RECIPE``: per-GPU memory of a recipe for 1…N GPUs under DDP and FSDP (computed)."""

from __future__ import annotations

import argparse
import json

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def cmd_memory(args: argparse.Namespace) -> int:
    """Build the recipe on the meta device and print the per-GPU estimate (Markdown table, or JSON)."""
    from slamkit.app.memory import format_markdown, memory_table
    from slamkit.config import load_config

    overrides = ["model.encoder.path=null", "model.llm.path=null", *args.overrides] if args.architecture_only else args.overrides
    cfg = load_config(args.config, overrides)
    rows = memory_table(cfg, tuple(args.gpus), args.tokens, not args.no_activation_checkpointing)
    print(json.dumps(rows, indent=1) if args.json else format_markdown(rows))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``memory``."""
    p = subparsers.add_parser("memory", help="per-GPU memory of a recipe for 1..N GPUs under DDP and FSDP (computed, not measured)",
                              epilog=EPILOG_OVERRIDES)
    p.add_argument("config", help="YAML config or packaged recipe name, e.g. asr_librispeech_whisper_vicuna")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8], help="GPU counts (default 1 2 4 8)")
    p.add_argument("--tokens", type=int, default=2048, help="LLM tokens per GPU and micro-batch (default 2048)")
    p.add_argument("--no-activation-checkpointing", action="store_true", help="estimate without activation checkpointing")
    p.add_argument("--architecture-only", action="store_true",
                   help="build the encoder and LLM from their presets (model.*.path=null): no weights needed")
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p.set_defaults(func=cmd_memory)
