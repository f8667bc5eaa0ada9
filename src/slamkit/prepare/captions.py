"""Captioning corpora (Clotho, AudioCaps, MusicCaps, SECap) from their official layouts to JSONL.

Each ``prepare_<name>(root, out_manifest, *, split=None, ...)`` is registered in
:data:`slamkit.prepare.CORPORA`, writes our manifest and returns a summary dict (manifest,
records, clips, captions, missing_audio, hours, splits). A record is one clip: ``target`` is its
first caption and the extra field ``references`` lists all its captions in file order (what the
caption metrics score against); ``per_caption=True`` writes one record per caption instead (key
``<clip>#<n>``), for training splits only.

AudioCaps and MusicCaps audio is downloaded by users from YouTube: every audio file below
``audio_dir`` is indexed by its name without suffix and each clip tries the names its function
documents, in order. A file named by the video id alone may be the whole video; when it is longer
than the clip it is cropped with ``offset``/``duration``. Missing clips are counted, listed in
``<manifest>.missing.txt`` and skipped (an error only when none is found). Clotho and SECap ship
their audio, so there a missing file is an error. Malformed rows raise
:class:`~slamkit.prepare.CorpusError` naming ``file:line``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from slamkit.prepare.common import (
    AUDIO_SUFFIXES,
    Clip,
    Found,
    caption_cell,
    find_audio,
    find_path,
    finish_manifest,
    flag_cell,
    format_number,
    index_audio,
    read_csv,
    require_some,
    seconds_cell,
    split_names,
)
from slamkit.prepare.base import CORPORA, CorpusError

__all__ = ["index_audio", "prepare_audiocaps", "prepare_clotho", "prepare_musiccaps", "prepare_secap"]

AUDIOCAPS_CLIP_SECONDS = 10.0

CLOTHO_SPLITS = {"development": ("development", "dev", "train"),
                 "validation": ("validation", "val", "valid"),
                 "evaluation": ("evaluation", "eval", "test")}
CLOTHO_CAPTIONS = tuple(f"caption_{i}" for i in range(1, 6))
AUDIOCAPS_SPLITS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
AUDIOCAPS_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
MUSICCAPS_SPLITS = {"train": ("train",), "test": ("test", "eval")}
MUSICCAPS_CSV = "musiccaps-public.csv"
MUSICCAPS_COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
                     "author_id", "is_balanced_subset", "is_audioset_eval")
SECAP_CAPTIONS = "fid2captions.json"


# --------------------------------------------------------------------------- Clotho


def _clotho_clips(csv_path: Path, split: str) -> list[Clip]:
    """Clips of ``clotho_captions_<split>.csv`` (``file_name, caption_1 … caption_5``)."""
    clips: list[Clip] = []
    first: dict[str, int] = {}
    for line, row in read_csv(csv_path, ("file_name",) + CLOTHO_CAPTIONS):
        where = f"{csv_path}:{line}"
        name = row["file_name"].strip()
        if not name:
            raise CorpusError(f"{where}: empty file_name")
        if name in first:
            raise CorpusError(f"{where}: file_name {name!r} repeats line {first[name]}")
        first[name] = line
        captions = [caption_cell(row[column], where, column) for column in CLOTHO_CAPTIONS]
        stem = Path(name).stem if Path(name).suffix.lower() in AUDIO_SUFFIXES else name
        clips.append(Clip(key=stem, where=where, captions=captions, split=split, clip_names=[stem]))
    return clips


@CORPORA.register("clotho")
def prepare_clotho(root: str | Path, out_manifest: str | Path, *, split: str | None = None,
                   per_caption: bool = False, prompt: str | None = None) -> dict[str, Any]:
    """Manifest of Clotho (v2.1 from Zenodo; v1/v2 have the same layout).

    Args:
        root: the folder holding ``clotho_captions_<split>.csv`` (or ``clotho_csv_files/`` with
            them) and the extracted audio: ``<split>/``, ``clotho_audio_<split>/`` (its own
            ``<split>/`` inside it too), ``clotho_audio_files/<split>/`` or ``audio/<split>/``,
            where ``<split>`` is ``development``, ``validation`` or ``evaluation``.
        out_manifest: the JSONL to write.
        split: ``development`` (``dev``, ``train``), ``validation`` (``val``) or ``evaluation``
            (``eval``, ``test``); ``None`` takes every split whose captions CSV is there.
        per_caption: one record per caption (5 per clip) instead of one per clip.
        prompt: written into every record when given.

    Keys are the audio file names without ``.wav``; ``task`` is ``aac``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such Clotho folder")
    wanted = split_names(split, CLOTHO_SPLITS, "clotho")
    found: list[Found] = []
    lost: dict[str, list[str]] = {"missing": [], "unreadable": [], "too_short": []}
    for name in wanted:
        csv_names = [f"clotho_captions_{name}.csv", f"clotho_csv_files/clotho_captions_{name}.csv"]
        if split is None and not any((root / rel).is_file() for rel in csv_names):
            continue
        csv_path = find_path(root, csv_names, f"Clotho {name} captions")
        audio = find_path(root, [name, f"clotho_audio_{name}/{name}", f"clotho_audio_{name}",
                             f"clotho_audio_files/{name}", f"audio/{name}"], f"Clotho {name} audio folder", True)
        part, _ = find_audio(_clotho_clips(csv_path, name), index_audio(audio), audio, True, f"clotho {name}")
        found.extend(part)
    if not found:
        raise CorpusError(f"{root}: no clotho_captions_<split>.csv for {', '.join(wanted)}")
    return finish_manifest(found, lost, out_manifest, "aac", per_caption, prompt)


