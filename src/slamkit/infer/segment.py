"""Long audio -> spans of at most ``max_seconds``, so nothing past an encoder's window is cut silently.

:func:`segment_audio` is the one entry point (`slamkit decode` and `slamkit serve` use it). A clip no
longer than ``max_seconds`` is one span, method ``"whole"``: no VAD runs and short clips decode
exactly as before. Longer clips are split by a method of :data:`SEGMENTERS`:

- ``vad``: silero-vad (the PyPI package's bundled model, loaded once, no download) finds speech at
  16 kHz; each speech span is padded by :data:`SPEECH_PAD_SECONDS`, a span longer than the window
  is split by silero itself (``max_speech_duration_s``, at its quietest point), and neighbouring
  spans are merged greedily while the merged span still fits (and, with ``merge_pause``, only across
  pauses of at most that many seconds): pauses inside a segment are kept, silence between segments
  is dropped. No speech at all gives no spans.
- ``utterance``: the same speech spans, not merged: each is its own segment. A model trained on
  single sentences may read two utterances merged into one segment as one and lose the other; it
  may also read the sentence fragments silero cuts at short pauses worse (docs/longform.md measures
  both).
- ``fixed``: contiguous windows covering the whole clip; each cut is placed at the quietest
  100 ms (RMS) inside the last ``overlap_seconds`` before the window's end, so words are not cut
  where a pause exists.
- ``overlap``: the fewest equal windows of at most ``max_seconds`` that cover the clip with
  ``overlap_seconds`` (at most half a window) shared between neighbours, cut blindly; the words spoken in an overlap are transcribed twice
  and :func:`slamkit.infer.longform.join_segments` keeps them once (:func:`merge_overlap`).

When silero-vad cannot be imported, ``vad`` and ``utterance`` fall back to ``fixed`` with a warning,
and the returned method says so.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger("slamkit")

VAD_RATE = 16_000  # silero-vad's native rate
SPEECH_PAD_SECONDS = 0.2  # kept around each speech span (silero's speech_pad_ms)
MIN_SILENCE_SECONDS = 0.1  # a pause shorter than this does not end a speech span
QUIET_WINDOW_SECONDS = 0.1  # RMS window of the fixed method's cut search
QUIET_HOP_SECONDS = 0.01


@dataclass(frozen=True)
class Span:
    """A stretch of a clip, in seconds from the clip's start."""

    start: float  # seconds from the clip's start
    end: float


class SegmenterUnavailable(RuntimeError):
    """A segmentation method's backend is not installed (the caller falls back to ``fixed``)."""


Segmenter = Callable[[np.ndarray, int, float, float, float | None], list[Span]]


