"""Captioning corpora (Clotho, AudioCaps, MusicCaps, SECap) from their official layouts to JSONL.

Each ``prepare_<name>(root, out_manifest, *, split=None, ...)`` is registered in
:data:`slamkit.data.prepare.CORPORA`, writes our manifest and returns a summary dict (manifest,
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
:class:`~slamkit.data.prepare.CorpusError` naming ``file:line``.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.audio import AudioError, audio_info
from slamkit.data.manifest import write_manifest
from slamkit.data.prepare import CORPORA, CorpusError

logger = logging.getLogger(__name__)

# Suffixes indexed as audio (two files with the same name and different suffixes are an error).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
# A file longer than its clip by more than this (seconds) is taken as the whole video.
CLIP_TOLERANCE = 0.5
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


@dataclass
class Clip:
    """One clip before its audio is found: ``where`` (``file:line``) names it in errors;
    ``clip_names`` are file names (no suffix) of a file holding just the clip, ``video_names`` of
    one that may hold the whole video, where the clip spans ``start``..``end`` seconds; ``extra``
    goes into the record as it is."""

    key: str
    where: str
    captions: list[str]
    split: str
    clip_names: list[str]
    video_names: list[str] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading files


def _split_names(split: str | None, splits: dict[str, tuple[str, ...]], corpus: str) -> list[str]:
    """Canonical split names asked for: all of them for ``None``, else the one ``split`` names."""
    if split is None:
        return list(splits)
    for name, aliases in splits.items():
        if split.lower() in aliases:
            return [name]
    valid = ", ".join(alias for aliases in splits.values() for alias in aliases)
    raise CorpusError(f"{corpus}: unknown split {split!r} (valid: {valid})")


def _read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for each row of a CSV with a header that has the ``required`` columns.

    Raises:
        CorpusError: unreadable file, missing column, or a row with too few or too many fields,
            named as ``file:line`` (``line`` is the row's last physical line).
    """
    line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in required if name not in header]
            if missing:
                raise CorpusError(f"{path}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
            reader.fieldnames = header
            for row in reader:
                if None in row:
                    raise CorpusError(f"{path}:{reader.line_num}: more fields than the header has")
                absent = [name for name in required if row.get(name) is None]
                if absent:
                    raise CorpusError(f"{path}:{reader.line_num}: row has no value for {', '.join(absent)}")
                line = reader.line_num
                yield line, row
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CorpusError(f"{path}: cannot read CSV after line {line} ({err})") from err


def _caption(text: str, where: str, column: str) -> str:
    """``text`` with whitespace normalised; an empty caption is an error naming ``where``."""
    caption = " ".join(text.split())
    if not caption:
        raise CorpusError(f"{where}: empty {column}")
    return caption


def _seconds(text: str, where: str, column: str) -> float:
    """A time in seconds from a CSV cell (a non-negative number)."""
    try:
        value = float(text)
    except ValueError:
        raise CorpusError(f"{where}: {column} must be a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise CorpusError(f"{where}: {column} must be >= 0, got {text!r}")
    return value


def _flag(text: str, where: str, column: str) -> bool:
    """A boolean CSV cell (``True``/``False``, ``1``/``0``, any case)."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise CorpusError(f"{where}: {column} must be True or False, got {text!r}")
    return value in ("true", "1")


def _num(value: float) -> str:
    """Seconds as file names write them: ``30`` for 30.0, ``30.5`` otherwise."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _find(root: Path, candidates: Sequence[str], what: str, need_dir: bool = False) -> Path:
    """The first of ``root/<candidate>`` that exists (as a folder when ``need_dir``)."""
    for rel in candidates:
        path = root / rel
        if (path.is_dir() if need_dir else path.is_file()):
            return path
    raise CorpusError(f"{root}: no {what} (looked for {', '.join(candidates)})")


# --------------------------------------------------------------------------- finding audio


def _norm(name: str) -> str:
    """Unicode-normalised file name, so names extracted on macOS (NFD) still match the CSV (NFC)."""
    return unicodedata.normalize("NFC", name)


def index_audio(folder: str | Path) -> dict[str, Path]:
    """``{name without suffix: path}`` for every audio file below ``folder`` (any depth).

    Raises:
        CorpusError: ``folder`` is not a folder, or two audio files share a name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such audio folder")
    index: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        name = _norm(path.stem)
        if name in index:
            raise CorpusError(f"two audio files named {name!r}: {index[name]} and {path}; keep one")
        index[name] = path
    return index


def _header_seconds(path: Path) -> float | None:
    """Length of an audio file from its header; ``None`` when the header cannot be read."""
    try:
        rate, frames = audio_info(path)
    except AudioError as err:
        logger.warning("unreadable audio: %s", err)
        return None
    return round(frames / rate, 3)


def _place(clip: Clip, path: Path, seconds: float, whole_video: bool) -> tuple[float, float] | None:
    """``(offset, duration)`` of ``clip`` in ``path``; ``None`` when a whole video ends before the clip."""
    length = clip.end - clip.start
    if not whole_video or seconds <= length + CLIP_TOLERANCE:
        return 0.0, seconds
    if seconds <= clip.start:
        return None
    return clip.start, round(min(clip.end, seconds) - clip.start, 3)


@dataclass
class Found:
    """A clip with its audio: the file and the crop to read from it."""

    clip: Clip
    path: Path
    offset: float
    duration: float


def _locate(clip: Clip, index: dict[str, Path]) -> tuple[Path, bool] | None:
    """The file of ``clip`` and whether it may be the whole video; ``None`` when not found."""
    for names, whole in ((clip.clip_names, False), (clip.video_names, True)):
        for name in names:
            if _norm(name) in index:
                return index[_norm(name)], whole
    return None


def find_audio(clips: Sequence[Clip], index: dict[str, Path], folder: Path, strict: bool,
               desc: str) -> tuple[list[Found], dict[str, list[str]]]:
    """Find every clip's file and read its length (with a progress bar).

    Returns the clips found and ``{"missing" | "unreadable" | "too_short": [keys]}``. With
    ``strict`` (corpora that ship their audio) a missing or unreadable file is an error.
    """
    found: list[Found] = []
    lost: dict[str, list[str]] = {"missing": [], "unreadable": [], "too_short": []}
    for clip in tqdm(clips, desc=desc, unit="clip", disable=None):
        hit = _locate(clip, index)
        if hit is None:
            if strict:
                raise CorpusError(f"{clip.where}: no audio file {' or '.join(clip.clip_names)}.* in {folder}")
            lost["missing"].append(clip.key)
            continue
        path, whole = hit
        seconds = _header_seconds(path)
        if seconds is None or seconds <= 0:
            if strict:
                raise CorpusError(f"{clip.where}: unreadable or empty audio file {path}")
            lost["unreadable"].append(clip.key)
            continue
        crop = _place(clip, path, seconds, whole)
        if crop is None:
            lost["too_short"].append(clip.key)
            continue
        found.append(Found(clip, path.absolute(), *crop))
    return found, lost


# --------------------------------------------------------------------------- writing


def _records(found: Sequence[Found], task: str, per_caption: bool, prompt: str | None) -> list[dict[str, Any]]:
    """Manifest lines: one per clip (target = first caption) or one per caption."""
    records = []
    for item in found:
        clip = item.clip
        targets = list(enumerate(clip.captions, start=1)) if per_caption else [(0, clip.captions[0])]
        for number, target in targets:
            record: dict[str, Any] = {"key": f"{clip.key}#{number}" if number else clip.key,
                                      "source": str(item.path), "target": target, "task": task}
            if prompt is not None:
                record["prompt"] = prompt
            if item.offset:
                record["offset"] = item.offset
            record["duration"] = item.duration
            record.update(references=list(clip.captions), split=clip.split, **clip.extra)
            records.append(record)
    return records


def _check_keys(found: Sequence[Found]) -> None:
    """Clip keys must be unique: clips of different splits may share a name."""
    seen: dict[str, str] = {}
    for item in found:
        clip = item.clip
        if clip.key in seen:
            raise CorpusError(f"{clip.where}: key {clip.key!r} is already used by {seen[clip.key]} "
                              "(prepare these splits into separate manifests)")
        seen[clip.key] = clip.where


def _finish(found: list[Found], lost: dict[str, list[str]], out_manifest: str | Path, task: str,
            per_caption: bool, prompt: str | None) -> dict[str, Any]:
    """Write the manifest (and ``<manifest>.missing.txt``) and return the summary."""
    manifest = Path(out_manifest)
    _check_keys(found)
    records = _records(found, task, per_caption, prompt)
    write_manifest(records, manifest)
    splits: dict[str, int] = {}
    for item in found:
        splits[item.clip.split] = splits.get(item.clip.split, 0) + 1
    summary: dict[str, Any] = {
        "manifest": str(manifest), "records": len(records), "clips": len(found),
        "captions": sum(len(item.clip.captions) for item in found),
        "missing_audio": len(lost["missing"]),
        "hours": round(sum(item.duration for item in found) / 3600, 3), "splits": splits,
    }
    summary.update({name: len(keys) for name, keys in lost.items() if name != "missing" and keys})
    absent = [key for keys in lost.values() for key in keys]
    if absent:
        listing = manifest.with_name(manifest.name + ".missing.txt")
        listing.write_text("".join(f"{key}\n" for key in absent), encoding="utf-8")
        summary["missing_list"] = str(listing)
        logger.warning("%d clips have no usable audio (listed in %s)", len(absent), listing)
    logger.info("wrote %s: %d clips, %d records, %.2f h", manifest, len(found), len(records), summary["hours"])
    return summary


def _require_some(found: Sequence[Found], clips: Sequence[Clip], folder: Path, names: str) -> None:
    if clips and not found:
        raise CorpusError(f"{folder}: none of the {len(clips)} clips has audio here (file names searched: {names})")


# --------------------------------------------------------------------------- Clotho


def _clotho_clips(csv_path: Path, split: str) -> list[Clip]:
    """Clips of ``clotho_captions_<split>.csv`` (``file_name, caption_1 … caption_5``)."""
    clips: list[Clip] = []
    first: dict[str, int] = {}
    for line, row in _read_csv(csv_path, ("file_name",) + CLOTHO_CAPTIONS):
        where = f"{csv_path}:{line}"
        name = row["file_name"].strip()
        if not name:
            raise CorpusError(f"{where}: empty file_name")
        if name in first:
            raise CorpusError(f"{where}: file_name {name!r} repeats line {first[name]}")
        first[name] = line
        captions = [_caption(row[column], where, column) for column in CLOTHO_CAPTIONS]
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
    wanted = _split_names(split, CLOTHO_SPLITS, "clotho")
    found: list[Found] = []
    lost: dict[str, list[str]] = {"missing": [], "unreadable": [], "too_short": []}
    for name in wanted:
        csv_names = [f"clotho_captions_{name}.csv", f"clotho_csv_files/clotho_captions_{name}.csv"]
        if split is None and not any((root / rel).is_file() for rel in csv_names):
            continue
        csv_path = _find(root, csv_names, f"Clotho {name} captions")
        audio = _find(root, [name, f"clotho_audio_{name}/{name}", f"clotho_audio_{name}",
                             f"clotho_audio_files/{name}", f"audio/{name}"], f"Clotho {name} audio folder", True)
        part, _ = find_audio(_clotho_clips(csv_path, name), index_audio(audio), audio, True, f"clotho {name}")
        found.extend(part)
    if not found:
        raise CorpusError(f"{root}: no clotho_captions_<split>.csv for {', '.join(wanted)}")
    return _finish(found, lost, out_manifest, "aac", per_caption, prompt)


# --------------------------------------------------------------------------- AudioCaps


def _audiocaps_clips(csv_path: Path, split: str) -> list[Clip]:
    """Clips of an AudioCaps CSV: rows of the same ``youtube_id`` and ``start_time`` are one clip."""
    clips: dict[str, Clip] = {}
    for line, row in _read_csv(csv_path, AUDIOCAPS_COLUMNS):
        where = f"{csv_path}:{line}"
        ytid, cap_id = row["youtube_id"].strip(), row["audiocap_id"].strip()
        if not ytid:
            raise CorpusError(f"{where}: empty youtube_id")
        if not cap_id.isdigit():
            raise CorpusError(f"{where}: audiocap_id must be an integer, got {cap_id!r}")
        start = _seconds(row["start_time"], where, "start_time")
        caption = _caption(row["caption"], where, "caption")
        key = f"{ytid}_{_num(start)}"
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
    for name in _split_names(split, AUDIOCAPS_SPLITS, "audiocaps"):
        candidates = [f"{name}.csv", f"dataset/{name}.csv"]
        if split is None and not any((root / rel).is_file() for rel in candidates):
            continue
        clips.extend(_audiocaps_clips(_find(root, candidates, f"AudioCaps {name}.csv"), name))
    if not clips:
        raise CorpusError(f"{root}: no AudioCaps train.csv, val.csv or test.csv (nor in dataset/)")
    folder = Path(audio_dir) if audio_dir is not None else root
    found, lost = find_audio(clips, index_audio(folder), folder, False, "audiocaps")
    _require_some(found, clips, folder, AUDIOCAPS_NAMES)
    return _finish(found, lost, out_manifest, "aac", per_caption, prompt)


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
    start, end = _seconds(row["start_s"], where, "start_s"), _seconds(row["end_s"], where, "end_s")
    if end <= start:
        raise CorpusError(f"{where}: end_s ({row['end_s']}) must be after start_s ({row['start_s']})")
    s, e = _num(start), _num(end)
    labels = [label.strip() for label in row["audioset_positive_labels"].split(",") if label.strip()]
    return Clip(
        key=ytid, where=where, captions=[_caption(row["caption"], where, "caption")],
        split="test" if _flag(row["is_audioset_eval"], where, "is_audioset_eval") else "train",
        clip_names=[f"[{ytid}]-[{s}-{e}]", f"{ytid}_{s}-{e}", f"{ytid}_{s}_{e}", f"Y{ytid}_{start:.3f}_{end:.3f}"],
        video_names=[f"Y{ytid}", ytid], start=start, end=end,
        extra={"ytid": ytid, "start_s": start, "end_s": end,
               "aspect_list": _string_list(row["aspect_list"], where, "aspect_list"),
               "audioset_positive_labels": labels, "author_id": row["author_id"].strip(),
               "is_balanced_subset": _flag(row["is_balanced_subset"], where, "is_balanced_subset")})


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
    csv_path = path if path.is_file() else _find(path, [MUSICCAPS_CSV], "MusicCaps CSV")
    wanted = set(_split_names(split, MUSICCAPS_SPLITS, "musiccaps"))
    clips: list[Clip] = []
    first: dict[str, int] = {}
    for line, row in _read_csv(csv_path, MUSICCAPS_COLUMNS):
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
    _require_some(found, clips, folder, MUSICCAPS_NAMES)
    return _finish(found, lost, out_manifest, "mc", False, prompt)


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
        clips.append(Clip(key=fid, where=where, captions=[_caption(caption, where, "caption")], split="test",
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
    _split_names(split, {"test": ("test", "eval")}, "secap")
    base = Path(root)
    folder = base / "dataset" if (base / "dataset" / SECAP_CAPTIONS).is_file() else base
    if not (folder / SECAP_CAPTIONS).is_file():
        raise CorpusError(f"{base}: no {SECAP_CAPTIONS} (nor dataset/{SECAP_CAPTIONS}); is this the SECap repository?")
    audio = _find(folder, ["wav"], "SECap wav/ folder", need_dir=True)
    found, lost = find_audio(_secap_clips(folder), index_audio(audio), audio, True, "secap")
    return _finish(found, lost, out_manifest, "sec", False, prompt)
