"""How much of the real evaluation sets' vocabulary each training-text source holds.

    python benchmarks/text_coverage.py                     # every registered source, their union, the default mix (~1 min)
    python benchmarks/text_coverage.py --mix fortune,wordnet:8000 --file extra=lines.txt --json

For the words of the Asterisk prompts and of the 5 LibriVox clips (the evaluation sets exactly as
`slamkit prepare asterisk|librivox` writes them), normalised with the Whisper English normaliser
(`slamkit.eval.normalizer`), prints the share found in each source's sentences: by type (distinct
words) and by token (running words). A source's sentences are taken as training would take them:
those overlapping an evaluation transcript are dropped first (`slamkit.prepare.text.EvalGuard`).

Needs the assets asterisk-sounds, pocketsphinx-testdata and those of the sources
(`slamkit assets install NAME`; `slamkit assets list` shows them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

from slamkit.assets import asset_path
from slamkit.data.manifest import read_manifest
from slamkit.eval.normalizer import get_normalizer
from slamkit.prepare.debian import prepare_asterisk, prepare_librivox
from slamkit.prepare.text import (
    DEFAULT_MIX,
    TEXT_SOURCES,
    EvalGuard,
    evaluation_texts,
    mix_sentences,
    source_sentences,
)

EVAL_SETS = ("asterisk", "librivox")


def eval_words(normalise) -> dict[str, Counter[str]]:
    """``{set: Counter(normalised word)}`` of the Asterisk and LibriVox evaluation manifests."""
    with tempfile.TemporaryDirectory(prefix="slamkit-coverage-") as tmp:
        prepare_asterisk(tmp, root=asset_path("asterisk-sounds"))
        prepare_librivox(tmp, root=asset_path("pocketsphinx-testdata"))
        return {name: Counter(w for r in read_manifest(Path(tmp) / f"{name}.jsonl") for w in normalise(r.target).split())
                for name in EVAL_SETS}


def vocabulary(sentences: list[str], normalise) -> set[str]:
    """The normalised words of ``sentences``."""
    words: set[str] = set()
    for sentence in sentences:
        words.update(normalise(sentence).split())
    return words


def coverage(vocab: set[str], words: Counter[str]) -> tuple[float, float]:
    """(share of types, share of tokens) of ``words`` found in ``vocab``."""
    types = sum(1 for w in words if w in vocab) / len(words)
    tokens = sum(n for w, n in words.items() if w in vocab) / sum(words.values())
    return types, tokens


def rows(args: argparse.Namespace) -> list[dict]:
    """One row per source, the union of the sources, and each mix."""
    normalise = get_normalizer("whisper")
    words = eval_words(normalise)
    excluded = evaluation_texts()
    guard = EvalGuard(excluded)
    texts: dict[str, list[str]] = {}
    for name in args.sources.split(","):
        texts[name] = [s for s in source_sentences(name) if not guard.overlaps(s)]
    for item in args.file:
        name, _, path = item.partition("=")
        texts[name] = [s for s in Path(path).read_text(encoding="utf-8").splitlines() if s.strip() and not guard.overlaps(s)]
    vocabs = {name: vocabulary(sentences, normalise) for name, sentences in texts.items()}
    counts = {name: len(sentences) for name, sentences in texts.items()}
    sources = args.sources.split(",")
    vocabs["union"] = set().union(*(vocabs[name] for name in sources))  # of --sources, not of --file
    counts["union"] = sum(counts[name] for name in sources)
    for spec in args.mix:
        mixed = mix_sentences(spec, exclude=excluded).sentences
        vocabs[f"mix {spec}"], counts[f"mix {spec}"] = vocabulary(mixed, normalise), len(mixed)
    out = [{"text": "(evaluation words)", "sentences": None,
            **{f"{s}_words": f"{len(words[s])} types / {sum(words[s].values())} tokens" for s in EVAL_SETS}}]
    for name, vocab in vocabs.items():
        row: dict = {"text": name, "sentences": counts[name], "vocabulary": len(vocab)}
        for s in EVAL_SETS:
            row[f"{s}_types"], row[f"{s}_tokens"] = (round(100 * x, 1) for x in coverage(vocab, words[s]))
        row["asterisk_missing"] = sorted(w for w in words["asterisk"] if w not in vocab)[:0 if name != "union" else 60]
        out.append(row)
    return out


def markdown(table: list[dict]) -> str:
    """The rows as a markdown table (coverage in %: types / tokens)."""
    head = table[0]
    lines = [f"Evaluation words: Asterisk {head['asterisk_words']}, LibriVox {head['librivox_words']}.", "",
             "| text | sentences | vocabulary | Asterisk types | Asterisk tokens | LibriVox types | LibriVox tokens |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in table[1:]:
        lines.append(f"| {r['text']} | {r['sentences']} | {r['vocabulary']} | {r['asterisk_types']} % | "
                     f"{r['asterisk_tokens']} % | {r['librivox_types']} % | {r['librivox_tokens']} % |")
    missing = next(r["asterisk_missing"] for r in table[1:] if r["text"] == "union")
    lines += ["", f"Asterisk words in no source: {', '.join(missing)}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default=",".join(TEXT_SOURCES.names()), help="comma-separated text sources")
    parser.add_argument("--mix", action="append", default=None, help=f"a mix spec to add as a row (default: {DEFAULT_MIX})")
    parser.add_argument("--file", action="append", default=[], help="NAME=PATH: one sentence a line, as an extra row")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a markdown table")
    args = parser.parse_args()
    if args.mix is None:
        args.mix = [DEFAULT_MIX]
    table = rows(args)
    print("\n".join(json.dumps(r) for r in table) if args.json else markdown(table))


if __name__ == "__main__":
    main()