# --------------------------------------------------------------------------- AudioCaps


def _audiocaps_clips(csv_path: Path, split: str) -> list[Clip]:
    """Clips of an AudioCaps CSV: rows of the same ``youtube_id`` and ``start_time`` are one clip."""
    clips: dict[str, Clip] = {}
    for line, row in read_csv(csv_path, AUDIOCAPS_COLUMNS):
        where = f"{csv_path}:{line}"
        ytid, cap_id = row["youtube_id"].strip(), row["audiocap_id"].strip()
        if not ytid:
            raise CorpusError(f"{where}: empty youtube_id")
        if not cap_id.isdigit():
            raise CorpusError(f"{where}: audiocap_id must be an integer, got {cap_id!r}")
        start = seconds_cell(row["start_time"], where, "start_time")
        caption = caption_cell(row["caption"], where, "caption")
        key = f"{ytid}_{format_number(start)}"
        if key not in clips:
            end = start + AUDIOCAPS_CLIP_SECONDS
            clips[key] = Clip(
                key=key, where=where, captions=[], split=split,
                clip_names=[key, f"Y{ytid}_{start:.3f}_{end:.3f}"], video_names=[f"Y{ytid}", ytid],
                start=start, end=end, extra={"youtube_id": ytid, "start_time": start, "audiocap_ids": []})
        clips[key].captions.append(caption)
        clips[key].clip_names.append(cap_id)
        clips[key].extra["audiocap_ids"].append(int(cap_id))
    return list(clips.values())


AUDIOCAPS_NAMES = ("{youtube_id}_{start_time}, Y{youtube_id}_{start:.3f}_{end:.3f}, {audiocap_id}, "
                   "Y{youtube_id}, {youtube_id}")


