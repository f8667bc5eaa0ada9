"""``slamkit prepare concat``: clips joined into longer ones with pauses, for segments that hold several sentences.

A model trained on single utterances learns to write one sentence per input. Long-form decoding
(docs/longform.md) hands it segments that hold two or three: ``decode.segment=vad`` merges neighbouring
speech spans up to ``decode.max_segment_seconds``. This writes clips made of ``join`` random input clips
(a count drawn from ``MIN-MAX``) with a pause of random length between them and random silence before and
after. The target is the input targets joined by a space. Whether this helps is measured in docs/longform.md
(a short run: lower synthetic validation loss, but more insertions on real single prompts).

A joined clip becomes ``DIR/wav/<xx>/cat<i>.wav`` (16 kHz, 16-bit PCM) and a manifest line::

    {"key": "cat000012", "source": "wav/3f/cat000012.wav", "target": "First one. Second one.",
     "duration": 5.83, "concat": {"keys": ["a", "b"], "pauses": [0.42], "lead": 0.11, "tail": 0.3}}

``task`` and ``prompt`` are kept when every joined clip has the same. The silences are digital zeros. Run
``slamkit prepare augment`` on the output to put rooms and noise over the whole clip, pauses included.

Input clips are drawn without replacement (a fresh shuffle once all are used), so ``count`` joined clips
from N inputs use each input about ``count × mean(join) / N`` times. A group longer than ``max_seconds``
is dropped and counted. A clip whose audio cannot be loaded is skipped with one warning naming ``file:line``,
and every group that drew it is dropped (counted as ``unusable``). The output depends on the seed and the manifest, not on ``workers``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from slamkit.data.audio import AudioError, load_audio
from slamkit.data.manifest import ManifestError, Record, write_manifest
from slamkit.data.skips import Skip, count_by_reason
from slamkit.prepare.augment_base import SAMPLE_RATE
from slamkit.prepare.augment_run import WAV_DIR, file_stem, scan_input, write_wav
from slamkit.prepare.base import default_workers, ordered_map

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConcatOptions:
    """How clips are joined: clips per output (``join`` = (min, max)), pause between them, silence at each edge
    (seconds, (low, high) drawn uniformly), and the longest output kept."""

    join: tuple[int, int] = (2, 3)
    pause: tuple[float, float] = (0.1, 1.0)
    edge: tuple[float, float] = (0.0, 0.5)
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if not 2 <= self.join[0] <= self.join[1]:
            raise ValueError(f"--join must be N or MIN-MAX with 2 <= MIN <= MAX, got {self.join}")
        for name in ("pause", "edge"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"--{name} must be LOW,HIGH seconds with 0 <= LOW <= HIGH, got {low},{high}")
        if self.max_seconds <= 0:
            raise ValueError(f"--max-seconds must be > 0, got {self.max_seconds}")


@dataclass(frozen=True)
class Group:
    """One output clip to make: its index, the input records in order, and the silences drawn for it."""

    index: int
    records: tuple[Record, ...]
    pauses: tuple[float, ...]
    lead: float
    tail: float


@dataclass
class GroupResult:
    """A group's manifest line, or why it was dropped (a skip, or ``too_long``)."""

    line: dict[str, Any] | None = None
    skip: Skip | None = None
    too_long: bool = False
    seconds: float = 0.0


def _pair(text: str, sep: str, kind: type, message: str) -> tuple:
    """``"A{sep}B"`` → (A, B) and ``"A"`` → (A, A), as ``kind``; anything else raises ``message``."""
    try:
        parts = [kind(p) for p in text.split(sep)]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ValueError(f"{message}, got {text!r}")
    return parts[0], parts[-1]


def parse_join(text: str) -> tuple[int, int]:
    """``"2"`` → (2, 2); ``"2-3"`` → (2, 3)."""
    return _pair(text, "-", int, "--join must be N or MIN-MAX (e.g. 2-3)")


def parse_range(text: str, name: str) -> tuple[float, float]:
    """``"0.1,1.0"`` → (0.1, 1.0); one number means a fixed value."""
    return _pair(text, ",", float, f"--{name} must be LOW,HIGH seconds (e.g. 0.1,1.0)")


def _take(pool: list[int], chosen: list[int], n: int, rng: random.Random) -> int:
    """The last index in ``pool`` not in ``chosen``, removed; a fresh shuffle of ``range(n)`` is put in front
    when none is left."""
    for pos in range(len(pool) - 1, -1, -1):
        if pool[pos] not in chosen:
            return pool.pop(pos)
    fresh = list(range(n))
    rng.shuffle(fresh)
    pool[:0] = fresh
    return _take(pool, chosen, n, rng)


def plan_groups(records: Sequence[Record], count: int, opts: ConcatOptions, seed: int) -> list[Group]:
    """``count`` groups drawn from ``records`` by a seeded shuffle (refilled when used up) with their silences."""
    if len(records) < opts.join[1]:
        raise ValueError(f"--join {opts.join[0]}-{opts.join[1]} needs at least {opts.join[1]} clips, the manifest has {len(records)}")
    rng = random.Random(seed)
    pool: list[int] = []
    groups = []
    for index in range(count):
        size = rng.randint(*opts.join)
        chosen: list[int] = []
        while len(chosen) < size:
            chosen.append(_take(pool, chosen, len(records), rng))
        pauses = tuple(round(rng.uniform(*opts.pause), 3) for _ in range(size - 1))
        lead, tail = (round(rng.uniform(*opts.edge), 3) for _ in range(2))
        groups.append(Group(index, tuple(records[i] for i in chosen), pauses, lead, tail))
    return groups


