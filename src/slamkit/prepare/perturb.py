"""Pseudo-speakers: more speakers from one voice, by moving its pitch (formants with it) and its tempo.

A pseudo-speaker is a fixed pair ``(semitones, tempo)``. Perturbing a waveform with it takes two
cheap steps (numpy + soxr, no librosa):

1. **Resampling.** The clip is read as if it had been recorded at ``rate · 2^(s/12)`` and
   resampled to ``rate``. Every frequency — the pitch and the formants, i.e. a shorter or longer
   vocal tract, as in vocal-tract-length perturbation — is multiplied by ``2^(s/12)`` and the
   duration divided by it.
2. **WSOLA** (waveform-similarity overlap-add) time-scale modification brings the duration to
   ``original / tempo`` without moving the pitch again: Hann-windowed frames are overlap-added at
   a fixed output hop, each taken from near its nominal input position where it best continues
   the frame before (cross-correlation within ± :data:`WSOLA_TOLERANCE_S`).

With ``tempo == 1`` the clip keeps its length to the sample. A pseudo-speaker set is drawn once per
run from a seed (:func:`draw_pseudo_speakers`); each utterance then draws one of them or the voice
itself (:func:`choose_pseudo_speaker`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

WSOLA_WINDOW_S = 0.03  # frame length: two or more pitch periods of any voice
WSOLA_TOLERANCE_S = 0.01  # search ± this around the nominal position: a whole period down to 50 Hz
MAX_SEMITONES = 12.0  # beyond an octave the voice no longer sounds like speech
TEMPO_LIMITS = (0.5, 2.0)
# Defaults: Whisper tiny.en still understands the joe voice within ±3 semitones (docs/voices.md);
# at -5 its WER triples, as the formants fall with the pitch.
DEFAULT_PITCH = (-3.0, 3.0)
DEFAULT_TEMPO = (0.9, 1.1)


@dataclass(frozen=True)
class PseudoSpeaker:
    """One perturbation: ``index`` (1..N) names it in the manifest, ``semitones`` moves pitch and
    formants, ``tempo`` is the speed factor (> 1 faster, shorter clips)."""

    index: int
    semitones: float
    tempo: float

    def to_json(self) -> dict[str, Any]:
        return {"pseudo_speaker": self.index, "semitones": round(self.semitones, 2), "tempo": round(self.tempo, 3)}


def check_range(values: Sequence[float], option: str, limits: tuple[float, float]) -> tuple[float, float]:
    """``values`` as a ``(low, high)`` pair inside ``limits``; a ValueError names ``option`` otherwise."""
    if len(values) != 2:
        raise ValueError(f"{option}: give two numbers LOW HIGH, got {list(values)}")
    low, high = float(values[0]), float(values[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{option}: need finite LOW <= HIGH, got {low} {high}")
    if low < limits[0] or high > limits[1]:
        raise ValueError(f"{option}: {low} {high} is outside [{limits[0]}, {limits[1]}]")
    return low, high


def draw_pseudo_speakers(count: int, seed: int, semitones: Sequence[float] = DEFAULT_PITCH,
                         tempo: Sequence[float] = DEFAULT_TEMPO) -> tuple[PseudoSpeaker, ...]:
    """``count`` pseudo-speakers, the same for the same ``seed``.

    Pitches are stratified — one drawn in each of ``count`` equal slices of the ``semitones``
    range, the slices shuffled — so the set spans the range even when small; tempos are uniform
    in ``tempo``.
    """
    if count < 0:
        raise ValueError(f"pseudo_speakers must be >= 0, got {count}")
    low, high = check_range(semitones, "pseudo_pitch", (-MAX_SEMITONES, MAX_SEMITONES))
    slow, fast = check_range(tempo, "pseudo_tempo", TEMPO_LIMITS)
    rng = random.Random(f"{seed}-pseudo-speakers")
    slices = list(range(count))
    rng.shuffle(slices)
    width = (high - low) / max(count, 1)
    return tuple(PseudoSpeaker(i + 1, low + width * (s + rng.random()), rng.uniform(slow, fast))
                 for i, s in enumerate(slices))


def choose_pseudo_speaker(speakers: Sequence[PseudoSpeaker], seed: int, index: int) -> PseudoSpeaker | None:
    """The pseudo-speaker of utterance ``index``: one of ``speakers`` or ``None`` (the voice itself),
    all equally likely. Its own random stream, so corpora made without pseudo-speakers are unchanged."""
    if not speakers:
        return None
    choice = random.Random(f"{seed}-{index}-pseudo").randrange(len(speakers) + 1)
    return speakers[choice - 1] if choice else None


def time_stretch(wave: np.ndarray, length: int, rate: int) -> np.ndarray:
    """``wave`` ``[t]`` spoken over ``length`` samples at the same pitch (WSOLA); float32 ``[length]``."""
    if length == len(wave) or len(wave) == 0:
        return np.asarray(wave, dtype=np.float32)
    win = 2 * max(1, round(WSOLA_WINDOW_S * rate / 2))
    hop, tol = win // 2, max(1, round(WSOLA_TOLERANCE_S * rate))
    speed = len(wave) / length  # input samples per output sample
    frames = math.ceil(length / hop) + 2
    pad = tol + win
    x = np.pad(np.asarray(wave, dtype=np.float64), (pad, pad + tol + 2 * win + math.ceil(frames * hop * speed)))
    window = np.hanning(win + 1)[:win]  # periodic Hann: copies at hop = win/2 sum to 1
    out = np.zeros(frames * hop + win)
    prev = 0
    for k in range(frames):
        nominal = pad + round(k * hop * speed) - hop  # frame k is centred on input k·hop·speed
        if k == 0:
            start = nominal
        else:
            template = x[prev + hop: prev + hop + win]  # what would naturally follow the last frame
            corr = np.correlate(x[nominal - tol: nominal + tol + win], template, mode="valid")
            start = nominal - tol + int(np.argmax(corr))
        out[k * hop: k * hop + win] += x[start: start + win] * window
        prev = start
    return out[hop: hop + length].astype(np.float32)


def perturb(wave: np.ndarray, speaker: PseudoSpeaker, rate: int) -> np.ndarray:
    """``wave`` ``[t]`` as ``speaker`` says it: pitch and formants × 2^(semitones/12), duration
    ÷ tempo (exactly ``t`` samples when tempo is 1); float32, peak clipped to ±1."""
    factor = 2.0 ** (speaker.semitones / 12.0)
    length = round(len(wave) / speaker.tempo)
    shifted = np.asarray(wave, dtype=np.float32)
    if factor != 1.0:
        shifted = np.asarray(soxr.resample(shifted, rate * factor, rate, quality="HQ"), dtype=np.float32)
    return np.clip(time_stretch(shifted, length, rate), -1.0, 1.0)
