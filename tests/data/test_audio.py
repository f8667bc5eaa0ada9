"""Tests for slamkit.data.audio: mono mix, resampling, cropping, and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.data.audio import AudioError, audio_duration, audio_info, load_audio


def _write(path: Path, data: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def _sine(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mono_float32_passthrough(tmp_path: Path) -> None:
    wave = _sine(440, 16000, 0.5)
    path = _write(tmp_path / "a.wav", wave, 16000, "FLOAT")
    out = load_audio(path, 16000)
    assert out.dtype == np.float32 and out.ndim == 1 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, wave)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    right = np.full(1600, 0.25, dtype=np.float32)
    path = _write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, "FLOAT")
    out = load_audio(path, 16000)
    assert out.shape == (1600,)
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-7)


def test_resample_8k_to_16k_keeps_length_and_frequency(tmp_path: Path) -> None:
    path = _write(tmp_path / "s8k.flac", _sine(440, 8000, 1.0), 8000)
    out = load_audio(path, 16000)
    assert out.dtype == np.float32
    assert abs(out.shape[0] - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.shape[0])))
    peak_hz = np.argmax(spectrum) * 16000 / out.shape[0]
    assert abs(peak_hz - 440) <= 2
    assert 0.4 < np.abs(out[1000:-1000]).max() < 0.6  # amplitude kept, no clipping


def test_crop_reads_the_right_samples(tmp_path: Path) -> None:
    ramp = (np.arange(16000, dtype=np.float32) / 16000) - 0.5
    path = _write(tmp_path / "ramp.wav", ramp, 16000, "FLOAT")
    out = load_audio(path, 16000, offset=0.25, duration=0.5)
    np.testing.assert_array_equal(out, ramp[4000:12000])
    tail = load_audio(path, 16000, offset=0.75)
    np.testing.assert_array_equal(tail, ramp[12000:])
    clipped = load_audio(path, 16000, offset=0.75, duration=10.0)  # runs past the end: clipped
    np.testing.assert_array_equal(clipped, ramp[12000:])


def test_info_and_duration(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.wav", np.zeros(24000, dtype=np.float32), 8000)
    assert audio_info(path) == (8000, 24000)
    assert audio_duration(path) == pytest.approx(3.0)
    assert audio_duration(path, offset=1.0) == pytest.approx(2.0)
    assert audio_duration(path, offset=1.0, duration=0.5) == pytest.approx(0.5)
    assert audio_duration(path, offset=2.5, duration=5.0) == pytest.approx(0.5)


def test_all_zero_audio_is_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros(800, dtype=np.float32), 16000)
    assert not load_audio(path, 16000).any()


def _assert_error(path: Path, match: str, **crop: float) -> None:
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, 16000, **crop)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nope.wav", "not found")
    with pytest.raises(AudioError, match="nope.wav"):
        audio_info(tmp_path / "nope.wav")


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _assert_error(path, "unreadable")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    _assert_error(path, "unreadable")


def test_wav_with_no_samples(tmp_path: Path) -> None:
    path = _write(tmp_path / "nosamples.wav", np.zeros(0, dtype=np.float32), 16000)
    _assert_error(path, "no audio samples")


def test_nan_samples(tmp_path: Path) -> None:
    wave = _sine(300, 16000, 0.1)
    wave[10] = np.nan
    wave[20] = np.inf
    path = _write(tmp_path / "nan.wav", wave, 16000, "FLOAT")
    _assert_error(path, "2 non-finite")


def test_offset_beyond_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "short.wav", np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="beyond the end") as info:
        load_audio(path, 16000, offset=2.0, duration=1.0)
    message = str(info.value)
    assert str(path) in message and "offset=2s" in message and "duration=1s" in message
    with pytest.raises(AudioError, match="short.wav"):
        audio_duration(path, offset=1.0)


def test_bad_crop_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.wav", np.zeros(16000, dtype=np.float32), 16000)
    _assert_error(path, "offset must be", offset=-1.0)
    _assert_error(path, "duration must be", duration=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(path, 0)