@CORPORA.register("audiocaps")
def prepare_audiocaps(root: str | Path, out_manifest: str | Path, *, split: str | None = None,
                      audio_dir: str | Path | None = None, per_caption: bool = False,
                      prompt: str | None = None) -> dict[str, Any]:
    """Manifest of AudioCaps (the CSVs of github.com/cdjkim/audiocaps, audio downloaded by the user).

    Args:
        root: the folder with ``train.csv``, ``val.csv``, ``test.csv`` (or ``dataset/`` with
            them); columns ``audiocap_id, youtube_id, start_time, caption``.
        out_manifest: the JSONL to write.
        split: ``train``, ``val`` or ``test``; ``None`` takes every split whose CSV is there.
        audio_dir: where the audio is (default ``root``), searched at any depth.
        per_caption: one record per caption instead of one per clip.
        prompt: written into every record when given.

    A clip is the rows sharing ``youtube_id`` and ``start_time`` (val/test have 5 captions per
    clip, train 1); its key is ``<youtube_id>_<start_time>``. File names searched, in order
    (any of the suffixes in :data:`AUDIO_SUFFIXES`): ``{youtube_id}_{start_time}`` (aac-datasets),
    ``Y{youtube_id}_{start:.3f}_{end:.3f}`` (AudioSet), ``{audiocap_id}`` (any caption of the
    clip), then ``Y{youtube_id}`` and ``{youtube_id}``, which may hold the 10 s clip or the whole
    video (then cropped at ``start_time``). ``task`` is ``aac``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such AudioCaps folder")
    clips: list[Clip] = []
    for name in split_names(split, AUDIOCAPS_SPLITS, "audiocaps"):
        candidates = [f"{name}.csv", f"dataset/{name}.csv"]
        if split is None and not any((root / rel).is_file() for rel in candidates):
            continue
        clips.extend(_audiocaps_clips(find_path(root, candidates, f"AudioCaps {name}.csv"), name))
    if not clips:
        raise CorpusError(f"{root}: no AudioCaps train.csv, val.csv or test.csv (nor in dataset/)")
    folder = Path(audio_dir) if audio_dir is not None else root
    found, lost = find_audio(clips, index_audio(folder), folder, False, "audiocaps")
    require_some(found, clips, folder, AUDIOCAPS_NAMES)
    return finish_manifest(found, lost, out_manifest, "aac", per_caption, prompt)


# --------------------------------------------------------------------------- MusicCaps


def _string_list(text: str, where: str, column: str) -> list[str]:
    """A Python-literal list of strings, as MusicCaps writes ``aspect_list``."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CorpusError(f"{where}: {column} must be a list of strings like ['pop', 'piano'], got {text[:60]!r}")
    return value


def _musiccaps_clip(row: dict[str, str], where: str) -> Clip:
    ytid = row["ytid"].strip()
    if not ytid:
        raise CorpusError(f"{where}: empty ytid")
    start, end = seconds_cell(row["start_s"], where, "start_s"), seconds_cell(row["end_s"], where, "end_s")
    if end <= start:
        raise CorpusError(f"{where}: end_s ({row['end_s']}) must be after start_s ({row['start_s']})")
    s, e = format_number(start), format_number(end)
    labels = [label.strip() for label in row["audioset_positive_labels"].split(",") if label.strip()]
    return Clip(
        key=ytid, where=where, captions=[caption_cell(row["caption"], where, "caption")],
        split="test" if flag_cell(row["is_audioset_eval"], where, "is_audioset_eval") else "train",
        clip_names=[f"[{ytid}]-[{s}-{e}]", f"{ytid}_{s}-{e}", f"{ytid}_{s}_{e}", f"Y{ytid}_{start:.3f}_{end:.3f}"],
        video_names=[f"Y{ytid}", ytid], start=start, end=end,
        extra={"ytid": ytid, "start_s": start, "end_s": end,
               "aspect_list": _string_list(row["aspect_list"], where, "aspect_list"),
               "audioset_positive_labels": labels, "author_id": row["author_id"].strip(),
               "is_balanced_subset": flag_cell(row["is_balanced_subset"], where, "is_balanced_subset")})


MUSICCAPS_NAMES = ("[{ytid}]-[{start}-{end}], {ytid}_{start}-{end}, {ytid}_{start}_{end}, "
                   "Y{ytid}_{start:.3f}_{end:.3f}, Y{ytid}, {ytid}")