def segment_audio(audio: np.ndarray, sample_rate: int, max_seconds: float, method: str = "vad",
                  overlap_seconds: float = 1.0, merge_pause: float | None = None) -> tuple[list[Span], str]:
    """Spans of at most max_seconds covering the clip's speech; returns (spans, method actually used).

    Args:
        audio: mono waveform ``[t]`` (float).
        sample_rate: its rate in Hz.
        max_seconds: the longest span allowed (an encoder's input window).
        method: a name in :data:`SEGMENTERS` (``vad``, ``fixed`` or ``overlap``).
        overlap_seconds: how far before each window's end ``fixed`` searches for a quiet cut; with
            ``overlap``, how much consecutive windows share.
        merge_pause: with ``vad``, the longest pause (seconds) across which two speech spans may join one
            segment; ``None``: any pause, as long as the segment fits ``max_seconds``.

    Returns:
        Spans in time order within ``[0, duration]``, each at most ``max_seconds`` long, and
        ``"whole"`` (the clip fits), the method used, or ``"fixed"`` when ``vad`` was asked but
        silero-vad is not installed. ``vad`` on a clip without speech gives ``[]``.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"segment_audio expects a mono waveform [t], got shape {audio.shape}")
    if sample_rate <= 0 or not max_seconds > 0 or overlap_seconds < 0 or (merge_pause is not None and not merge_pause >= 0):
        raise ValueError(f"need sample_rate > 0, max_seconds > 0, overlap_seconds >= 0 and merge_pause >= 0 or None "
                         f"(got {sample_rate}, {max_seconds}, {overlap_seconds}, {merge_pause})")
    if method not in SEGMENTERS:
        raise ValueError(f"unknown segmentation method {method!r}; choose one of {sorted(SEGMENTERS)}")
    duration = len(audio) / sample_rate
    if duration <= max_seconds:
        return [Span(0.0, duration)], "whole"
    try:
        return SEGMENTERS[method](audio, sample_rate, max_seconds, overlap_seconds, merge_pause), method
    except SegmenterUnavailable as exc:
        log.warning("%s; segmenting with fixed windows instead", exc)
        return fixed_spans(audio, sample_rate, max_seconds, overlap_seconds, None), "fixed"


# ----------------------------------------------------------------------------------------- fixed


def fixed_spans(audio: np.ndarray, sample_rate: int, max_seconds: float, overlap_seconds: float,
                merge_pause: float | None = None) -> list[Span]:
    """Contiguous spans of at most ``max_seconds`` covering the clip, cut at quiet points."""
    total = len(audio)
    limit = int(math.floor(max_seconds * sample_rate))
    search = min(int(overlap_seconds * sample_rate), limit // 2)  # a cut always advances by >= half a window
    power = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    cuts, start = [0], 0
    while total - start > limit:
        start = _quietest_cut(power, start + limit - search, start + limit, sample_rate)
        cuts.append(start)
    cuts.append(total)
    return [Span(a / sample_rate, b / sample_rate) for a, b in zip(cuts, cuts[1:])]


def _quietest_cut(power: np.ndarray, lo: int, hi: int, sample_rate: int) -> int:
    """The sample in ``[lo, hi]`` at the centre of the quietest short window inside it.

    ``power`` is the cumulative sum of squared samples (``power[i]`` = energy of ``audio[:i]``).
    Among equally quiet windows (a stretch of silence) the middle of their run is taken, so the
    cut sits mid-pause rather than at its edge.
    """
    width = min(max(1, int(QUIET_WINDOW_SECONDS * sample_rate)), hi - lo)
    if width <= 0:
        return hi
    hop = max(1, int(QUIET_HOP_SECONDS * sample_rate))
    starts = np.arange(lo, hi - width + 1, hop)
    energy = power[starts + width] - power[starts]
    best = int(np.argmin(energy))
    quiet = energy <= energy[best] * 1.05 + 1e-12 * width
    first = last = best
    while first > 0 and quiet[first - 1]:
        first -= 1
    while last + 1 < len(quiet) and quiet[last + 1]:
        last += 1
    return int(starts[(first + last) // 2]) + width // 2


# --------------------------------------------------------------------------------------- overlap


def overlap_spans(audio: np.ndarray, sample_rate: int, max_seconds: float, overlap_seconds: float,
                  merge_pause: float | None = None) -> list[Span]:
    """The fewest windows of at most ``max_seconds`` that cover the clip while consecutive ones share
    ``overlap_seconds`` (capped at half a window): all of one length, evenly spaced, each overlap
    exactly the one asked (31 s with a 30 s window and 1 s shared: 0-16 s and 15-31 s)."""
    total = len(audio)
    limit = int(math.floor(max_seconds * sample_rate))
    if total <= limit:
        return [Span(0.0, total / sample_rate)]
    shared = min(int(overlap_seconds * sample_rate), limit // 2)
    count = math.ceil((total - shared) / (limit - shared))
    length = (total + (count - 1) * shared) / count
    starts = [round(i * (length - shared)) for i in range(count)]
    ends = [min(round(a + length), total) for a in starts[:-1]] + [total]
    return [Span(a / sample_rate, b / sample_rate) for a, b in zip(starts, ends)]


def _word_key(word: str) -> str:
    """A word as the overlap merge compares it: lower case, letters and digits only."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


def merge_overlap(left: list[str], right: list[str], max_words: int | None = None) -> int:
    """How many leading words of ``right`` repeat the end of ``left`` (the same stretch of audio
    transcribed by two overlapping windows).

    Every overlap length ``k`` (up to ``max_words``) is tried: ``left[-k:]`` against ``right[:k]``,
    position by position, case and punctuation ignored. Each ``k`` scores its agreeing words minus
    its disagreeing ones; the best positive score wins (on a tie, the one with more agreeing
    words, then the shorter); no positive score gives 0 (nothing is dropped).
    """
    a, b = [_word_key(w) for w in left], [_word_key(w) for w in right]
    most = min(len(a), len(b), max_words if max_words is not None else len(b))
    best_k, best = 0, (0, 0)
    for k in range(1, most + 1):
        hits = sum(x == y and x != "" for x, y in zip(a[-k:], b[:k]))
        score = (2 * hits - k, hits)
        if score[0] > 0 and score > best:
            best_k, best = k, score
    return best_k


# ------------------------------------------------------------------------------------------- vad


