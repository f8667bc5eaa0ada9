"""``slamkit demo``: train a real speech LLM on this machine and test it on real speech."""

from __future__ import annotations

import argparse
import json
import sys

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers

_DESCRIPTION = (
    "Installs the assets (Whisper, SmolLM2-135M, TTS voices, real recorded speech) once, "
    "synthesises training speech, trains within a time budget, decodes real recorded speech with "
    "the new model, the shipped reference adapter and Whisper's own decoder, and writes a report "
    "(report.md, report.json, loss.png) into --out."
)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; print its headline numbers as JSON and where the report is."""
    from pathlib import Path

    from slamkit.app.demo import DemoOptions, run_demo

    kwargs = dict(out=Path(args.out), encoder=args.encoder, whisper=not args.no_whisper, reference=not args.no_reference,
                  overrides=args.overrides)
    if args.minutes is not None:
        kwargs["minutes"] = args.minutes
    for name in ("cooldown", "text", "engines", "pseudo_speakers", "augment"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    opts = DemoOptions.quick(**kwargs) if args.quick else DemoOptions(**kwargs)
    report = run_demo(opts)
    print(json.dumps({k: report[k] for k in ("wer", "reference_wer", "whisper_wer", "train_seconds", "peak_rss_mb")}))
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo", help="the main job: train a real speech LLM on this machine and test it on real speech",
                              description=_DESCRIPTION, epilog=EPILOG_OVERRIDES)
    p.add_argument("--out", default="runs/demo", help="report and work folder (default runs/demo)")
    p.add_argument("--encoder", default="tiny.en", choices=["tiny.en", "base"], help="Whisper encoder (default tiny.en)")
    p.add_argument("--minutes", type=float, default=None, help="training time budget in minutes (default 30; --quick: 2)")
    p.add_argument("--cooldown", type=float, default=None, help="share of the budget, at its end, in which the learning rate "
                   "falls linearly to 0 (default 0.2: the last 6 of 30 minutes; 0: constant to the end; train.cooldown_minutes)")
    p.add_argument("--quick", action="store_true", help="smoke test: little data, 2-minute budget, small evaluation sets")
    p.add_argument("--text", default=None, help="training text sources and caps, e.g. fortune,wordnet:8000 (default: "
                   "fortune,wordnet:8000,austen:6000,moby-dick:2000,jargon:2000; docs/text-sources.md)")
    p.add_argument("--engines", default=None, help="TTS engines and weights (default piper:0.5,flite:0.3,espeak-ng:0.2; docs/voices.md)")
    p.add_argument("--pseudo-speakers", type=int, default=None, help="pitch/tempo-shifted variants of the voices (default 8; 0: none)")
    p.add_argument("--augment", default=None, help="augmentation of the training clips, e.g. room:0.3,noise:0.5,telephone:0.1,"
                   "speed:0.3 (the default); '' for none (docs/augmentation.md)")
    p.add_argument("--no-whisper", action="store_true", help="skip Whisper's own decoder as reference point")
    p.add_argument("--no-reference", action="store_true", help="skip evaluating the shipped reference adapter")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo recipe, e.g. data.batch_size=4")
    p.set_defaults(func=cmd_demo)
