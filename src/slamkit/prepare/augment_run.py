"""``slamkit prepare augment``: write augmented copies of a manifest's clips and their manifest.

Every usable clip is loaded once (16 kHz mono, its crop applied) and rendered ``copies`` times through the
chain of :mod:`slamkit.prepare.augment`. A copy becomes ``DIR/wav/<xx>/<key>~aug<i>.wav`` (16-bit PCM;
``<xx>`` two hex digits of a hash of the key, so no folder holds millions of files) and a manifest line
that keeps every field of the input line, with

- ``key`` = ``<key>~aug<i>``, ``source`` = the new file (relative to ``DIR``), no ``offset``, ``duration`` =
  the new length (``speed`` changes it);
- ``augment`` = what was applied, e.g. ``{"room": {"rt60": 0.41, …}, "noise": {"kind": "moh", "snr_db": 11.2, …}}``.

A copy on which no kind was drawn (probability ∏(1 − p)) writes no file: its line points at the input
audio (with its crop) and has ``"augment": {}``. With ``keep_clean`` the input line itself comes first.

Bad manifest lines and clips whose audio cannot be loaded are skipped with a warning naming ``file:line``
and counted by reason in the summary. Work is spread over processes; the output does not depend on how
many (each copy is seeded by the run seed, its key and its index).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from slamkit.data.audio import AudioError, load_audio
from slamkit.data.manifest import ManifestError, Record, scan_manifest, write_manifest
from slamkit.data.skips import Skip, count_by_reason
from slamkit.prepare.augment import DEFAULT_SPEC, Clip, Plan, SetupContext, augment_clip, build_plan
from slamkit.prepare.augment_base import SAMPLE_RATE
from slamkit.prepare.base import default_workers, ordered_map

logger = logging.getLogger(__name__)

WAV_DIR = "wav"
# Characters kept as they are in file names; any other makes the name a sanitised one plus a hash.
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class RenderJob:
    """What every clip of a run shares: the plan, where to write, how many copies, whether to keep the clean line."""

    plan: Plan
    out_dir: Path
    copies: int
    keep_clean: bool


@dataclass
class ClipResult:
    """What rendering one clip gave: its manifest lines, or the skip that replaced them, and counts."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    skip: Skip | None = None
    files: int = 0
    seconds_in: float = 0.0
    seconds_out: float = 0.0
    applied: Counter = field(default_factory=Counter)


@dataclass
class Totals:
    """A run's results so far: the manifest lines in input order, and what the summary counts."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    failed: int = 0
    seconds_in: float = 0.0
    seconds_out: float = 0.0
    applied: Counter = field(default_factory=Counter)

    def add(self, result: ClipResult) -> None:
        """Count one clip's result (a skipped clip only as failed)."""
        if result.skip is not None:
            self.failed += 1
            return
        self.lines.extend(result.lines)
        self.applied.update(result.applied)
        self.files += result.files
        self.seconds_in += result.seconds_in
        self.seconds_out += result.seconds_out


