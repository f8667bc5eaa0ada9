"""Whisper past 30 s in windows (``decode.segment=windowed``): the encoder's windows, its length rule,
the decode path that passes long clips whole, and the token budget."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, tiny_config

from slamkit.config import Config, DecodeConfig, EncoderConfig
from slamkit.data.manifest import read_manifest
from slamkit.infer.decode import decode_manifest
from slamkit.infer.longform import generation_settings, prepare_long_form
from slamkit.models.encoders.base import build_encoder
from slamkit.models.encoders.whisper.frontend import CHUNK_SAMPLES
from slamkit.models.speech_llm import build_model

SR = 16_000


@pytest.fixture(scope="module")
def encoder():
    return build_encoder(EncoderConfig(name="whisper", preset="test"))


def _audio(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    audio = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        audio[i, :n] = 0.1 * torch.randn(n, generator=gen)
    return audio, torch.tensor(lengths)


def _alone(encoder, clip: torch.Tensor) -> torch.Tensor:
    """Features of one clip of at most 30 s, encoded on its own (windowed mode off)."""
    encoder.set_windowed(False)
    feats, frames = encoder(clip[None], torch.tensor([clip.numel()]))
    return feats[0, : int(frames[0])]


@torch.no_grad()
def test_windows_are_the_windows_encoded_alone_and_concatenated(encoder):
    long = 2 * CHUNK_SAMPLES + 5 * SR + 37  # 65 s: two full windows and a 5 s rest
    audio, lengths = _audio([long, 12 * SR])
    encoder.set_windowed(True)
    feats, frames = encoder(audio, lengths)
    assert frames.tolist() == encoder.output_lengths(lengths).tolist() == [1500 + 1500 + 250, 600]
    assert feats.shape == (2, 3250, encoder.hidden_size)
    clip = audio[0, :long]
    expected = torch.cat([_alone(encoder, clip[s : s + CHUNK_SAMPLES]) for s in range(0, long, CHUNK_SAMPLES)])
    torch.testing.assert_close(feats[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(feats[1, :600], _alone(encoder, audio[1, : 12 * SR]), rtol=1e-4, atol=1e-5)
    assert not feats[1, 600:].any(), "frames past a clip's length are zero"


@torch.no_grad()
def test_length_rule_matches_the_output_at_window_edges(encoder):
    # exactly 30 s, 60 s, a rest shorter than one hop (no frame), a rest of one hop, 30 s + 1 s
    lengths = [CHUNK_SAMPLES, 2 * CHUNK_SAMPLES, CHUNK_SAMPLES + 100, CHUNK_SAMPLES + 160, CHUNK_SAMPLES + SR]
    audio, lengths_t = _audio(lengths, seed=1)
    encoder.set_windowed(True)
    feats, frames = encoder(audio, lengths_t)
    assert frames.tolist() == encoder.output_lengths(lengths_t).tolist() == [1500, 3000, 1500, 1501, 1550]
    assert feats.shape[1] == 3000
    encoder.set_windowed(False)
    assert encoder.output_lengths(lengths_t).tolist()[:1] == [1500]  # one-pass rule caps at 30 s


@torch.no_grad()
def test_windows_per_pass_does_not_change_the_features(encoder):
    audio, lengths = _audio([CHUNK_SAMPLES * 2 + SR, CHUNK_SAMPLES + 3 * SR], seed=2)
    encoder.set_windowed(True)
    whole, _ = encoder(audio, lengths)
    encoder.windows_per_pass = 1
    try:
        one_by_one, _ = encoder(audio, lengths)
    finally:
        del encoder.windows_per_pass  # back to the class default
    torch.testing.assert_close(whole, one_by_one, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_off_refuses_long_clips_and_short_clips_are_the_same_either_way(encoder):
    audio, lengths = _audio([CHUNK_SAMPLES + SR], seed=3)
    encoder.set_windowed(False)
    with pytest.raises(ValueError, match="decode.segment=windowed"):
        encoder(audio, lengths)
    short, short_lengths = _audio([7 * SR, 3 * SR], seed=4)
    off, _ = encoder(short, short_lengths)
    encoder.set_windowed(True)
    on, _ = encoder(short, short_lengths)
    assert torch.equal(on, off)


def _cfg(segment: str, max_new_tokens: int = 10, max_segment_seconds: float | None = None) -> Config:
    return Config(decode=DecodeConfig(segment=segment, max_new_tokens=max_new_tokens, max_segment_seconds=max_segment_seconds))


def test_prepare_long_form_switches_the_encoder_and_stops_splitting(encoder):
    model = SimpleNamespace(encoder=encoder)
    assert prepare_long_form(_cfg("windowed"), model) == math.inf and encoder.windowed
    assert prepare_long_form(_cfg("vad"), model) == 30.0 and not encoder.windowed
    assert prepare_long_form(_cfg("fixed", max_segment_seconds=6.0), model) == 6.0 and not encoder.windowed
    with pytest.raises(ValueError, match="exceeds"):
        prepare_long_form(_cfg("windowed", max_segment_seconds=45.0), model)
    fixed_window = SimpleNamespace(encoder=SimpleNamespace(max_seconds=10.0))  # a fixed window, no windowed mode
    with pytest.raises(ValueError, match="cannot run clips past its 10 s window"):
        prepare_long_form(_cfg("windowed"), fixed_window)
    any_length = SimpleNamespace(encoder=SimpleNamespace(max_seconds=None))
    assert prepare_long_form(_cfg("windowed"), any_length) == math.inf


def test_token_budget_scales_with_the_longest_clip(encoder):
    model = SimpleNamespace(encoder=encoder)
    seconds = torch.tensor([65 * SR, 4 * SR])
    assert generation_settings(_cfg("windowed"), model, seconds).max_new_tokens == 30  # ceil(65 / 30) windows
    assert generation_settings(_cfg("windowed", max_segment_seconds=6.0), model, seconds).max_new_tokens == 110
    assert generation_settings(_cfg("windowed"), model, torch.tensor([30 * SR])).max_new_tokens == 10
    assert generation_settings(_cfg("vad"), model, seconds).max_new_tokens == 10


def test_decode_passes_a_long_clip_whole(tmp_path, tone_corpus):
    cfg = tiny_config(tmp_path / "run", tone_corpus, "decode.segment=windowed", "decode.max_new_tokens=4")
    model = build_model(cfg).eval()
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(str(long), (0.1 * rng.standard_normal(int(61.5 * SR))).astype(np.float32), SR)
    manifest = tmp_path / "m.jsonl"
    rows = [{"key": "long", "source": str(long), "target": "a b"}, read_manifest(tone_corpus["valid"])[0].to_json()]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with torch.no_grad():
        assert decode_manifest(cfg, model, manifest, tmp_path / "out.jsonl") == 2
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == ["long", rows[1]["key"]]
    assert all("error" not in line and "segments" not in line for line in lines)
    assert model.audio_token_count(int(61.5 * SR)) == math.ceil((3000 + 75) / 2)  # 30 s + 30 s + 1.5 s of frames, projector k=2
    fixed = dataclasses.replace(cfg, decode=dataclasses.replace(cfg.decode, segment="fixed"))
    with torch.no_grad():
        decode_manifest(fixed, model, manifest, tmp_path / "fixed.jsonl")
    assert not model.encoder.windowed and "segments" in json.loads((tmp_path / "fixed.jsonl").read_text().splitlines()[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_corpus):
    """The tiny recipe trained for 2 steps (a run directory with a checkpoint)."""
    from slamkit.train.loop import train

    run = tmp_path_factory.mktemp("windowed") / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=2", "train.valid_every=0", "train.warmup_steps=1"))
    return run


def test_server_engine_transcribes_a_long_clip_whole(run_dir, tmp_path):
    import asyncio

    from slamkit.serve.engine import Clip, Engine

    long = tmp_path / "long.wav"
    sf.write(str(long), (0.1 * np.random.default_rng(1).standard_normal(int(34 * SR))).astype(np.float32), SR)
    engine = Engine(str(run_dir), ["decode.segment=windowed", "decode.max_new_tokens=3"], max_batch=2, max_wait_ms=1)
    try:
        assert engine.window == math.inf and engine.model.encoder.windowed
        clip = Clip(long, 34.0)
        assert len(engine.plan(clip)) == 1
        transcript = asyncio.run(engine.transcribe(clip, timeout=60))
        assert [(s["start"], s["end"]) for s in transcript.segments] == [(0.0, 34.0)]
    finally:
        engine.close()


def test_server_overlap_windows_stream_the_joined_text(run_dir, tmp_path):
    """decode.segment=overlap in the server: overlapping windows, and a stream that joins to the transcript."""
    import asyncio

    from slamkit.serve.engine import Clip, Engine

    long = tmp_path / "long.wav"
    sf.write(str(long), (0.1 * np.random.default_rng(2).standard_normal(int(11 * SR))).astype(np.float32), SR)
    engine = Engine(str(run_dir), ["decode.segment=overlap", "decode.max_segment_seconds=4", "decode.segment_overlap=1",
                                   "decode.max_new_tokens=4"], max_batch=4, max_wait_ms=1)
    try:
        clip = Clip(long, 11.0)
        records = engine.plan(clip)
        spans = [(r.extra["segment"]["start"], r.extra["segment"]["end"]) for r in records]
        assert spans == [(0.0, 3.5), (2.5, 6.0), (5.0, 8.5), (7.5, 11.0)]

        async def both():
            transcript = await engine.transcribe(clip, timeout=60)
            pieces = [piece async for piece in engine.stream(engine.plan(clip), timeout=60)]
            return transcript, pieces

        transcript, pieces = asyncio.run(both())
        assert len(transcript.segments) == len(spans)
        assert pieces == ([transcript.text] if transcript.text else []), "an overlapped clip streams as one piece"
    finally:
        engine.close()


@pytest.mark.needs_reference
def test_longform_compare_quick_gives_a_row_per_method(run_dir, tmp_path):
    """benchmarks/longform_compare.py --quick's path on real speech, with a tiny run (2 steps) for speed."""
    from slamkit.assets import list_assets

    missing = [a.name for a in list_assets() if a.name in ("asterisk-sounds", "pocketsphinx-testdata") and not a.installed]
    if missing:
        pytest.skip(f"assets not installed: {missing} (make reference, or slamkit assets install NAME)")
    spec = importlib.util.spec_from_file_location("longform_compare", REPO / "benchmarks" / "longform_compare.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.compare(str(run_dir), quick=True, window=3.0, beam=1, seed=0, work=tmp_path / "work", max_new_tokens=3,
                           merge_pauses=(0.6,))
    assert len(result["recordings"]) == 1 and 30.0 < result["audio_s"] < 60.0
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["vad", "utterance", "fixed", "overlap", "windowed", "vad<=0.6"]
    for row in rows.values():
        assert {"wer", "rtfx", "seconds", "cpu_s", "segments", "ref_words", "errors"} <= set(row)
        assert row["errors"] == 0 and row["wer"] >= 0.0 and row["rtfx"] > 0 and row["ref_words"] > 50
    assert rows["windowed"]["segments"] == 1, "windowed decodes the recording whole"
    assert rows["utterance"]["segments"] >= rows["vad"]["segments"], "utterance never merges VAD spans"
    assert rows["vad"]["segments"] <= rows["vad<=0.6"]["segments"] <= rows["utterance"]["segments"]  # passed through: test_longform.py
    assert rows["vad"]["segments"] > 10 and rows["fixed"]["segments"] >= math.ceil(result["audio_s"] / 3.0)
    assert abs(rows["overlap"]["segments"] - math.ceil((result["audio_s"] - 1.0) / 2.0)) <= 1  # 3 s windows sharing 1 s
    assert "| windowed | 1 |" in bench.format_table(result)
