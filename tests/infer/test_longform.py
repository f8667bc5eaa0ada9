"""Long-form decoding with the tiny model: plans, joined lines, short clips unchanged, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.data.audio import load_audio
from slamkit.data.manifest import Record, read_manifest
from slamkit.infer.decode import decode
from slamkit.infer.longform import join_segments, plan_segments
from slamkit.infer.segment import Span
from slamkit.train.loop import train

from conftest import tiny_config, write_wav

SR = 16_000
LONG_ARGS = ["decode.segment=fixed", "decode.max_segment_seconds=2.0", "decode.segment_overlap=0.8", "decode.max_new_tokens=12"]


def join_clips(records: list[Record], path: Path, pause: float = 0.6) -> tuple[Path, float]:
    """The clips of ``records`` one after another with ``pause`` s of silence between -> wav, seconds."""
    gap = np.zeros(int(pause * SR), dtype=np.float32)
    parts = []
    for rec in records:
        parts += [load_audio(rec.source, SR, rec.offset, rec.duration), gap]
    audio = np.concatenate(parts[:-1])
    sf.write(str(path), audio, SR)
    return path, len(audio) / SR


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_corpus):
    run = tmp_path_factory.mktemp("longform") / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=30", "train.valid_every=0"))
    return run


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, tone_corpus) -> tuple[Path, float, str]:
    """Six tone sentences with pauses (about 6 s) -> wav, seconds, joined transcript."""
    records = read_manifest(tone_corpus["valid"])
    path, seconds = join_clips(records, tmp_path_factory.mktemp("long") / "long.wav")
    return path, seconds, " ".join(r.target for r in records)


def test_long_clip_is_segmented_decoded_and_joined(run_dir, tone_corpus, long_clip, tmp_path):
    path, seconds, target = long_clip
    short = read_manifest(tone_corpus["valid"])[:2]
    rows = [short[0].to_json(), {"key": "long", "source": str(path), "target": target}, short[1].to_json()]
    manifest = _write_manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert decode(run_dir, manifest, out, LONG_ARGS) == 3
    first, line, last = _read(out)
    assert [first["key"], line["key"], last["key"]] == [short[0].key, "long", short[1].key]
    assert line["ref"] == target and "error" not in line
    segments = line["segments"]
    assert len(segments) >= 3 and segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(seconds, abs=1e-3)
    assert all(s["end"] - s["start"] <= 2.0 + 1e-9 for s in segments)
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:])), "fixed segments are contiguous"
    assert line["hyp"] == " ".join(s["text"] for s in segments if s["text"])

    # Each segment's text is what decoding that crop on its own gives.
    crops = [{"key": f"c{i}", "source": str(path), "target": "", "offset": s["start"], "duration": s["end"] - s["start"]}
             for i, s in enumerate(segments)]
    alone = tmp_path / "alone.jsonl"
    decode(run_dir, _write_manifest(tmp_path / "crops.jsonl", crops), alone, LONG_ARGS)
    assert [r["hyp"].strip() for r in _read(alone)] == [s["text"] for s in segments]

    # The short clips' lines are byte-identical to decoding them without the long one.
    plain = tmp_path / "short.jsonl"
    decode(run_dir, _write_manifest(tmp_path / "s.jsonl", [r.to_json() for r in short]), plain, LONG_ARGS)
    lines = out.read_text().splitlines()
    assert [lines[0], lines[2]] == plain.read_text().splitlines()


def test_merge_pause_reaches_the_decoder_and_the_server(run_dir, tmp_path, monkeypatch):
    """``decode.merge_pause`` from the config decides which speech spans share a segment, in decode and serve."""
    from slamkit.infer import segment
    from slamkit.serve.engine import Clip, Engine

    found = [Span(0.2, 1.0), Span(1.1, 2.0), Span(2.9, 3.8)]  # pauses of 0.5 and 1.3 s between the speech
    monkeypatch.setattr(segment, "speech_spans", lambda audio, rate, max_seconds: list(found))
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.zeros(SR * 5, dtype=np.float32), SR)
    manifest = _write_manifest(tmp_path / "m.jsonl", [{"key": "c", "source": str(clip), "target": ""}])
    spans = {}
    for pause in ("null", "0.8"):
        out = tmp_path / f"out-{pause}.jsonl"
        decode(run_dir, manifest, out, ["decode.segment=vad", "decode.max_segment_seconds=4", f"decode.merge_pause={pause}",
                                        "decode.max_new_tokens=2"])
        (line,) = _read(out)
        spans[pause] = [(s["start"], s["end"]) for s in line["segments"]]
    assert spans == {"null": [(0.2, 3.8)], "0.8": [(0.2, 2.0), (2.9, 3.8)]}
    engine = Engine(str(run_dir), ["decode.segment=vad", "decode.max_segment_seconds=4", "decode.merge_pause=0.8"])
    try:
        records = engine.plan(Clip(clip, 5.0))
    finally:
        engine.close()
    assert [(r.offset, r.offset + r.duration) for r in records] == [(0.2, 2.0), (2.9, 3.8)]


def test_long_silence_gives_an_empty_line(run_dir, tmp_path):
    pytest.importorskip("silero_vad", reason="pip install silero-vad")
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(SR * 5, dtype=np.float32), SR)
    out = tmp_path / "out.jsonl"
    decode(run_dir, _write_manifest(tmp_path / "m.jsonl", [{"key": "quiet", "source": str(silent), "target": ""}]), out,
           ["decode.segment=vad", "decode.max_segment_seconds=2"])
    (line,) = _read(out)
    assert line["hyp"] == "" and line["segments"] == [] and "error" not in line


def test_plan_segments_keeps_fitting_records_and_crops_long_ones(tmp_path):
    wav = write_wav(tmp_path / "a.wav", 5.0, SR)
    fits = Record("a", str(wav), "x", offset=1.0)
    assert plan_segments(fits, SR, 4.0, "fixed", 1.0)[0] is fits  # 4 s left after the offset: from the header
    rec = Record("a", str(wav), "x", prompt="P", task="asr", offset=0.5, extra={"speaker": "s"})
    subs = plan_segments(rec, SR, 2.0, "fixed", 0.5)
    assert [s.key for s in subs] == ["a@0", "a@1", "a@2"]
    assert all(s.source == rec.source and s.prompt == "P" and s.task == "asr" and s.extra["speaker"] == "s" for s in subs)
    assert subs[0].offset == 0.5 and subs[0].extra["segment"] == {"start": 0.0, "end": subs[0].duration}
    assert all(s.offset == pytest.approx(0.5 + s.extra["segment"]["start"]) and s.duration <= 2.0 for s in subs)
    assert sum(s.duration for s in subs) == pytest.approx(4.5)
    missing = Record("m", str(tmp_path / "missing.wav"), "")
    assert plan_segments(missing, SR, 2.0, "fixed", 0.5) == [missing]  # decoding reports the error


def test_join_segments():
    text, segs = join_segments([(Span(0.0, 1.23456), " hello "), (Span(2.0, 3.0), ""), (Span(3.0, 4.0), "world")])
    assert text == "hello world"
    assert segs == [{"start": 0.0, "end": 1.235, "text": "hello"}, {"start": 2.0, "end": 3.0, "text": ""},
                    {"start": 3.0, "end": 4.0, "text": "world"}]


def test_segment_window_above_the_encoder_window_is_refused(run_dir, tone_corpus, tmp_path):
    with pytest.raises(ValueError, match="decode.max_segment_seconds=40 exceeds .* window of 30 s"):
        decode(run_dir, tone_corpus["valid"], tmp_path / "o.jsonl", ["decode.max_segment_seconds=40"])
    with pytest.raises(ValueError, match=r"decode.merge_pause must be >= 0 seconds or null \(got -0.5\)"):
        decode(run_dir, tone_corpus["valid"], tmp_path / "o.jsonl", ["decode.merge_pause=-0.5"])


def test_training_refuses_max_seconds_above_the_encoder_window(tmp_path, tone_corpus):
    cfg = tiny_config(tmp_path / "run", tone_corpus, "data.max_seconds=45")
    with pytest.raises(ValueError, match=r"data.max_seconds=45 exceeds the whisper encoder's input window of 30 s"):
        train(cfg)
    assert not (tmp_path / "run").exists(), "refused before anything is written"


def test_join_keeps_words_of_overlapping_windows_once():
    from slamkit.infer.longform import join_segments
    from slamkit.infer.segment import Span

    text, segments = join_segments([(Span(0.0, 6.0), "one two three four"), (Span(4.5, 10.5), "Four, five six"),
                                    (Span(9.0, 12.0), "six seven")])
    assert text == "one two three four five six seven"
    assert [s["text"] for s in segments] == ["one two three four", "five six", "seven"], "entries keep only new words"
    # a window that only repeats what was said adds nothing; an empty one does not move the overlap
    text, _ = join_segments([(Span(0.0, 6.0), "a b c"), (Span(5.0, 11.0), ""), (Span(10.0, 16.0), "c"),
                             (Span(15.0, 21.0), "d")])
    assert text == "a b c c d"  # "c" at 10 s does not overlap the last non-empty window (0-6 s)
    assert join_segments([(Span(0.0, 6.0), "x y"), (Span(5.0, 11.0), "x y")])[0] == "x y"


def test_join_of_contiguous_segments_keeps_their_text_as_it_is():
    from slamkit.infer.longform import join_segments
    from slamkit.infer.segment import Span

    # contiguous segments are joined as they are, even when words repeat, line breaks included
    assert join_segments([(Span(0.0, 6.0), "no no"), (Span(6.0, 9.0), "no")])[0] == "no no no"
    text, segments = join_segments([(Span(0.0, 3.0), " first line\nsecond  line ")])
    assert text == "first line\nsecond  line" and segments[0]["text"] == text
