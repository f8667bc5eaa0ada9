"""Segmentation of long audio: whole clips, fixed cuts in the silences, VAD on real speech, fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from slamkit.infer import segment
from slamkit.infer.segment import Span, merge_spans, segment_audio

SR = 16_000


def _bursts(lengths: list[float], gap: float, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Noise bursts of ``lengths`` seconds separated by ``gap`` s of silence -> audio, silences (s)."""
    rng = np.random.default_rng(seed)
    parts, silences, t = [], [], 0.0
    for i, n in enumerate(lengths):
        parts.append(0.3 * rng.standard_normal(int(n * SR)))
        t += int(n * SR) / SR
        if i + 1 < len(lengths):
            parts.append(np.zeros(int(gap * SR)))
            silences.append((t, t + int(gap * SR) / SR))
            t += int(gap * SR) / SR
    return np.concatenate(parts).astype(np.float32), silences


def test_short_clip_is_one_whole_span_without_vad(monkeypatch):
    def no_vad():
        raise AssertionError("no VAD for a clip that fits")

    monkeypatch.setattr(segment, "_silero", no_vad)
    audio = np.zeros(SR * 3, dtype=np.float32)
    assert segment_audio(audio, SR, 30.0) == ([Span(0.0, 3.0)], "whole")
    assert segment_audio(audio, SR, 3.0, "fixed") == ([Span(0.0, 3.0)], "whole")


def test_fixed_cuts_land_in_the_silences():
    # Every 4 s search stretch holds a pause (bursts <= 2.6 s, pauses 0.6 s).
    audio, silences = _bursts([2.2, 2.5, 2.0, 2.6, 2.3, 2.1, 2.4, 2.6, 2.2, 2.0, 2.5], gap=0.6)
    spans, method = segment_audio(audio, SR, 10.0, "fixed", overlap_seconds=4.0)
    assert method == "fixed" and len(spans) > 2
    assert spans[0].start == 0.0 and spans[-1].end == pytest.approx(len(audio) / SR)
    for a, b in zip(spans, spans[1:]):
        assert a.end == b.start, "fixed segments are contiguous"
        assert any(lo < a.end < hi for lo, hi in silences), f"cut at {a.end:.2f} s is not inside a silence"
    assert all(0 < s.end - s.start <= 10.0 for s in spans)


def test_fixed_without_a_pause_still_respects_the_limit():
    audio = (0.3 * np.random.default_rng(1).standard_normal(SR * 65)).astype(np.float32)
    spans, _ = segment_audio(audio, SR, 10.0, "fixed", overlap_seconds=1.0)
    assert all(s.end - s.start <= 10.0 for s in spans) and spans[-1].end == 65.0
    assert sum(s.end - s.start for s in spans) == pytest.approx(65.0)


def test_merge_keeps_pauses_inside_and_drops_silence_between():
    spans = [Span(0.0, 2.0), Span(3.0, 5.0), Span(5.5, 9.0), Span(20.0, 21.0)]
    assert merge_spans(spans, 6.0) == [Span(0.0, 5.0), Span(5.5, 9.0), Span(20.0, 21.0)]
    assert merge_spans(spans, 30.0) == [Span(0.0, 21.0)]


def test_merge_pause_joins_only_across_short_pauses():
    """Padded spans (0.2 s each side): a gap of 0.1 s between them is a 0.5 s pause in the speech."""
    spans = [Span(0.0, 1.0), Span(1.1, 2.0), Span(2.9, 4.0), Span(4.0, 5.0)]  # pauses 0.5, 1.3, 0.4 s
    assert merge_spans(spans, 6.0, merge_pause=None) == [Span(0.0, 5.0)]
    assert merge_spans(spans, 6.0, merge_pause=0.5) == [Span(0.0, 2.0), Span(2.9, 5.0)]
    assert merge_spans(spans, 6.0, merge_pause=0.45) == [Span(0.0, 1.0), Span(1.1, 2.0), Span(2.9, 5.0)]
    assert merge_spans(spans, 6.0, merge_pause=0.3) == spans  # below twice the padding: nothing joins
    assert merge_spans(spans, 1.5, merge_pause=2.0) == [Span(0.0, 1.0), Span(1.1, 2.0), Span(2.9, 4.0), Span(4.0, 5.0)]


def test_merge_pause_reaches_vad_and_is_checked(monkeypatch):
    found = [Span(0.5, 2.0), Span(2.1, 3.0), Span(4.0, 5.5)]
    monkeypatch.setattr(segment, "speech_spans", lambda audio, rate, max_seconds: list(found))
    audio = np.zeros(SR * 7, dtype=np.float32)
    assert segment_audio(audio, SR, 6.0, "vad", merge_pause=0.6) == ([Span(0.5, 3.0), Span(4.0, 5.5)], "vad")
    assert segment_audio(audio, SR, 6.0, "vad") == ([Span(0.5, 5.5)], "vad")
    with pytest.raises(ValueError, match="merge_pause >= 0"):
        segment_audio(audio, SR, 6.0, "vad", merge_pause=-1.0)


