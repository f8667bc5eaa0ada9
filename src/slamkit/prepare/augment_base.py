"""What every augmentation kind shares: the interface, the types, seeds, and the ``--param`` parsers.

A kind is three pieces (registered in :data:`slamkit.prepare.augment.AUGMENTS`):

- a frozen **params** dataclass whose fields are the options ``--param KIND.NAME=VALUE`` sets; each field
  carries its parser (:func:`option`), so a bad value names the option;
- ``setup(params, ctx) -> state``: runs once per run, in the parent process (finds assets, probes codecs);
  the state is small and picklable, because every worker gets a copy;
- ``apply(wave, rng, state, clip) -> (wave, info)``: a pure function of a float32 mono 16 kHz waveform
  ``[t]`` and a seeded :class:`numpy.random.Generator`; ``info`` is the JSON-ready record of what was
  drawn (written into the manifest's ``augment`` field). Drawn values are rounded *before* they are used,
  so the record is exact.

The kinds are in :mod:`slamkit.prepare.augment_kinds` (speed, room, telephone) and
:mod:`slamkit.prepare.augment_noise` (noise).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000  # every kind reads and writes 16 kHz mono


class AugmentSetupError(ValueError):
    """A kind cannot run here (missing library, asset or codec); the message says what to install or change."""


@dataclass(frozen=True)
class Clip:
    """Which clip of the manifest is being augmented: its position among the usable records and its key."""

    index: int
    key: str


@dataclass(frozen=True)
class SetupContext:
    """What a kind's ``setup`` may look at: the run seed, the input manifest and its usable clip count,
    and whether missing assets may be installed."""

    seed: int
    manifest: Path | None = None
    clips: int = 0
    install: bool = False


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any parts (run seed, clip key, copy, kind): stable across processes and runs
    (blake2b of their ``repr``; Python's ``hash`` is salted per process)."""
    text = "\x1f".join(repr(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def rms(wave: np.ndarray) -> float:
    """Root mean square of ``wave`` (0.0 for an empty one)."""
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """``wave`` cut or zero-padded to ``length`` samples."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


# --------------------------------------------------------------------------- option parsers


def option(default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    """A params field: its default, the parser of its ``--param`` text, and one line of help."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


def number_range(low: float, high: float) -> Callable[[str], tuple[float, float]]:
    """Parser of ``"A,B"`` (or one number ``"A"`` for ``A,A``) with ``low <= A <= B <= high``."""

    def parse(text: str) -> tuple[float, float]:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (1, 2):
            raise ValueError(f"expected LOW,HIGH (two numbers), got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"expected numbers, got {text!r}") from None
        lo, hi = values[0], values[-1]
        if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi <= high):
            raise ValueError(f"need {low:g} <= LOW <= HIGH <= {high:g}, got {text!r}")
        return (lo, hi)

    return parse


def int_range(low: int, high: int) -> Callable[[str], tuple[int, int]]:
    """Parser of ``"A,B"`` (or ``"A"``) of whole numbers with ``low <= A <= B <= high``."""
    floats = number_range(low, high)

    def parse(text: str) -> tuple[int, int]:
        lo, hi = floats(text)
        if not (lo.is_integer() and hi.is_integer()):
            raise ValueError(f"expected whole numbers, got {text!r}")
        return (int(lo), int(hi))

    return parse


def number_list(low: float, high: float) -> Callable[[str], tuple[float, ...]]:
    """Parser of a comma-separated list of numbers, each in ``[low, high]``."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
        if not values or not all(low <= v <= high for v in values):
            raise ValueError(f"need one or more numbers in [{low:g}, {high:g}], got {text!r}")
        return values

    return parse


def name_list(allowed: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    """Parser of a comma-separated list of names out of ``allowed``."""
    known = tuple(allowed)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise ValueError(f"unknown {', '.join(map(repr, unknown)) or 'empty list'} (known: {', '.join(known)})")
        return names

    return parse


def whole(low: int, high: int) -> Callable[[str], int]:
    """Parser of one whole number in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"need {low} <= N <= {high}, got {value}")
        return value

    return parse


def uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int) -> float:
    """A uniform draw in ``bounds``, rounded to ``digits`` (the value used is the value recorded)."""
    return round(float(rng.uniform(bounds[0], bounds[1])), digits)
