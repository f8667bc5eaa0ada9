"""``slamkit validate MANIFEST… [--audio] [--root DIR] [--json]``: every problem of a manifest, by file:line."""

from __future__ import annotations

import argparse
import json
import sys

from slamkit.cli.common import Subparsers


def cmd_validate(args: argparse.Namespace) -> int:
    """Check every line; print each problem and a table by reason (or one JSON object); exit 1 on any error."""
    from tqdm import tqdm

    from slamkit.data.validate import line_count, summary, validate_manifest

    counts, problems = [], []
    total = sum(line_count(m) for m in args.manifests)
    with tqdm(total=total, desc="validate", unit="line", dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
        for manifest in args.manifests:
            count, found = validate_manifest(manifest, audio=args.audio, root=args.root, tick=lambda: bar.update(1),
                                              text_records=args.text_records)
            counts.append(count)
            problems += found
    report = summary(args.manifests, counts, problems)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for p in problems:
            print(f"{p.where}: {'error' if p.error else 'warning'}: {p.reason}: {p.detail}")
        print(f"\n{report['records']} records in {len(args.manifests)} manifest(s): {report['unusable_lines']} unusable line(s), "
              f"{report['errors']} error(s), {report['warnings']} warning(s)")
        if report["by_reason"]:
            print("\n| reason | kind | lines |\n|---|---|---|")
            for row in report["by_reason"]:
                print(f"| {row['reason']} | {row['kind']} | {row['count']} |")
    return 1 if report["errors"] else 0


def register(subparsers: Subparsers) -> None:
    """Add ``validate``."""
    p = subparsers.add_parser("validate", help="check manifests line by line (fields, keys, files; --audio: decode each clip)",
                              description="Check every line of the manifests and name each problem as FILE:LINE with its reason; "
                              "exit status 1 when any line is unusable. Warnings (empty target, several channels, clips over 30 s, "
                              "a byte-order mark) do not fail it.")
    p.add_argument("manifests", nargs="+", help="JSONL manifests")
    p.add_argument("--audio", action="store_true", help="also decode every clip as training reads it (finite, non-empty; slower)")
    p.add_argument("--root", default=None, help="every source must resolve inside this folder")
    p.add_argument("--text-records", choices=("refuse", "mixed", "only"), default="refuse",
                   help="lines without `source` are text-only records (as data.text_records; docs/text-only.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object (totals, counts by reason, every problem)")
    p.set_defaults(func=cmd_validate)
