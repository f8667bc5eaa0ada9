"""``slamkit assets list | install NAME | path NAME``: the pinned real weights, speech data and TTS programs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from slamkit.cli.common import Subparsers


def _list(name: str) -> None:
    """One JSON line per asset: its status (``name`` is ignored)."""
    from slamkit.assets import list_assets

    for status in list_assets():
        print(json.dumps(status.to_dict()))


def _install(name: str) -> None:
    """Install NAME into the cache; print a JSON object with its path and the time taken."""
    from slamkit.assets import install_asset

    start = time.perf_counter()
    path = install_asset(name)
    print(json.dumps({"name": name, "path": str(path), "seconds": round(time.perf_counter() - start, 2)}))


def _path(name: str) -> None:
    """Print NAME's installed path, bare."""
    from slamkit.assets import asset_path

    print(asset_path(name))


#: action -> what it does with the asset NAME (``list`` takes none).
_ACTIONS: dict[str, Callable[[str], None]] = {"list": _list, "install": _install, "path": _path}


def cmd_assets(args: argparse.Namespace) -> int:
    """`assets list` prints JSON lines, `assets install NAME` a JSON object, `assets path NAME` the bare path."""
    from slamkit.assets import AssetError

    if args.action != "list" and not args.name:
        print(f"slamkit assets: error: `assets {args.action}` needs an asset NAME (see `slamkit assets list`)", file=sys.stderr)
        return 2
    try:
        _ACTIONS[args.action](args.name or "")
    except AssetError as exc:
        print(f"slamkit assets: error: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``assets``."""
    p = subparsers.add_parser("assets", help="list, install or locate real weights, speech data and TTS programs")
    p.add_argument("action", choices=list(_ACTIONS), help="list: status of every asset; install NAME; path NAME")
    p.add_argument("name", nargs="?", help="asset name (see `slamkit assets list`)")
    p.set_defaults(func=cmd_assets)