def file_stem(key: str) -> tuple[str, str]:
    """``(shard, stem)`` of a key's files: a two-hex-digit folder and a file-system-safe name (a key with
    other characters than ``[A-Za-z0-9._-]`` gets them replaced and a short hash added, so names stay unique)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()
    safe = _SAFE.sub("_", key)
    return digest[:2], safe if safe == key and not key.startswith(".") else f"{safe.lstrip('.')}-{digest[2:10]}"


def write_wav(path: Path, wave: np.ndarray) -> None:
    """16-bit PCM mono WAV at 16 kHz, written to a temp name and renamed (no half file under the real name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_line(record: Record, copy: int, wave: np.ndarray, info: dict[str, Any], out_dir: Path) -> tuple[dict[str, Any], bool]:
    """The manifest line of one copy (and whether a file was written for it)."""
    line = record.to_json()
    line["key"] = f"{record.key}~aug{copy}"
    line["augment"] = info
    if not info:
        return line, False
    shard, stem = file_stem(record.key)
    relative = Path(WAV_DIR) / shard / f"{stem}~aug{copy}.wav"
    write_wav(out_dir / relative, wave)
    line.pop("offset", None)
    line["source"] = relative.as_posix()
    line["duration"] = round(len(wave) / SAMPLE_RATE, 3)
    return line, True


def render_clip(item: tuple[int, Record], job: RenderJob) -> ClipResult:
    """Load one clip and write its augmented copies; an unusable clip gives a :class:`ClipResult` with a skip."""
    index, record = item
    try:
        wave = load_audio(record.source, SAMPLE_RATE, record.offset, record.duration)
    except AudioError as err:
        return ClipResult(skip=Skip(record.where, err.reason, str(err), record.key))
    result = ClipResult(seconds_in=len(wave) / SAMPLE_RATE)
    if job.keep_clean:
        result.lines.append(record.to_json())
    for copy in range(1, job.copies + 1):
        out, info = augment_clip(wave, job.plan, Clip(index, record.key), copy)
        line, written = _copy_line(record, copy, out, info, job.out_dir)
        result.lines.append(line)
        result.files += written
        result.seconds_out += len(out) / SAMPLE_RATE
        result.applied.update(info.keys())
    return result


def _render_all(records: Sequence[Record], job: RenderJob, workers: int) -> Iterator[ClipResult]:
    """:func:`render_clip` over ``records`` in order, in this process (``workers`` 1) or a process pool."""
    items = list(enumerate(records))
    return ordered_map(partial(render_clip, job=job), items, workers, "augment", "clip",
                       chunksize=max(1, min(16, len(items) // (4 * max(workers, 1)))))


def _warn(skip: Skip, label: str = "augment") -> None:
    logger.warning("%s: skipping %s [%s]", label, skip.message, skip.reason)


def scan_input(manifest: Path, workers: int | None, label: str) -> tuple[list[Record], list[Skip]]:
    """A preparer's input: the manifest's records and skipped lines (each warned about, naming ``file:line``);
    ``workers`` checked first."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    records, skips = scan_manifest(manifest)
    for skip in skips:
        _warn(skip, label)
    return records, skips


def prepare_augment(manifest: str | Path, out_dir: str | Path, spec: str = DEFAULT_SPEC, copies: int = 1,
                    keep_clean: bool = False, seed: int = 0, workers: int | None = None, params: Sequence[str] = (),
                    name: str | None = None, install: bool = False) -> dict[str, Any]:
    """Write augmented copies of ``manifest``'s clips into ``out_dir`` and their manifest ``out_dir/NAME.jsonl``.

    Args:
        manifest: input JSONL manifest.
        out_dir: output folder (``wav/`` and the manifest go here).
        spec: ``"room:0.3,noise:0.5,…"``, the probability of each kind per copy.
        copies: augmented copies per clip (>= 1).
        keep_clean: also write each input line, unchanged, before its copies.
        seed: run seed; with the manifest it fixes every draw.
        workers: processes (default: all usable cores).
        params: ``KIND.NAME=VALUE`` options (:func:`slamkit.prepare.augment.params_help`).
        name: manifest name (default: the input's stem).
        install: install missing noise assets instead of leaving their sources out.

    Returns:
        The summary the CLI prints: manifest, clips, lines, files, hours in and out, kinds applied, skips.

    Raises:
        ValueError: bad ``copies`` or ``workers``; AugmentSpecError / AugmentSetupError (ValueErrors) for a
            bad spec or a kind that cannot run; ManifestError when the manifest has no usable line.
    """
    if copies < 1:
        raise ValueError(f"--copies must be >= 1, got {copies}")
    start = time.perf_counter()
    manifest, out = Path(manifest), Path(out_dir)
    records, skips = scan_input(manifest, workers, "augment")
    if not records:
        raise ManifestError(f"{manifest}: no usable line ({len(skips)} skipped)")
    target = out / f"{name or manifest.stem}.jsonl"
    if target.resolve() == manifest.resolve():
        raise ValueError(f"{target}: the output manifest would overwrite the input; pass --name or another --out")
    plan = build_plan(spec, params, SetupContext(seed=seed, manifest=manifest, clips=len(records), install=install))
    totals = Totals()
    for result in _render_all(records, RenderJob(plan, out, copies, keep_clean), workers or default_workers()):
        if result.skip is not None:
            _warn(result.skip)
            skips.append(result.skip)
        totals.add(result)
    write_manifest(totals.lines, target)
    return {"manifest": str(target), "spec": plan.spec, "seed": seed, "copies": copies, "keep_clean": keep_clean,
            "clips": len(records) - totals.failed, "lines": len(totals.lines), "files": totals.files,
            "hours_in": round(totals.seconds_in / 3600, 4), "hours_out": round(totals.seconds_out / 3600, 4),
            "applied": {s.name: totals.applied[s.name] for s in plan.steps}, "skipped": len(skips),
            "skipped_by_reason": count_by_reason(skips), "seconds": round(time.perf_counter() - start, 2)}

