"""``slamkit score H`` and ``slamkit normalize``: metrics of a hypothesis file, text normalisation."""

from __future__ import annotations

import argparse
import json
import sys

from slamkit.cli.common import Subparsers


def cmd_score(args: argparse.Namespace) -> int:
    """Score a ``{key, hyp, ref}`` JSONL; print one JSON object."""
    from slamkit.infer.score import score_file

    print(json.dumps(score_file(args.hyps, metric=args.metric, normalizer=args.normalizer)))
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    """Normalise stdin line by line, as ``score`` does before comparing."""
    from slamkit.eval.metrics import normalize_lines

    for line in normalize_lines((raw.rstrip("\n") for raw in sys.stdin), args.normalizer):
        print(line)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``score`` and ``normalize``."""
    p = subparsers.add_parser("score", help="score a hypothesis JSONL ({key, hyp, ref} lines); prints one JSON object")
    p.add_argument("hyps", help="JSONL written by `slamkit decode`")
    p.add_argument("--metric", default=None, help="wer | cer | bwer (WER, B-WER, U-WER; lines carry biasing_words) | caption (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D; needs Java) | bleu (corpus BLEU and chrF, sacrebleu; speech translation); default: the lines' task (`slamkit decode` writes it), else wer")
    p.add_argument("--normalizer", default=None, help="whisper (Whisper's English rules; default for wer/cer), librispeech (default for bwer), basic or none")
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("normalize", help="normalise text lines from stdin (as `score` does before comparing)")
    p.add_argument("--normalizer", default="whisper", help="whisper (default), basic or none")
    p.set_defaults(func=cmd_normalize)
