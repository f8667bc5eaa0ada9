"""What a run leaves out, and why: :class:`Skip` records and their counts by reason.

Training, validation and decoding never stop on one bad manifest line or audio file; they leave it
out and say so. Every such item becomes a :class:`Skip` that names its ``file:line`` (or the audio
file), the record's key when the line had one, a short reason from :data:`REASONS`, and the detail.
`slamkit validate` reports the same reasons, so its table predicts what a run will skip.

Counts by reason travel as a fixed-order vector (:func:`as_vector`), so processes of a distributed
run can add them up in one collective.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

# Line-level reasons (the manifest line itself is unusable).
NOT_UTF8 = "not UTF-8"
INVALID_JSON = "invalid JSON"
BAD_FIELD = "bad field"
DUPLICATE_KEY = "duplicate key"
MALFORMED_LINE = "malformed line"  # a corpus's own text format (e.g. a LibriSpeech transcript line)
# Record-level reasons (the line parses, the example cannot be used).
EMPTY_TARGET = "empty target"
LONG_TARGET = "target too long"
MISSING_FILE = "missing file"
UNREADABLE_FILE = "unreadable file"
UNUSABLE_AUDIO = "unusable audio"
DURATION_RANGE = "duration out of range"

REASONS: tuple[str, ...] = (NOT_UTF8, INVALID_JSON, BAD_FIELD, DUPLICATE_KEY, MALFORMED_LINE, EMPTY_TARGET, LONG_TARGET, MISSING_FILE,
                            UNREADABLE_FILE, UNUSABLE_AUDIO, DURATION_RANGE)


@dataclass(frozen=True)
class Skip:
    """One item a run left out: ``where`` is ``file:line`` (or the audio file), ``reason`` one of
    :data:`REASONS`, ``detail`` the specific problem; ``key`` the record's key when the line had one."""

    where: str
    reason: str
    detail: str
    key: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown skip reason {self.reason!r} (known: {', '.join(REASONS)})")

    @property
    def message(self) -> str:
        """``file:line: detail`` — one line for a log or an error."""
        return f"{self.where}: {self.detail}"

    def to_json(self) -> dict:
        """The skip as a JSON object (``where``, ``reason``, ``detail``, ``key``)."""
        return asdict(self)


def count_by_reason(skips: Iterable[Skip]) -> dict[str, int]:
    """``{reason: count}`` of ``skips``, in :data:`REASONS` order, reasons with no skip left out."""
    counts = Counter(s.reason for s in skips)
    return {r: counts[r] for r in REASONS if counts[r]}


def add_counts(total: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """The sum of two ``{reason: count}`` maps, in :data:`REASONS` order."""
    return {r: total.get(r, 0) + more.get(r, 0) for r in REASONS if total.get(r, 0) + more.get(r, 0)}


def as_vector(counts: Mapping[str, int]) -> list[int]:
    """Counts in :data:`REASONS` order (for a sum over processes)."""
    return [int(counts.get(r, 0)) for r in REASONS]


def from_vector(values: Sequence[float]) -> dict[str, int]:
    """The inverse of :func:`as_vector` (zero counts left out)."""
    return {r: int(v) for r, v in zip(REASONS, values) if int(v)}


def describe(counts: Mapping[str, int]) -> str:
    """``"3 missing file, 1 invalid JSON"`` (or ``"none"``)."""
    return ", ".join(f"{n} {r}" for r, n in counts.items() if n) or "none"
