"""``covost2``: CoVoST 2 speech translation from its official layout to our manifest (task ``st`` or ``st_cot``).

CoVoST 2 is Common Voice audio with translations. What the user has on disk:

* the Common Voice folder of the source language (e.g. ``cv-corpus-4/en``): ``clips/*.mp3`` and
  ``validated.tsv`` (``path``, ``sentence``, ``client_id``, … columns);
* the CoVoST 2 translation TSVs, either already split by the project's ``get_covost_splits.py`` into
  ``covost_v2.<src>_<tgt>.<split>.tsv`` (columns ``path, sentence, translation, client_id``; splits
  ``train``, ``dev``, ``test``), or the released ``covost_v2.<src>_<tgt>.tsv`` (``path, translation,
  split``; joined here with ``validated.tsv`` by ``path``, ``train`` taking ``train`` and ``train_covost``).

The TSVs are read as the CoVoST scripts write them: tab-separated, no quoting, ``\\`` escapes. Each
usable row is one record: key = the clip name without ``.mp3``, ``source`` = the clip, ``target`` =
the translation (``st``) or ``"<sentence> <|translation|> <translation>"`` (``st_cot``, CoT-ST's
transcribe-then-translate target), plus ``target_language`` (the language's English name, which
the task prompt names), ``transcript``, ``speaker`` (``client_id``), ``split``. Rows that cannot be
used (wrong field count, empty sentence or translation, clip missing or unreadable) are skipped,
named in the log and counted by reason in the summary.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.audio import AudioError
from slamkit.data.manifest import write_manifest
from slamkit.data.skips import (
    EMPTY_TARGET,
    MALFORMED_LINE,
    Skip,
    count_by_reason,
    describe,
)
from slamkit.eval.translation import COT_SEPARATOR, join_cot
from slamkit.prepare.base import CORPORA, CorpusError, clip_duration, corpus_summary, utf8_lines

logger = logging.getLogger(__name__)

SPLITS = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
#: CoVoST 2's language codes and the English names the task prompt uses.
LANGUAGES = {
    "en": "English", "de": "German", "tr": "Turkish", "fa": "Persian", "sv-SE": "Swedish", "mn": "Mongolian",
    "zh-CN": "Chinese", "cy": "Welsh", "ca": "Catalan", "sl": "Slovenian", "et": "Estonian", "id": "Indonesian",
    "ar": "Arabic", "ta": "Tamil", "lv": "Latvian", "ja": "Japanese", "fr": "French", "es": "Spanish",
    "it": "Italian", "ru": "Russian", "pt": "Portuguese", "nl": "Dutch",
}
SPLIT_COLUMNS = ("path", "sentence", "translation")
RELEASE_COLUMNS = ("path", "translation", "split")
VALIDATED_COLUMNS = ("path", "sentence")
MAX_LOGGED = 10


def split_name(split: str) -> str:
    """The canonical split (``train``, ``dev``, ``test``) ``split`` names."""
    for name, aliases in SPLITS.items():
        if split.lower() in aliases:
            return name
    raise CorpusError(f"covost2: unknown split {split!r} (valid: {', '.join(a for v in SPLITS.values() for a in v)})")


def language_name(code: str) -> str:
    """The English name of a CoVoST 2 language code (an unknown code is an error listing the known ones)."""
    if code not in LANGUAGES:
        raise CorpusError(f"covost2: unknown language code {code!r} (CoVoST 2 has {', '.join(sorted(LANGUAGES))})")
    return LANGUAGES[code]


def read_tsv(path: Path, required: tuple[str, ...], skips: list[Skip]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(file:line, row)`` of a CoVoST/Common Voice TSV with a header holding ``required``; a row with a
    wrong field count or bad UTF-8 goes to ``skips`` (a missing file or column is a :class:`CorpusError`)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CorpusError(f"{path}: cannot read ({err})") from err
    lines = raw.splitlines()
    if not lines:
        raise CorpusError(f"{path}: empty file (expected a header with {', '.join(required)})")
    header = lines[0].decode("utf-8", errors="replace").lstrip("\ufeff").split("\t")
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(f"{path}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    for where, text in utf8_lines(path, lines[1:], skips, first=2):
        fields = next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))
        if len(fields) != len(header):
            skips.append(Skip(where, MALFORMED_LINE, f"{len(fields)} tab-separated fields, the header has {len(header)}"))
            continue
        yield where, dict(zip(header, fields))


def _find(folders: list[Path], name: str) -> Path | None:
    """The first ``folder/name`` that is a file."""
    return next((f / name for f in folders if (f / name).is_file()), None)


def covost_rows(root: Path, tsv_dir: Path, src: str, tgt: str, split: str,
                skips: list[Skip]) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows (``path``, ``sentence``, ``translation``, ``client_id``) of one split, from the split TSV or
    from the release TSV joined with Common Voice's ``validated.tsv``."""
    folders = [tsv_dir, root] if tsv_dir != root else [root]
    split_tsv = _find(folders, f"covost_v2.{src}_{tgt}.{split}.tsv")
    if split_tsv is not None:
        yield from read_tsv(split_tsv, SPLIT_COLUMNS, skips)
        return
    release = _find(folders, f"covost_v2.{src}_{tgt}.tsv")
    validated = root / "validated.tsv"
    if release is None or not validated.is_file():
        raise CorpusError(f"no covost_v2.{src}_{tgt}.{split}.tsv in {' or '.join(map(str, folders))}, and no "
                          f"covost_v2.{src}_{tgt}.tsv there with {validated} to join it with")
    transcripts = {row["path"]: row for _, row in read_tsv(validated, VALIDATED_COLUMNS, skips)}
    wanted = {split, f"{split}_covost"} if split == "train" else {split}
    for where, row in read_tsv(release, RELEASE_COLUMNS, skips):
        if row["split"] not in wanted:
            continue
        cv = transcripts.get(row["path"])
        if cv is None:
            skips.append(Skip(where, MALFORMED_LINE, f"clip {row['path']!r} is not in {validated}"))
            continue
        yield where, {**row, "sentence": cv["sentence"], "client_id": cv.get("client_id", "")}


