"""Whisper log-mel front end: parity with openai-whisper's own code, lengths, batch invariance.

The reference is ``whisper/audio.py`` + ``whisper/assets/mel_filters.npz`` from the PyPI sdist
``openai-whisper==20250625``, imported in isolation (openai-whisper itself is never installed).
Fetch it with ``scripts/fetch_reference.sh`` or point ``SLAMKIT_WHISPER_SDIST`` at the .tar.gz
or its extracted directory; without it the parity tests skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from slamkit.models.encoders.whisper.frontend import CHUNK_SAMPLES, WhisperLogMel, whisper_mel_filters

from conftest import REPO

SDIST_NAME = "openai_whisper-20250625"
FETCH = "scripts/fetch_reference.sh  (or set SLAMKIT_WHISPER_SDIST=/path/to/openai_whisper-20250625.tar.gz)"
ATOL = 1e-4


def _find_sdist() -> Path | None:
    """The extracted sdist's ``whisper/`` directory or the .tar.gz, if present."""
    candidates = []
    if os.environ.get("SLAMKIT_WHISPER_SDIST"):
        candidates.append(Path(os.environ["SLAMKIT_WHISPER_SDIST"]))
    ref = REPO / ".cache" / "reference"
    candidates += [ref / SDIST_NAME, ref / f"{SDIST_NAME}.tar.gz"]
    for path in candidates:
        if path.is_dir() and (path / "whisper" / "audio.py").is_file():
            return path / "whisper"
        if path.is_file() and path.name.endswith(".tar.gz"):
            return path
    return None


def _extract(sdist: Path, into: Path) -> Path:
    """The ``whisper/`` directory of ``sdist`` (extracting a .tar.gz into ``into`` first)."""
    if sdist.is_dir():
        return sdist
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse odd members
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    return next(into.glob("*/whisper"))


