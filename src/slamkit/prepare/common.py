"""Shared machinery for preparing captioning corpora from their official layouts.

Clips read from CSV/JSON rows (:class:`Clip`), audio found by name below a folder
(:func:`index_audio`, :func:`find_audio`, cropping whole videos to the clip), cell parsers that name
``file:line`` on bad input, and :func:`finish_manifest`, which writes the manifest, the list of
missing clips and the summary dict. The corpora themselves are in :mod:`slamkit.prepare.captions`.
"""

from __future__ import annotations

import csv
import logging
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.audio import AudioError, audio_info
from slamkit.data.manifest import write_manifest
from slamkit.prepare.base import CorpusError

logger = logging.getLogger(__name__)

# Suffixes indexed as audio (two files with the same name and different suffixes are an error).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
# A file longer than its clip by more than this (seconds) is taken as the whole video.
CLIP_TOLERANCE = 0.5


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


def split_names(split: str | None, splits: dict[str, tuple[str, ...]], corpus: str) -> list[str]:
    """Canonical split names asked for: all of them for ``None``, else the one ``split`` names."""
    if split is None:
        return list(splits)
    for name, aliases in splits.items():
        if split.lower() in aliases:
            return [name]
    valid = ", ".join(alias for aliases in splits.values() for alias in aliases)
    raise CorpusError(f"{corpus}: unknown split {split!r} (valid: {valid})")


def read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
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


def caption_cell(text: str, where: str, column: str) -> str:
    """``text`` with whitespace normalised; an empty caption is an error naming ``where``."""
    caption = " ".join(text.split())
    if not caption:
        raise CorpusError(f"{where}: empty {column}")
    return caption


def seconds_cell(text: str, where: str, column: str) -> float:
    """A time in seconds from a CSV cell (a non-negative number)."""
    try:
        value = float(text)
    except ValueError:
        raise CorpusError(f"{where}: {column} must be a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise CorpusError(f"{where}: {column} must be >= 0, got {text!r}")
    return value


def flag_cell(text: str, where: str, column: str) -> bool:
    """A boolean CSV cell (``True``/``False``, ``1``/``0``, any case)."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise CorpusError(f"{where}: {column} must be True or False, got {text!r}")
    return value in ("true", "1")


def format_number(value: float) -> str:
    """Seconds as file names write them: ``30`` for 30.0, ``30.5`` otherwise."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def find_path(root: Path, candidates: Sequence[str], what: str, need_dir: bool = False) -> Path:
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


def finish_manifest(found: list[Found], lost: dict[str, list[str]], out_manifest: str | Path, task: str,
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


def require_some(found: Sequence[Found], clips: Sequence[Clip], folder: Path, names: str) -> None:
    if clips and not found:
        raise CorpusError(f"{folder}: none of the {len(clips)} clips has audio here (file names searched: {names})")
