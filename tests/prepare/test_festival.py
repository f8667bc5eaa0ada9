"""Tests for the ``festival`` TTS engine (Festival's text2wave with the Debian voices slt_hts,
kal_diphone, ked_diphone): each voice speaks, rate and pitch act, bad input is survived, and a
missing package is named. The speaking tests skip without the packages (under CI=true a skip
fails the run; the Makefile's `reference` target installs the `festival` asset)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.assets import AssetMissingError, ProgramAsset
from slamkit.prepare import festival_voice
from slamkit.prepare.voices import SAMPLE_RATE, TTS_ENGINES, TTSJob, Voice, check_engines, synthesize

TEXT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def festival_ready() -> None:
    problem = festival_voice.missing()
    if problem is not None:
        pytest.skip(problem)


def _speak(tmp_path: Path, name: str, rate: float, pitch: float | None, text: str = TEXT) -> tuple[dict, Path]:
    wav = tmp_path / f"{name}-{rate}-{pitch}.wav"
    job = TTSJob(key=wav.stem, text=text, where="t.txt:1", voice=Voice("festival", name, rate, pitch),
                 telephone=False, wav=wav)
    return synthesize(job), wav


def _mean_f0(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median autocorrelation pitch (Hz) of the loud frames of ``wave`` ``[t]``."""
    frame, found = int(0.04 * rate), []
    for start in range(0, len(wave) - frame, frame // 2):
        x = wave[start:start + frame] - wave[start:start + frame].mean()
        if np.sqrt(np.mean(x ** 2)) < 0.02:
            continue
        corr = np.correlate(x, x, "full")[frame - 1:]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.4 * corr[0]:
            found.append(rate / lag)
    return float(np.median(found))


@pytest.mark.parametrize("name", sorted(festival_voice.VOICES))
def test_each_voice_speaks_16k_mono_pcm16(tmp_path: Path, festival_ready: None, name: str) -> None:
    pitch = None if festival_voice.VOICES[name].hts else 1.0
    result, wav = _speak(tmp_path, name, 1.0, pitch)
    assert "error" not in result, result
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert 0.8 < result["duration"] < 4.0  # six words
    assert result["voice"] == f"festival/{name}" and result["engine"] == "festival"


@pytest.mark.parametrize("name", ["slt_hts", "kal_diphone"])
def test_rate_shortens_and_pitch_raises(tmp_path: Path, festival_ready: None, name: str) -> None:
    hts = festival_voice.VOICES[name].hts
    slow, _ = _speak(tmp_path, name, 0.8, None if hts else 1.0)
    fast, _ = _speak(tmp_path, name, 1.25, None if hts else 1.0)
    assert fast["duration"] < 0.85 * slow["duration"]
    if not hts:
        low = _mean_f0(sf.read(_speak(tmp_path, name, 1.0, 0.85)[1], dtype="float32")[0])
        high = _mean_f0(sf.read(_speak(tmp_path, name, 1.0, 1.2)[1], dtype="float32")[0])
        assert 1.25 < high / low < 1.6  # 1.2 / 0.85 = 1.41


def test_leading_dashes_do_not_crash_the_diphone_voice(tmp_path: Path, festival_ready: None) -> None:
    # Festival's diphone voices die with SIGSEGV on "-- Hello …"; the transcript keeps the text as given.
    result, _ = _speak(tmp_path, "ked_diphone", 1.0, 1.0, text="-- Hello ... ... world.")
    assert "error" not in result, result
    assert result["target"] == "-- Hello ... ... world."


def test_speakable_drops_only_silent_leading_or_repeated_punctuation() -> None:
    assert festival_voice.speakable("-- Hi ... ... there -") == "Hi ... there -"
    assert festival_voice.speakable("I love mankind ...") == "I love mankind ..."
    assert festival_voice.speakable("& so $ 5 - ok") == "& so $ 5 - ok"


def test_draws_are_seeded_and_in_range() -> None:
    engine = TTS_ENGINES.get("festival")
    voices = [engine.sample_voice(random.Random(f"0-{i}")) for i in range(60)]
    assert voices == [engine.sample_voice(random.Random(f"0-{i}")) for i in range(60)]
    assert {v.voice for v in voices} == set(festival_voice.VOICES)
    for v in voices:
        assert festival_voice.RATE[0] <= v.rate <= festival_voice.RATE[1]
        assert (v.pitch is None) == festival_voice.VOICES[v.voice].hts


def test_command_sets_rate_and_pitch_per_voice(tmp_path: Path) -> None:
    hts = " ".join(festival_voice.command("slt_hts", 1.25, None, tmp_path / "a.wav"))
    assert '(voice_cmu_us_slt_arctic_hts)' in hts and '"-r" 1.2500' in hts and "target_f0_mean" not in hts
    diphone = " ".join(festival_voice.command("kal_diphone", 0.8, 1.1, tmp_path / "a.wav"))
    assert "Duration_Stretch) 0.8000" in diphone and "(* 1.1000" in diphone


def test_missing_festival_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(festival_voice.shutil, "which", lambda program: None)
    with pytest.raises(AssetMissingError, match="apt-get install -y festival festvox-us-slt-hts festvox-kallpc16k "
                                                "festvox-kdlpc16k") as err:
        check_engines(["festival"])
    assert "festvox-kdlpc16k" in str(err.value).split(":")[0]  # the lacking packages come first


def test_missing_voice_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(festival_voice.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(festival_voice, "installed_voices", lambda: {"kal_diphone", "cmu_us_slt_arctic_hts"})
    problem = festival_voice.missing()
    assert problem is not None and "package(s) festvox-kdlpc16k (" in problem


def test_program_asset_needs_its_files_and_names_every_package(tmp_path: Path) -> None:
    present = shutil.which("sh")
    assert present is not None
    asset = ProgramAsset("x", "x", "MIT", program="sh", apt_package="a", extra_packages=("b", "c"),
                         files=(str(tmp_path / "voice.scm"),))
    assert asset.locate(tmp_path) is None
    (tmp_path / "voice.scm").write_text("")
    assert asset.locate(tmp_path) == Path(present)
    assert "apt-get install -y a b c" in asset.install_hint() and "a + b + c" in asset.source