@CORPORA.register("musiccaps")
def prepare_musiccaps(root: str | Path, out_manifest: str | Path, *, split: str | None = None,
                      audio_dir: str | Path | None = None, prompt: str | None = None) -> dict[str, Any]:
    """Manifest of MusicCaps (``musiccaps-public.csv`` from Kaggle / Hugging Face, audio downloaded by the user).

    Args:
        root: the folder with ``musiccaps-public.csv``, or that CSV itself.
        out_manifest: the JSONL to write.
        split: ``train`` (``is_audioset_eval`` False, 2,663 clips) or ``test`` (``eval``;
            ``is_audioset_eval`` True, 2,858 clips); ``None`` takes both.
        audio_dir: where the audio is (default: the CSV's folder), searched at any depth.
        prompt: written into every record when given.

    One caption per clip; the key is ``ytid``. File names searched, in order (any suffix of
    :data:`AUDIO_SUFFIXES`, ``start``/``end`` as integers when whole): ``[{ytid}]-[{start}-{end}]``,
    ``{ytid}_{start}-{end}``, ``{ytid}_{start}_{end}``, ``Y{ytid}_{start:.3f}_{end:.3f}``, then
    ``Y{ytid}`` and ``{ytid}``, which may hold the 10 s clip or the whole video (then cropped to
    ``start_s``–``end_s``). ``aspect_list`` and ``audioset_positive_labels`` become lists;
    ``task`` is ``mc``.
    """
    path = Path(root)
    csv_path = path if path.is_file() else find_path(path, [MUSICCAPS_CSV], "MusicCaps CSV")
    wanted = set(split_names(split, MUSICCAPS_SPLITS, "musiccaps"))
    clips: list[Clip] = []
    first: dict[str, int] = {}
    for line, row in read_csv(csv_path, MUSICCAPS_COLUMNS):
        clip = _musiccaps_clip(row, f"{csv_path}:{line}")
        if clip.key in first:
            raise CorpusError(f"{csv_path}:{line}: ytid {clip.key!r} repeats line {first[clip.key]}")
        first[clip.key] = line
        if clip.split in wanted:
            clips.append(clip)
    if not clips:
        raise CorpusError(f"{csv_path}: no clips of split {split!r}")
    folder = Path(audio_dir) if audio_dir is not None else csv_path.parent
    found, lost = find_audio(clips, index_audio(folder), folder, False, "musiccaps")
    require_some(found, clips, folder, MUSICCAPS_NAMES)
    return finish_manifest(found, lost, out_manifest, "mc", False, prompt)


# --------------------------------------------------------------------------- SECap


def _secap_transcripts(path: Path) -> dict[str, str]:
    """``{fid: transcript}`` from SECap's ``text.txt`` (``fid<space or tab>text`` lines)."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CorpusError(f"{path}: cannot read ({err})") from err
    for number, line in enumerate(lines, start=1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        if len(parts) < 2:
            raise CorpusError(f"{path}:{number}: expected `<fid> <text>`, got {line.strip()[:80]!r}")
        out[parts[0]] = parts[1].strip()
    return out


def _secap_clips(folder: Path) -> list[Clip]:
    """Clips of ``fid2captions.json`` (``{"<fid>": "<caption>", …}``), transcripts from ``text.txt``."""
    path = folder / SECAP_CAPTIONS
    try:
        captions = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorpusError(f"{path}: cannot read JSON ({err})") from err
    if not isinstance(captions, dict) or not captions:
        raise CorpusError(f"{path}: expected a JSON object {{fid: caption}}")
    transcripts = _secap_transcripts(folder / "text.txt") if (folder / "text.txt").is_file() else {}
    clips = []
    for fid, caption in captions.items():
        where = f"{path}: entry {fid!r}"
        if not isinstance(caption, str):
            raise CorpusError(f"{where}: caption must be a string, got {type(caption).__name__}")
        extra = {"transcript": transcripts[fid]} if fid in transcripts else {}
        clips.append(Clip(key=fid, where=where, captions=[caption_cell(caption, where, "caption")], split="test",
                          clip_names=[fid], extra=extra))
    return clips


@CORPORA.register("secap")
def prepare_secap(root: str | Path, out_manifest: str | Path, *, split: str | None = None,
                  prompt: str | None = None) -> dict[str, Any]:
    """Manifest of the SECap speech-emotion-captioning test set (github.com/thuhcsi/SECap, ``dataset/``).

    Args:
        root: the SECap checkout or its ``dataset/`` folder: ``fid2captions.json`` (one Mandarin
            emotion caption per clip), ``wav/<fid>.wav`` and ``text.txt`` (``<fid> <transcript>``
            lines, optional; kept as ``transcript``).
        out_manifest: the JSONL to write.
        split: only ``test`` exists (600 clips); ``None`` means it too.
        prompt: written into every record when given (SECap prompts in Mandarin).

    Keys are the fids; ``task`` is ``sec``.
    """
    split_names(split, {"test": ("test", "eval")}, "secap")
    base = Path(root)
    folder = base / "dataset" if (base / "dataset" / SECAP_CAPTIONS).is_file() else base
    if not (folder / SECAP_CAPTIONS).is_file():
        raise CorpusError(f"{base}: no {SECAP_CAPTIONS} (nor dataset/{SECAP_CAPTIONS}); is this the SECap repository?")
    audio = find_path(folder, ["wav"], "SECap wav/ folder", need_dir=True)
    found, lost = find_audio(_secap_clips(folder), index_audio(audio), audio, True, "secap")
    return finish_manifest(found, lost, out_manifest, "sec", False, prompt)
