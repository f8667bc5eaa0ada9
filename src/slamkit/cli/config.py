"""``slamkit config``: list every config key, print a resolved config, or the Markdown reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def cmd_config(args: argparse.Namespace) -> int:
    """Without arguments: every key with type, default and help. With a config or overrides: the
    resolved config as YAML. With ``--markdown`` / ``--write-readme``: the Markdown reference."""
    from slamkit.config import config_reference, config_to_dict, load_config

    if args.config and "=" in args.config:
        args.overrides, args.config = [args.config, *args.overrides], None
    if args.markdown or args.write_readme:
        return _markdown(args)
    if args.config or args.overrides:
        import yaml

        print(yaml.safe_dump(config_to_dict(load_config(args.config, args.overrides)), sort_keys=False), end="")
        return 0
    for key, tp, default, help_text in config_reference():
        print(f"{key:34s} {tp:28s} default {default:14s} {help_text}")
    return 0


def _markdown(args: argparse.Namespace) -> int:
    """Print the Markdown reference, or rewrite the marked block of ``--write-readme FILE`` in place."""
    from slamkit.config import config_reference_markdown, update_config_reference

    if args.config or args.overrides:
        print("slamkit config: error: --markdown and --write-readme document the schema; they take no CONFIG or overrides",
              file=sys.stderr)
        return 2
    if not args.write_readme:
        print(config_reference_markdown(), end="")
        return 0
    path = Path(args.write_readme)
    text = path.read_text(encoding="utf-8")
    try:
        updated = update_config_reference(text)
    except ValueError as exc:  # the markers are missing, repeated or out of order
        print(f"slamkit config: error: {path}: {exc}", file=sys.stderr)
        return 2
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    print(json.dumps({"file": str(path), "changed": updated != text}))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``config``."""
    p = subparsers.add_parser("config", help="list every config key, or print a resolved config", epilog=EPILOG_OVERRIDES)
    p.add_argument("config", nargs="?", help="YAML config to resolve (omit to list all keys with defaults)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--markdown", action="store_true",
                   help="print the config reference as Markdown tables, one per section (the README's block)")
    p.add_argument("--write-readme", metavar="FILE", default=None,
                   help="rewrite the generated block between the CONFIG REFERENCE markers of FILE (e.g. docs/config.md) in place")
    p.set_defaults(func=cmd_config)