@pytest.fixture(scope="session")
def ref_audio(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """openai-whisper's ``audio.py`` as a throwaway package holding only audio.py, utils.py, assets."""
    sdist = _find_sdist()
    if sdist is None:
        pytest.skip(f"openai-whisper reference sdist not found; fetch it with: {FETCH}")
    tmp = tmp_path_factory.mktemp("whisper_ref")
    src = _extract(sdist, tmp / "sdist")
    pkg = tmp / "whisper_ref"
    (pkg / "assets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("audio.py", "utils.py"):  # utils.py imports only the standard library
        shutil.copy(src / name, pkg / name)
    shutil.copy(src / "assets" / "mel_filters.npz", pkg / "assets" / "mel_filters.npz")
    sys.path.insert(0, str(tmp))
    try:
        spec = importlib.util.spec_from_file_location("whisper_ref", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["whisper_ref"] = package
        spec.loader.exec_module(package)
        return importlib.import_module("whisper_ref.audio")
    finally:
        sys.path.remove(str(tmp))


def _clips(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Speech-like test clips: tones + noise, with a near-silent tail so the 8-decade clamp bites."""
    gen = torch.Generator().manual_seed(seed)
    clips = []
    for i, n in enumerate(lengths):
        t = torch.arange(n) / 16_000
        x = 0.3 * torch.sin(2 * torch.pi * (220 + 130 * i) * t) + 0.05 * torch.randn(n, generator=gen)
        x[int(n * 0.7) :] *= 1e-5
        clips.append(x.float())
    return clips


def _batch(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``clips`` with noise (padding must not matter) -> ``[b, t]``, ``[b]``."""
    lengths = torch.tensor([len(c) for c in clips])
    audio = torch.randn(len(clips), int(lengths.max())) * 0.5
    for i, c in enumerate(clips):
        audio[i, : len(c)] = c
    return audio, lengths


LENGTHS = [16_000 + 77, 4_321, 37_999, 480, 201]


@pytest.mark.needs_reference
@pytest.mark.parametrize("n_mels", [80, 128])
def test_filterbank_matches_whisper_assets(ref_audio: ModuleType, n_mels: int) -> None:
    ref = np.load(Path(ref_audio.__file__).parent / "assets" / "mel_filters.npz")[f"mel_{n_mels}"]
    ours = whisper_mel_filters(n_mels).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-7, rtol=0)


@pytest.mark.needs_reference
@pytest.mark.parametrize("n_mels", [80, 128])
def test_real_length_matches_whisper(ref_audio: ModuleType, n_mels: int) -> None:
    clips = _clips(LENGTHS)
    mel, frames = WhisperLogMel(n_mels)(*_batch(clips))
    assert frames.tolist() == [n // 160 for n in LENGTHS]
    assert mel.shape == (len(clips), n_mels, max(LENGTHS) // 160)
    for i, clip in enumerate(clips):
        ref = ref_audio.log_mel_spectrogram(clip, n_mels, padding=0)
        assert ref.shape == (n_mels, frames[i])
        diff = (mel[i, :, : frames[i]] - ref).abs().max().item()
        assert diff < ATOL, f"clip {i}: max |ours - whisper| = {diff:.3g}"
        assert not mel[i, :, frames[i] :].any(), "padding frames must be 0"


@pytest.mark.needs_reference
@pytest.mark.parametrize("n_mels", [80, 128])
def test_pad_to_30s_matches_whisper(ref_audio: ModuleType, n_mels: int) -> None:
    clips = _clips([16_000 * 3 + 5, 7_777])
    mel, frames = WhisperLogMel(n_mels, pad_to_30s=True)(*_batch(clips))
    assert mel.shape == (2, n_mels, 3000)
    assert frames.tolist() == [(16_000 * 3 + 5) // 160, 7_777 // 160]
    for i, clip in enumerate(clips):
        ref = ref_audio.log_mel_spectrogram(ref_audio.pad_or_trim(clip), n_mels)
        diff = (mel[i] - ref).abs().max().item()
        assert diff < ATOL, f"clip {i}: max |ours - whisper| = {diff:.3g}"


LONG = CHUNK_SAMPLES + 16_000 + 3


@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_long_clip_is_refused_not_truncated(pad_to_30s: bool) -> None:
    """Past Whisper's 30 s window the front end raises (naming the limit) instead of cutting."""
    (clip,) = _clips([LONG])
    front = WhisperLogMel(80, pad_to_30s=pad_to_30s)
    with pytest.raises(ValueError, match="window is 30 s"):
        front(clip[None], torch.tensor([LONG]))
    mel, frames = front(clip[None, :CHUNK_SAMPLES], torch.tensor([CHUNK_SAMPLES]))  # exactly 30 s is fine
    assert frames.tolist() == [3000] and mel.shape == (1, 80, 3000)


def test_whisper_encoder_declares_its_window() -> None:
    from slamkit.models.encoders.base import AudioEncoder
    from slamkit.models.encoders.whisper.encoder import WhisperAudioEncoder

    assert WhisperAudioEncoder.max_seconds == 30.0 and AudioEncoder.max_seconds is None


@pytest.mark.needs_reference
@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_30s_clip_matches_whisper(ref_audio: ModuleType, pad_to_30s: bool) -> None:
    (clip,) = _clips([CHUNK_SAMPLES])
    mel, _ = WhisperLogMel(80, pad_to_30s=pad_to_30s)(clip[None], torch.tensor([CHUNK_SAMPLES]))
    ref = ref_audio.log_mel_spectrogram(ref_audio.pad_or_trim(clip), 80)
    assert (mel[0] - ref).abs().max().item() < ATOL


@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_batch_invariance(pad_to_30s: bool) -> None:
    """A clip's features are the same alone and in any batch (noise in the padding included)."""
    clips = _clips([9_000, 20_000, 3_000], seed=1)
    front = WhisperLogMel(80, pad_to_30s=pad_to_30s)
    batch_mel, frames = front(*_batch(clips))
    for i, clip in enumerate(clips):
        alone, alone_frames = front(clip[None], torch.tensor([len(clip)]))
        assert alone_frames.item() == frames[i]
        t = alone.shape[-1]
        torch.testing.assert_close(batch_mel[i, :, :t], alone[0], atol=1e-6, rtol=0)


def test_bad_lengths_fail_clearly() -> None:
    front = WhisperLogMel(80)
    with pytest.raises(ValueError, match="at least 160 samples"):
        front(torch.zeros(1, 1000), torch.tensor([100]))
    with pytest.raises(ValueError, match="exceeds"):
        front(torch.zeros(1, 1000), torch.tensor([2000]))


def test_very_short_clip_gives_its_frames() -> None:
    """Clips under 12.5 ms (too short for Whisper's reflect padding) still give n // 160 frames."""
    mel, frames = WhisperLogMel(80)(torch.randn(2, 400), torch.tensor([161, 400]))
    assert frames.tolist() == [1, 2] and mel.shape == (2, 80, 2)
    assert torch.isfinite(mel).all() and not mel[0, :, 1:].any()


def test_filterbank_stays_float32_when_model_is_cast() -> None:
    front = WhisperLogMel(80)
    audio, lengths = _batch(_clips([5_000, 3_000]))
    expected, _ = front(audio, lengths)
    front.to(torch.bfloat16)
    assert front.filters.dtype == torch.float32 and front.window.dtype == torch.float32
    torch.testing.assert_close(front(audio, lengths)[0], expected, atol=0, rtol=0)
