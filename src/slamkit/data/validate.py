"""``slamkit validate``: every problem of a manifest, line by line, before a run meets it.

Each line is checked on its own (a bad line never hides the next): UTF-8, JSON, the fields and
their types (:func:`slamkit.data.manifest.parse_record`), duplicate keys, that ``source`` is a
readable file (inside ``root`` when one is given). With ``audio``, each file is also decoded the
way training and decoding read it (:func:`slamkit.data.audio.load_audio`: finite, non-empty, mixed
to mono, resampled), one at a time, so a manifest of a million lines never holds its audio in memory.

A problem is an **error** (the line cannot be used: training and decoding skip it) or a **warning**
(usable, but worth knowing: an empty target, several channels, a clip longer than Whisper's 30 s
window, a byte-order mark).

``text_records`` (``data.text_records``: refuse | mixed | only) says whether lines without ``source``
are text-only records (docs/text-only.md); those have no file to check.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf

from slamkit.data.audio import AudioError, load_audio
from slamkit.data.manifest import Record, iter_manifest
from slamkit.data.skips import EMPTY_TARGET, MISSING_FILE, UNREADABLE_FILE, Skip

LONG_SECONDS = 30.0  # Whisper's window: decode splits longer clips, training skips them (data.max_seconds)


@dataclass(frozen=True)
class Problem:
    """One finding: ``where`` is ``file:line``; ``reason`` a short category; ``error`` False for a warning."""

    where: str
    reason: str
    detail: str
    error: bool = True


def _audio_problems(record: Record, where: str) -> list[Problem]:
    """Header facts (channels, length) as warnings; what the loader refuses as an error."""
    found = []
    try:
        info = sf.info(record.source)
        if info.channels > 1:
            found.append(Problem(where, "several channels", f"{info.channels} channels (mixed to mono)", error=False))
    except Exception:  # libsndfile's own error types: the load below names the reason
        pass
    try:
        audio = load_audio(record.source, 16000, record.offset, record.duration)
    except AudioError as exc:
        return found + [Problem(where, exc.reason, str(exc))]
    if len(audio) / 16000 > LONG_SECONDS:
        found.append(Problem(where, "long clip", f"{len(audio) / 16000:.1f} s: decoding splits it into segments; training skips "
                             f"clips over data.max_seconds", error=False))
    return found


def _source_problems(record: Record, where: str, root: Path | None) -> list[Problem]:
    path = Path(record.source)
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        return [Problem(where, "outside root", f"{record.source} is not inside {root}")]
    if not path.exists():
        return [Problem(where, MISSING_FILE, f"{record.source}: no such file")]
    if not path.is_file():
        return [Problem(where, MISSING_FILE, f"{record.source}: not a regular file")]
    if not os.access(path, os.R_OK):
        return [Problem(where, UNREADABLE_FILE, f"{record.source}: no read permission")]
    return []


def validate_manifest(path: str | Path, audio: bool = False, root: str | Path | None = None,
                      tick: Callable[[], None] = lambda: None, text_records: str = "refuse") -> tuple[int, list[Problem]]:
    """``(records read, problems)`` of one manifest; ``tick`` is called once per line (a progress bar);
    ``text_records`` as ``data.text_records``."""
    path = Path(path)
    if not path.is_file():
        return 0, [Problem(str(path), "missing file", "no such manifest file" if not path.exists() else "not a file")]
    found: list[Problem] = []
    count = 0
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            found.append(Problem(f"{path}:1", "byte-order mark", "UTF-8 BOM at the start (accepted)", error=False))
    for record in iter_manifest(path, text_records):
        tick()
        count += 1
        if isinstance(record, Skip):
            found.append(Problem(record.where, record.reason, record.detail))
            continue
        where = record.where
        if not record.target.strip():
            found.append(Problem(where, EMPTY_TARGET, "no reference text (fine for decoding; training skips it)", error=False))
        if record.is_text:  # text-only: no audio file to check
            continue
        source = _source_problems(record, where, Path(root) if root is not None else None)
        found += source
        if audio and not source:
            found += _audio_problems(record, where)
    return count, found


def line_count(path: str | Path) -> int:
    """Lines of a file (for a progress bar's total), read in blocks."""
    try:
        with Path(path).open("rb") as handle:
            return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def summary(manifests: list[str], counts: list[int], problems: list[Problem]) -> dict:
    """The JSON report: totals, counts by reason, every problem."""
    errors = [p for p in problems if p.error]
    lines_with_errors = {p.where for p in errors}
    by_reason = Counter((p.reason, p.error) for p in problems)
    return {"manifests": manifests, "records": sum(counts), "unusable_lines": len(lines_with_errors), "errors": len(errors),
            "warnings": len(problems) - len(errors),
            "by_reason": [{"reason": r, "kind": "error" if e else "warning", "count": n} for (r, e), n in by_reason.most_common()],
            "problems": [asdict(p) for p in problems]}
