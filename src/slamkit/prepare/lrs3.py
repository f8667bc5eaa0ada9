"""``lrs3``: manifests of LRS3 for visual (``source`` = mouth video) or audio-visual speech recognition.

Two layouts of the official corpus are read, the first found wins:

1. **AV-HuBERT's prepared data** (``avhubert/preparation``, steps 1–4): ``ROOT/433h_data/`` (or
   ``30h_data/``, ``--subset 30h``) with ``{train,valid,test}.tsv`` (a root line, then
   ``id<TAB>video<TAB>audio<TAB>video frames<TAB>audio samples``) and ``{split}.wrd`` (one
   transcript per line, same order). Durations come from the frame counts (25 fps); nothing is opened.
2. **The LRS3 release** (``ROOT/{trainval,test}/<speaker>/<clip>.{mp4,txt}``, the ``.txt`` starting
   ``Text:  WORDS``) with the mouth crops AV-HuBERT's ``align_mouth.py`` writes in
   ``ROOT/video/<split>/<speaker>/<clip>.mp4`` (and, from its step 3, audio in ``ROOT/audio/…wav``).
   The released videos are whole faces: a clip without a mouth-crop video is skipped and counted.
   ``trainval`` is the training set, minus the ids in ``--valid-ids`` (AV-HuBERT's
   ``lrs3-valid.id``), which form the validation set; ``pretrain`` is left out (its long
   utterances must first be split, AV-HuBERT's step 1, which gives layout 1).

Records: ``key`` the clip id (``trainval/<speaker>/<clip>``), ``target`` the transcript as written,
``duration`` in seconds; video only: ``source`` the mouth video; ``--audio-visual``: ``source`` the
audio (the ``.wav``, else the released ``.mp4``'s own track) and ``video`` the mouth video. No
``task`` is written: the recipe's ``data.task: vsr`` applies (with its prompt).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from slamkit.data.audio import AudioError
from slamkit.data.manifest import write_manifest
from slamkit.data.skips import MALFORMED_LINE, MISSING_FILE, Skip, count_by_reason
from slamkit.data.video import video_info
from slamkit.prepare.base import CORPORA, CorpusError, corpus_summary, text_lines

logger = logging.getLogger(__name__)

FPS = 25.0
SPLITS = ("train", "valid", "test")
SUBSETS = {"433h": "433h_data", "30h": "30h_data"}


def _tsv_split(data: Path, split: str, audio_visual: bool, skips: list[Skip]) -> list[dict[str, Any]] | None:
    """Records of ``data/{split}.tsv`` + ``.wrd``; None when the split's files are absent."""
    tsv, wrd = data / f"{split}.tsv", data / f"{split}.wrd"
    if not tsv.is_file():
        return None
    if not wrd.is_file():
        raise CorpusError(f"{wrd}: missing (the transcripts of {tsv})")
    rows = [line.rstrip("\n") for line in text_lines(tsv)]
    texts = [line.rstrip("\n") for line in text_lines(wrd)]
    if not rows:
        raise CorpusError(f"{tsv}: empty (expected a root line, then one line per clip)")
    base, rows = Path(rows[0].strip() or "/"), rows[1:]
    if len(rows) != len(texts):
        raise CorpusError(f"{tsv}: {len(rows)} clips but {wrd} has {len(texts)} transcripts")
    records = []
    for number, (row, text) in enumerate(zip(rows, texts), start=2):
        cells = row.split("\t")
        if len(cells) != 5 or not cells[3].strip().isdigit():
            skips.append(Skip(f"{tsv}:{number}", MALFORMED_LINE, f"expected `id<TAB>video<TAB>audio<TAB>frames<TAB>samples`, got {row[:80]!r}"))
            continue
        key, video, audio, frames = cells[0], base / cells[1], base / cells[2], int(cells[3])
        record: dict[str, Any] = {"key": key, "source": str(audio if audio_visual else video), "target": text.strip(),
                                  "duration": round(frames / FPS, 3)}
        if audio_visual:
            record["video"] = str(video)
        records.append(record)
    return records


