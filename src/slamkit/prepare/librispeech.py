"""``librispeech``: the official LibriSpeech layout (``*.trans.txt`` per chapter), optionally with biasing lists."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.biasing import (
    attach_biasing_words,
    attach_tsv_lists,
    load_biasing_list,
)
from slamkit.data.audio import AudioError
from slamkit.data.manifest import write_manifest
from slamkit.data.skips import MALFORMED_LINE, Skip, count_by_reason, describe
from slamkit.prepare.base import CORPORA, CorpusError, clip_duration, corpus_summary, utf8_lines

logger = logging.getLogger(__name__)


def _librispeech_chapter(trans: Path, skips: list[Skip]) -> list[dict[str, Any]]:
    """Records of one ``<speaker>-<chapter>.trans.txt`` (``<utt id> <TEXT>`` lines); a line that cannot
    be used (not UTF-8, not ``ID TEXT``, a missing or unreadable FLAC) is added to ``skips`` instead."""
    speaker, _, chapter = trans.name[: -len(".trans.txt")].partition("-")
    records = []
    for where, line in utf8_lines(trans, trans.read_bytes().splitlines(), skips):
        utt, _, text = line.strip().partition(" ")
        if not text.strip() or not utt.startswith(f"{speaker}-{chapter}-"):
            skips.append(Skip(where, MALFORMED_LINE, f"expected `{speaker}-{chapter}-NNNN TEXT`, got {line.strip()[:80]!r}"))
            continue
        flac = trans.parent / f"{utt}.flac"
        try:
            duration = clip_duration(flac)
        except AudioError as err:
            skips.append(Skip(where, err.reason, str(err), utt))
            continue
        records.append({"key": utt, "source": str(flac.absolute()), "target": " ".join(text.split()),
                        "duration": duration, "speaker": speaker, "chapter": chapter,
                        "subset": trans.parents[2].name})
    return records


@CORPORA.register("librispeech")
def prepare_librispeech(root: str | Path, out_manifest: str | Path, biasing_tsv: str | Path | None = None,
                        biasing_list: str | Path | None = None, distractors: int = 100, seed: int = 0) -> dict[str, Any]:
    """Manifest of a LibriSpeech tree: ``root`` is the LibriSpeech folder or one subset in it
    (``<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + ``.flac``).

    Keys are utterance ids, targets the transcripts as written (upper case), durations read
    from the FLAC headers.

    Contextual biasing (:mod:`slamkit.data.biasing`): ``biasing_tsv`` (a published
    ``test-{clean,other}.biasing_N.tsv``) sets each line's ``biasing_words`` to its list there
    (every utterance needs one); ``biasing_list`` (one word per line, e.g. ``all_rare_words.txt``)
    adds ``distractors`` words drawn from it (seeded by ``seed``) to those lists, or to the
    reference's words found in it when there is no TSV.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such LibriSpeech folder")
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise CorpusError(f"{root}: no <speaker>-<chapter>.trans.txt files below it (is this LibriSpeech?)")
    records: list[dict[str, Any]] = []
    skips: list[Skip] = []
    for trans in tqdm(transcripts, desc="librispeech", unit="chapter", disable=None):
        records.extend(_librispeech_chapter(trans, skips))
    for skip in skips[:10]:
        logger.warning("librispeech: skipping %s [%s]", skip.message, skip.reason)
    if not records:
        raise CorpusError(f"{root}: no usable utterance ({len(skips)} skipped: {describe(count_by_reason(skips))})")
    extra: dict[str, Any] = {"skipped": len(skips), "skipped_by_reason": count_by_reason(skips)} if skips else {}
    if biasing_tsv is not None or biasing_list is not None:
        records = _attach_biasing(records, biasing_tsv, biasing_list, distractors, seed)
        words = [len(r["biasing_words"]) for r in records]
        extra["biasing_words_per_utterance"] = round(sum(words) / len(words), 1)
    write_manifest(records, out_manifest)
    return corpus_summary(Path(out_manifest), records, chapters=len(transcripts), **extra)


def _attach_biasing(records: list[dict[str, Any]], tsv: str | Path | None, word_list: str | Path | None,
                    distractors: int, seed: int) -> list[dict[str, Any]]:
    """``records`` with ``biasing_words`` from the published TSV and/or a word list plus distractors."""
    for path, what in ((tsv, "biasing TSV"), (word_list, "biasing word list")):
        if path is not None and not Path(path).is_file():
            raise CorpusError(f"{path}: no such {what} file")
    if tsv is not None:
        records = attach_tsv_lists(records, tsv)
    if word_list is not None:
        records = list(attach_biasing_words(records, load_biasing_list(word_list), distractors, seed))
    return records