def _record(where: str, row: dict[str, str], clips: Path, split: str, tgt_name: str, cot: bool,
            skips: list[Skip]) -> dict[str, Any] | None:
    """The manifest record of one row, or ``None`` (the reason added to ``skips``)."""
    name = row["path"].strip()
    sentence, translation = " ".join(row["sentence"].split()), " ".join(row["translation"].split())
    if not name:
        skips.append(Skip(where, MALFORMED_LINE, "empty path"))
        return None
    if not sentence or not translation:
        skips.append(Skip(where, EMPTY_TARGET, f"empty {'sentence' if not sentence else 'translation'}", name))
        return None
    clip = clips / name
    if not clip.is_file() and (clips / f"{name}.mp3").is_file():
        clip = clips / f"{name}.mp3"
    key = Path(name).stem
    try:
        duration = clip_duration(clip)
    except AudioError as err:
        skips.append(Skip(where, err.reason, str(err), key))
        return None
    return {"key": key, "source": str(clip.absolute()), "target": join_cot(sentence, translation) if cot else translation,
            "task": "st_cot" if cot else "st", "duration": duration, "target_language": tgt_name,
            "transcript": sentence, "speaker": row.get("client_id", ""), "split": split}


@CORPORA.register("covost2")
def prepare_covost2(root: str | Path, out_manifest: str | Path, *, src: str = "en", tgt: str = "de", split: str = "test",
                    tsv_dir: str | Path | None = None, cot: bool = False) -> dict[str, Any]:
    """Manifest of one CoVoST 2 split (module docs for the layout and the records).

    Args:
        root: the Common Voice folder of the source language (``clips/`` and ``validated.tsv``).
        out_manifest: the JSONL to write.
        src, tgt: CoVoST 2 language codes (``en``→``de``, …, or ``fr``→``en``, …).
        split: ``train``, ``dev`` (``valid``) or ``test``.
        tsv_dir: the folder of the ``covost_v2.*.tsv`` files (default: ``root``).
        cot: chain-of-thought targets (task ``st_cot``) instead of the translation alone (``st``).
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such Common Voice folder")
    clips = root / "clips"
    if not clips.is_dir():
        raise CorpusError(f"{root}: no clips/ folder (expected the Common Voice layout: clips/*.mp3, validated.tsv)")
    if src == tgt or "en" not in (src, tgt):
        raise CorpusError(f"covost2: translates into or out of English, not {src}→{tgt}")
    language_name(src)
    tgt_name, split = language_name(tgt), split_name(split)
    skips: list[Skip] = []
    rows = covost_rows(root, Path(tsv_dir) if tsv_dir is not None else root, src, tgt, split, skips)
    records, seen = [], set()
    for where, row in tqdm(rows, desc=f"covost2 {src}_{tgt} {split}", unit="clip", disable=None):
        record = _record(where, row, clips, split, tgt_name, cot, skips)
        if record is not None and record["key"] in seen:
            skips.append(Skip(where, MALFORMED_LINE, f"clip {record['key']!r} appears twice", record["key"]))
        elif record is not None:
            seen.add(record["key"])
            records.append(record)
    for skip in skips[:MAX_LOGGED]:
        logger.warning("covost2: skipping %s [%s]", skip.message, skip.reason)
    if len(skips) > MAX_LOGGED:
        logger.warning("covost2: … and %d more skipped rows", len(skips) - MAX_LOGGED)
    if not records:
        raise CorpusError(f"{root}: no usable {split} clip ({len(skips)} skipped: {describe(count_by_reason(skips)) or 'none'})")
    write_manifest(records, out_manifest)
    extra: dict[str, Any] = {"skipped": len(skips), "skipped_by_reason": count_by_reason(skips)} if skips else {}
    return corpus_summary(Path(out_manifest), records, split=split, pair=f"{src}_{tgt}", task=records[0]["task"],
                          **({"separator": COT_SEPARATOR} if cot else {}), **extra)