def test_unknown_method_and_bad_input_fail_clearly():
    audio = np.zeros(SR * 5, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown segmentation method 'energy'"):
        segment_audio(audio, SR, 2.0, "energy")
    with pytest.raises(ValueError, match="mono"):
        segment_audio(np.zeros((2, 100)), SR, 2.0)


def test_vad_falls_back_to_fixed_when_silero_is_missing(monkeypatch, caplog):
    def missing():
        raise segment.SegmenterUnavailable("silero-vad is not installed")

    monkeypatch.setattr(segment, "_silero", missing)
    audio, _ = _bursts([3.0, 3.0, 3.0], gap=0.5)
    with caplog.at_level(logging.WARNING, logger="slamkit"):
        spans, method = segment_audio(audio, SR, 4.0, "vad")
    assert method == "fixed" and spans and all(s.end - s.start <= 4.0 for s in spans)
    assert any("fixed windows instead" in r.getMessage() for r in caplog.records)


def test_utterance_keeps_every_vad_span_apart(monkeypatch):
    """``vad`` merges neighbouring speech spans up to the window; ``utterance`` keeps each one a segment."""
    found = [Span(0.5, 2.0), Span(3.0, 4.5), Span(5.5, 7.0), Span(12.0, 13.0)]
    monkeypatch.setattr(segment, "speech_spans", lambda audio, rate, max_seconds: list(found))
    audio = np.zeros(SR * 14, dtype=np.float32)
    assert segment_audio(audio, SR, 6.0, "utterance") == (found, "utterance")
    assert segment_audio(audio, SR, 6.0, "vad") == ([Span(0.5, 4.5), Span(5.5, 7.0), Span(12.0, 13.0)], "vad")


def test_vad_on_silence_gives_no_spans():
    pytest.importorskip("silero_vad", reason="pip install silero-vad")
    spans, method = segment_audio(np.zeros(SR * 40, dtype=np.float32), SR, 30.0, "vad")
    assert (spans, method) == ([], "vad")


def test_silero_import_keeps_the_thread_count():
    pytest.importorskip("silero_vad", reason="pip install silero-vad")
    import torch

    before = torch.get_num_threads()
    segment._silero.cache_clear()
    assert segment.vad_available()
    assert torch.get_num_threads() == before


def test_overlap_windows_share_the_overlap_and_cover_the_clip():
    audio = np.zeros(int(SR * 20.5), dtype=np.float32)
    spans, method = segment_audio(audio, SR, 6.0, "overlap", overlap_seconds=1.5)
    assert method == "overlap" and len(spans) == 5  # ceil((20.5 - 1.5) / 4.5) windows
    assert spans[0].start == 0.0 and spans[-1].end == pytest.approx(20.5)
    assert all(s.end - s.start == pytest.approx(5.3, abs=1e-3) for s in spans)  # (20.5 + 4 x 1.5) / 5
    assert all(a.end - b.start == pytest.approx(1.5, abs=1e-3) for a, b in zip(spans, spans[1:]))
    # just past one window: two short windows sharing 1 s, not two that share 29 s
    spans, _ = segment_audio(np.zeros(SR * 31, dtype=np.float32), SR, 30.0, "overlap", overlap_seconds=1.0)
    assert [(s.start, s.end) for s in spans] == [(0.0, 16.0), (15.0, 31.0)]
    spans, _ = segment_audio(np.zeros(SR * 60, dtype=np.float32), SR, 30.0, "overlap", overlap_seconds=1.0)
    assert len(spans) == 3 and all(s.end - s.start <= 30.0 for s in spans)
    # the overlap is capped at half a window, so every window still moves on
    wide, _ = segment_audio(audio, SR, 6.0, "overlap", overlap_seconds=5.0)
    assert all(a.end - b.start <= 3.0 + 1e-3 for a, b in zip(wide, wide[1:])) and wide[-1].end == pytest.approx(20.5)


def test_merge_overlap_finds_the_repeated_words():
    left = "the quick brown fox jumps over".split()
    assert segment.merge_overlap(left, "Fox, jumps over the lazy dog".split()) == 3
    assert segment.merge_overlap(left, "a fox jumps over the lazy dog".split()) == 4  # 'brown' heard as 'a'
    assert segment.merge_overlap(left, "fax jumps over the lazy dog".split()) == 3  # one word misheard
    assert segment.merge_overlap(left, "then it ran away".split()) == 0  # nothing lines up
    assert segment.merge_overlap(left, "lazy dog".split()) == 0
    assert segment.merge_overlap(left, "jumps over it".split(), max_words=1) == 0
    assert segment.merge_overlap([], "a b".split()) == 0
    # as many agreeing as disagreeing words is no evidence: nothing is dropped
    assert segment.merge_overlap("we took the car".split(), "the driver said".split()) == 0
    assert segment.merge_overlap(["go", "go"], ["go", "on", "and"]) == 1