_VAD_LOCK = threading.Lock()  # the TorchScript model keeps state between chunks: one clip at a time


@functools.lru_cache(maxsize=1)
def _silero() -> tuple[Any, Callable[..., list[dict[str, int]]]]:
    """silero-vad's bundled model and ``get_speech_timestamps``, loaded once (no download).

    Importing silero_vad calls ``torch.set_num_threads(1)``; the caller's thread count is restored.
    """
    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError as exc:
        raise SegmenterUnavailable(f"silero-vad is not installed ({exc}; pip install silero-vad)") from exc
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():  # its loader uses deprecated importlib/jit calls; nothing for our users to act on
        warnings.simplefilter("ignore", DeprecationWarning)
        model = silero_vad.load_silero_vad()
    return model, silero_vad.get_speech_timestamps


def vad_available() -> bool:
    """True when silero-vad can be loaded (``vad`` segmentation will not fall back)."""
    try:
        _silero()
    except SegmenterUnavailable:
        return False
    return True


def speech_spans(audio: np.ndarray, sample_rate: int, max_seconds: float) -> list[Span]:
    """silero-vad's speech spans (padded, each at most ``max_seconds``), in seconds."""
    model, get_speech_timestamps = _silero()
    wave = audio.astype(np.float32, copy=False)
    if sample_rate != VAD_RATE:
        import soxr

        wave = soxr.resample(wave, sample_rate, VAD_RATE, quality="HQ").astype(np.float32, copy=False)
    with _VAD_LOCK, torch.inference_mode():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wave)), model, sampling_rate=VAD_RATE,
                                       max_speech_duration_s=max_seconds, min_silence_duration_ms=int(MIN_SILENCE_SECONDS * 1000),
                                       speech_pad_ms=int(SPEECH_PAD_SECONDS * 1000))
    duration = len(audio) / sample_rate
    spans = [Span(max(0.0, s["start"] / VAD_RATE), min(duration, s["end"] / VAD_RATE)) for s in stamps]
    return [piece for span in spans for piece in _split_long(span, max_seconds)]


def _split_long(span: Span, max_seconds: float) -> list[Span]:
    """``span`` in equal pieces of at most ``max_seconds`` (a guard: silero already caps its spans)."""
    n = max(1, math.ceil((span.end - span.start) / max_seconds - 1e-9))
    step = (span.end - span.start) / n
    return [Span(span.start + i * step, span.end if i == n - 1 else span.start + (i + 1) * step) for i in range(n)]


def merge_spans(spans: list[Span], max_seconds: float, merge_pause: float | None = None) -> list[Span]:
    """Merge time-ordered spans greedily into segments no longer than ``max_seconds``.

    A segment runs from its first span's start to its last span's end (pauses inside are kept);
    the silence between segments is dropped. With ``merge_pause``, a span joins the segment before it
    only when the pause between them is at most that many seconds. The pause is measured between the
    speech itself: the gap between the padded spans plus both paddings (:data:`SPEECH_PAD_SECONDS`).
    """
    merged: list[Span] = []
    for span in spans:
        if merged and _joins(merged[-1], span, max_seconds, merge_pause):
            merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def _joins(segment: Span, span: Span, max_seconds: float, merge_pause: float | None) -> bool:
    """Whether ``span`` may extend ``segment``: the result fits, and the pause between them is short enough."""
    pause = span.start - segment.end + 2 * SPEECH_PAD_SECONDS
    return span.end - segment.start <= max_seconds and (merge_pause is None or pause <= merge_pause + 1.0 / VAD_RATE)


def vad_spans(audio: np.ndarray, sample_rate: int, max_seconds: float, overlap_seconds: float,
              merge_pause: float | None = None) -> list[Span]:
    """Speech found by silero-vad, merged into segments of at most ``max_seconds`` across pauses of at
    most ``merge_pause`` seconds (``None``: any pause; ``[]``: no speech)."""
    return merge_spans(speech_spans(audio, sample_rate, max_seconds), max_seconds, merge_pause)


def utterance_spans(audio: np.ndarray, sample_rate: int, max_seconds: float, overlap_seconds: float,
                    merge_pause: float | None = None) -> list[Span]:
    """Speech found by silero-vad, one segment per span (none merged; ``[]``: no speech)."""
    return speech_spans(audio, sample_rate, max_seconds)


SEGMENTERS: dict[str, Segmenter] = {"vad": vad_spans, "utterance": utterance_spans, "fixed": fixed_spans,
                                    "overlap": overlap_spans}
