"""Long-form decoding: manifest records longer than the encoder's window become crop sub-records.

`slamkit decode` never lets an encoder cut a clip: :func:`plan_segments` turns a record longer
than the window (:func:`segment_window`) into sub-records, one per span of
:func:`slamkit.infer.segment.segment_audio`, that crop the same file (``offset``/``duration``);
they are decoded in batches like any other clip, and :func:`join_segments` joins their texts
back into one hypothesis with per-segment times. A record that fits is returned unchanged, so
short clips decode exactly as before.

``decode.segment=windowed`` splits nothing: :func:`prepare_long_form` switches the encoder to its
windowed mode (Whisper: 30 s windows whose frames are concatenated before the projector), every
record is decoded whole, and :func:`generation_settings` scales ``decode.max_new_tokens`` with the
batch's longest clip.
"""

from __future__ import annotations

import dataclasses
import math
import re

from torch import Tensor

from slamkit.config import Config, DecodeConfig
from slamkit.data.audio import AudioError, audio_duration, load_audio
from slamkit.data.manifest import Record
from slamkit.infer.segment import Span, merge_overlap, segment_audio
from slamkit.models.speech_llm import SpeechLLM

DEFAULT_WINDOW = 30.0  # seconds, for encoders without a fixed input window
OVERLAP_WORDS_PER_SECOND = 4.0  # the most words an overlap of one second is taken to hold (speech: ~2.5/s)
WINDOWED = "windowed"  # decode.segment value: no segmentation, the encoder runs long clips in windows


def segment_window(cfg: Config, model: SpeechLLM) -> float:
    """The longest segment to decode: ``decode.max_segment_seconds``, else the encoder's
    ``max_seconds``, else 30 s. A setting above the encoder's window is refused."""
    limit = model.encoder.max_seconds
    asked = cfg.decode.max_segment_seconds
    if asked is None:
        return float(limit) if limit is not None else DEFAULT_WINDOW
    if not asked > 0:
        raise ValueError(f"decode.max_segment_seconds must be > 0 (got {asked})")
    if limit is not None and asked > limit:
        raise ValueError(f"decode.max_segment_seconds={asked:g} exceeds the {type(model.encoder).__name__} "
                         f"encoder's input window of {limit:g} s")
    return float(asked)


def prepare_long_form(cfg: Config, model: SpeechLLM) -> float:
    """Set the encoder up for ``decode.segment`` and return the window :func:`plan_segments` splits at.

    ``windowed``: the encoder's windowed mode is switched on (an encoder with a fixed window and no
    windowed mode is refused) and the window is infinite, so every record is decoded whole. Any
    other method switches windowed mode off and returns :func:`segment_window`. Call it before the
    loader is built: the encoder's length rule depends on the mode.
    """
    window = segment_window(cfg, model)  # checks decode.max_segment_seconds in every mode
    if cfg.decode.merge_pause is not None and not cfg.decode.merge_pause >= 0:
        raise ValueError(f"decode.merge_pause must be >= 0 seconds or null (got {cfg.decode.merge_pause})")
    windowed = cfg.decode.segment == WINDOWED
    switch = getattr(model.encoder, "set_windowed", None)
    if switch is not None:
        switch(windowed)
    elif windowed and model.encoder.max_seconds is not None:
        raise ValueError(f"decode.segment=windowed: the {type(model.encoder).__name__} encoder cannot run clips past its "
                         f"{model.encoder.max_seconds:g} s window in windows; use decode.segment=vad or fixed")
    return math.inf if windowed else window


def generation_settings(cfg: Config, model: SpeechLLM, audio_lengths: Tensor) -> DecodeConfig:
    """``cfg.decode`` for a batch of clips of ``audio_lengths [b]`` samples.

    In windowed mode one clip may hold many segments' worth of speech, so it gets the budget a
    segmented decode would give it: ``max_new_tokens`` per :func:`segment_window` of audio
    (``max_new_tokens * ceil(longest / window)``, the batch's longest clip). Otherwise unchanged.
    """
    dc = cfg.decode
    if dc.segment != WINDOWED or audio_lengths.numel() == 0:
        return dc
    longest = float(audio_lengths.max()) / model.encoder.sample_rate
    windows = max(1, math.ceil(longest / segment_window(cfg, model) - 1e-9))
    return dc if windows == 1 else dataclasses.replace(dc, max_new_tokens=dc.max_new_tokens * windows)


def _duration(record: Record) -> float | None:
    """The record's duration from the manifest, else the file header; None when unreadable."""
    if record.duration is not None:
        return float(record.duration)
    try:
        return audio_duration(record.source, record.offset, None)
    except AudioError:
        return None  # decoding reports it on the record's line


def plan_segments(record: Record, sample_rate: int, window: float, method: str, overlap: float,
                  merge_pause: float | None = None) -> list[Record]:
    """``[record]`` when it fits ``window`` seconds (or cannot be read: decoding then reports the
    error); else one crop sub-record per segment of its audio, ``[]`` when it holds no speech.

    Sub-records keep the source, prompt, task and extra fields; their key is ``f"{key}@{i}"``,
    their crop ``offset = record.offset + span.start`` and ``duration = span.end - span.start``, their
    target is empty (the reference belongs to the whole clip), and ``extra["segment"]`` holds
    ``{"start", "end"}`` in seconds within the original clip.
    """
    duration = _duration(record)
    if duration is None or duration <= window:
        return [record]
    try:
        audio = load_audio(record.source, sample_rate, record.offset, record.duration)
    except AudioError:
        return [record]
    spans, _ = segment_audio(audio, sample_rate, window, method, overlap, merge_pause)
    return [dataclasses.replace(record, key=f"{record.key}@{i}", target="", offset=record.offset + span.start,
                                duration=span.end - span.start,
                                extra={**record.extra, "segment": {"start": span.start, "end": span.end}})
            for i, span in enumerate(spans)]


def join_segments(parts: list[tuple[Span, str]]) -> tuple[str, list[dict]]:
    """Segments' ``(span, text)`` in time order -> the joined text and ``[{"start", "end", "text"}]``.

    Texts are stripped and joined with single spaces; empty ones add nothing to the text but
    keep their entry (times rounded to milliseconds). When a span starts before the previous
    non-empty one ends (``decode.segment=overlap``), the words its text repeats from the text so
    far are dropped (:func:`slamkit.infer.segment.merge_overlap`, looking at most at the words the
    overlap could hold: :data:`OVERLAP_WORDS_PER_SECOND` per second, at least 4), from the joined
    text and from its entry. Words are split at white space, so text without spaces (Chinese,
    Japanese) is never merged.
    """
    kept: list[str] = []  # the texts joined
    words: list[str] = []  # their words, for the merge
    segments: list[dict] = []
    prev_end: float | None = None
    for span, text in parts:
        text = text.strip()
        if prev_end is not None and span.start < prev_end and text:
            most = max(4, math.ceil(OVERLAP_WORDS_PER_SECOND * (prev_end - span.start)))
            k = merge_overlap(words[-most:], text.split(), most)
            rest = re.split(r"\s+", text, maxsplit=k) if k else [text]
            text = rest[k] if len(rest) > k else ""
        segments.append({"start": round(span.start, 3), "end": round(span.end, 3), "text": text})
        if text:
            kept.append(text)
            words += text.split()
            prev_end = span.end if prev_end is None else max(prev_end, span.end)
    return " ".join(kept), segments


def segment_span(record: Record) -> Span:
    """The span within its original clip that a sub-record of :func:`plan_segments` covers."""
    seg = record.extra["segment"]
    return Span(float(seg["start"]), float(seg["end"]))