def _shared(records: Sequence[Record], name: str) -> Any:
    """The value of field ``name`` when every record has the same one, else None."""
    values = {getattr(r, name) for r in records}
    return values.pop() if len(values) == 1 else None


def render_group(group: Group, out_dir: Path, max_seconds: float) -> GroupResult:
    """Load the group's clips, join them with their silences and write the WAV; a clip that cannot be loaded
    gives a result with its skip, a join longer than ``max_seconds`` one with ``too_long``."""
    waves = []
    for record in group.records:
        try:
            waves.append(load_audio(record.source, SAMPLE_RATE, record.offset, record.duration))
        except AudioError as err:
            return GroupResult(skip=Skip(record.where, err.reason, str(err), record.key))
    seconds = sum(len(w) for w in waves) / SAMPLE_RATE + group.lead + sum(group.pauses) + group.tail
    if seconds > max_seconds:
        return GroupResult(too_long=True)
    parts = [np.zeros(round(group.lead * SAMPLE_RATE), dtype=np.float32)]
    for wave, gap in zip(waves, [*group.pauses, group.tail]):
        parts += [wave.astype(np.float32), np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32)]
    joined = np.concatenate(parts)
    key = f"cat{group.index:06d}"
    shard, stem = file_stem(key)
    relative = Path(WAV_DIR) / shard / f"{stem}.wav"
    write_wav(out_dir / relative, joined)
    line: dict[str, Any] = {"key": key, "source": relative.as_posix(),
                            "target": " ".join(r.target.strip() for r in group.records),
                            "duration": round(len(joined) / SAMPLE_RATE, 3)}
    for name in ("task", "prompt"):
        if (value := _shared(group.records, name)) is not None:
            line[name] = value
    line["concat"] = {"keys": [r.key for r in group.records], "pauses": list(group.pauses),
                      "lead": group.lead, "tail": group.tail}
    return GroupResult(line=line, seconds=len(joined) / SAMPLE_RATE)


def prepare_concat(manifest: str | Path, out_dir: str | Path, count: int | None = None,
                   options: ConcatOptions = ConcatOptions(), seed: int = 0, workers: int | None = None,
                   name: str | None = None) -> dict[str, Any]:
    """Write ``count`` joined clips of ``manifest``'s clips into ``out_dir`` and their manifest ``out_dir/NAME.jsonl``.

    Args:
        manifest: input JSONL manifest (speech clips with their targets).
        out_dir: output folder (``wav/`` and the manifest go here).
        count: joined clips to draw (default: as many as use each input clip once on average).
        options: clips per output, pauses, edge silence, longest output.
        seed: fixes every draw.
        workers: processes (default: all usable cores).
        name: manifest name without ``.jsonl`` (default ``concat``).

    Returns:
        The summary the CLI prints: manifest, lines, hours, drawn, dropped (too long, unusable audio), skips.

    Raises:
        ValueError: bad ``count`` or ``workers``; ManifestError when the manifest has no usable line, or the
            output manifest would overwrite the input.
    """
    if count is not None and count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    start = time.perf_counter()
    manifest, out = Path(manifest), Path(out_dir)
    records, skips = scan_input(manifest, workers, "concat")
    records = [r for r in records if not r.is_text]
    if not records:
        raise ManifestError(f"{manifest}: no usable audio line ({len(skips)} skipped)")
    target = out / f"{name or 'concat'}.jsonl"
    if target.resolve() == manifest.resolve():
        raise ManifestError(f"{target}: the output manifest would overwrite the input; pass --name or another --out")
    if count is None:
        count = max(1, round(2 * len(records) / sum(options.join)))
    groups = plan_groups(records, count, options, seed)
    lines, too_long, unusable, seconds = [], 0, 0, 0.0
    bad_keys: set[str | None] = set()
    workers = workers or default_workers()
    for result in ordered_map(partial(render_group, out_dir=out, max_seconds=options.max_seconds), groups, workers,
                              "concat", "clip", chunksize=max(1, min(16, len(groups) // (4 * workers)))):
        if result.skip is not None:
            unusable += 1
            if result.skip.key not in bad_keys:  # a bad clip drawn into several groups is reported once
                bad_keys.add(result.skip.key)
                logger.warning("concat: skipping %s [%s]", result.skip.message, result.skip.reason)
                skips.append(result.skip)
        too_long += result.too_long
        if result.line is not None:
            lines.append(result.line)
            seconds += result.seconds
    write_manifest(lines, target)
    return {"manifest": str(target), "seed": seed, "drawn": count, "lines": len(lines), "too_long": too_long,
            "unusable": unusable,
            "join": list(options.join), "pause": list(options.pause), "edge": list(options.edge),
            "hours": round(seconds / 3600, 4), "skipped": len(skips), "skipped_by_reason": count_by_reason(skips),
            "seconds": round(time.perf_counter() - start, 2)}