def _transcript(path: Path) -> str | None:
    """The words of a release ``.txt`` (its ``Text:`` line), or None when it has none."""
    for line in text_lines(path):
        if line.startswith("Text:"):
            return line[len("Text:"):].strip()
    return None


def _release_split(root: Path, part: str, audio_visual: bool, skips: list[Skip]) -> list[dict[str, Any]]:
    """Records of the release folder ``root/part`` whose mouth-crop video exists."""
    records = []
    for txt in sorted((root / part).glob("*/*.txt")):
        key = f"{part}/{txt.parent.name}/{txt.stem}"
        text = _transcript(txt)
        if not text:
            skips.append(Skip(str(txt), MALFORMED_LINE, "no `Text:` line"))
            continue
        video = root / "video" / f"{key}.mp4"
        if not video.is_file():
            skips.append(Skip(str(txt), MISSING_FILE, f"no mouth-crop video {video} (run AV-HuBERT's align_mouth.py)"))
            continue
        try:
            fps, frames = video_info(video)
        except AudioError as err:
            skips.append(Skip(str(video), err.reason, str(err)))
            continue
        record: dict[str, Any] = {"key": key, "source": str(video), "target": text, "duration": round(frames / fps, 3)}
        if audio_visual:
            wav = root / "audio" / f"{key}.wav"
            record["source"] = str(wav if wav.is_file() else txt.with_suffix(".mp4"))
            record["video"] = str(video)
        records.append(record)
    return records


def _release(root: Path, valid_ids: Path | None, audio_visual: bool, skips: list[Skip]) -> dict[str, list[dict[str, Any]]]:
    held = {line.strip() for line in text_lines(valid_ids) if line.strip()} if valid_ids else set()
    trainval = _release_split(root, "trainval", audio_visual, skips)
    return {"train": [r for r in trainval if r["key"] not in held], "valid": [r for r in trainval if r["key"] in held],
            "test": _release_split(root, "test", audio_visual, skips)}


@CORPORA.register("lrs3")
def prepare_lrs3(root: str | Path, out_dir: str | Path, subset: str = "433h", valid_ids: str | Path | None = None,
                 audio_visual: bool = False) -> dict[str, Any]:
    """Write ``out_dir/{train,valid,test}.jsonl`` from an LRS3 tree (see the module for the layouts).

    Returns ``{"layout", "splits": {split: summary}}`` (each summary as :func:`corpus_summary`),
    plus ``skipped`` / ``skipped_by_reason`` when clips were left out. Empty splits are not written.
    """
    root, out = Path(root), Path(out_dir)
    if subset not in SUBSETS:
        raise CorpusError(f"unknown LRS3 subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    if not root.is_dir():
        raise CorpusError(f"{root}: no such LRS3 folder")
    skips: list[Skip] = []
    data = root / SUBSETS[subset]
    if data.is_dir():
        layout, splits = f"avhubert {SUBSETS[subset]}", {s: _tsv_split(data, s, audio_visual, skips) or [] for s in SPLITS}
    elif (root / "trainval").is_dir() or (root / "test").is_dir():
        layout, splits = "release", _release(root, Path(valid_ids) if valid_ids else None, audio_visual, skips)
    else:
        raise CorpusError(f"{root}: neither AV-HuBERT's {SUBSETS[subset]}/ nor the release's trainval/ and test/ "
                          "folders (is this LRS3?)")
    for skip in skips[:10]:
        logger.warning("lrs3: skipping %s [%s]", skip.message, skip.reason)
    if not any(splits.values()):
        raise CorpusError(f"{root}: no usable clip ({len(skips)} skipped: {count_by_reason(skips)})")
    summary: dict[str, Any] = {"layout": layout, "splits": {}}
    for split, records in splits.items():
        if records:
            write_manifest(records, out / f"{split}.jsonl")
            summary["splits"][split] = corpus_summary(out / f"{split}.jsonl", records)
    if skips:
        summary.update(skipped=len(skips), skipped_by_reason=count_by_reason(skips))
    return summary
