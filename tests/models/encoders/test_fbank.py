"""Kaldi-style fbank: frame counts, padding independence, and parity with Kaldi's own algorithm."""

from __future__ import annotations

import pytest
import torch

from slamkit.models.encoders.fbank import kaldi_fbank, kaldi_fbank_frames, kaldi_mel_banks


def test_frame_count_follows_snip_edges() -> None:
    lengths = torch.tensor([0, 399, 400, 559, 560, 16000])
    assert kaldi_fbank_frames(lengths).tolist() == [0, 0, 1, 1, 2, 98]
    audio = torch.randn(len(lengths), 16000)
    feats, frames = kaldi_fbank(audio, lengths)
    assert frames.tolist() == [0, 0, 1, 1, 2, 98]
    assert feats.shape == (6, 98, 128)
    for i, n in enumerate(frames.tolist()):
        assert bool((feats[i, n:] == 0).all())


def test_a_clip_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(12000), torch.randn(7000)
    batch = torch.zeros(2, 12000)
    batch[0], batch[1, :7000] = a, b
    batch[1, 7000:] = 5.0  # garbage padding must not leak into valid frames
    feats, frames = kaldi_fbank(batch, torch.tensor([12000, 7000]), window="hanning")
    alone, n = kaldi_fbank(b[None], torch.tensor([7000]), window="hanning")
    assert int(frames[1]) == int(n[0])
    torch.testing.assert_close(feats[1, : int(n[0])], alone[0], rtol=0, atol=0)


def test_mel_banks_are_triangles_without_the_nyquist_bin() -> None:
    banks = kaldi_mel_banks(128, 512, 16000)
    assert banks.shape == (128, 257)
    assert float(banks.max()) <= 1.0 and float(banks.min()) == 0.0
    assert bool((banks[:, -1] == 0).all())


@pytest.mark.parametrize("window", ["povey", "hanning"])
@pytest.mark.parametrize("scale", [1.0, 2.0**15])
def test_matches_kaldi(window: str, scale: float) -> None:
    """Same features as kaldi-native-fbank (a C++ port of Kaldi's compute-fbank-feats).

    Kaldi refuses 128 bins at a 512-point FFT (some low filters hold no FFT point; torchaudio,
    which BEATs/EAT/AST use, allows it), so the comparison runs at 80 bins; 128 is the same code.
    """
    knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank (test extra) is not installed")
    torch.manual_seed(1)
    audio = torch.randn(2, 16000) * 0.1
    lengths = torch.tensor([16000, 9001])
    feats, frames = kaldi_fbank(audio, lengths, num_mel_bins=80, window=window, scale=scale)  # type: ignore[arg-type]
    for i in range(2):
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.window_type = window
        opts.mel_opts.num_bins = 80
        online = knf.OnlineFbank(opts)
        online.accept_waveform(16000, (audio[i, : int(lengths[i])] * scale).tolist())
        online.input_finished()
        ref = torch.tensor([online.get_frame(j) for j in range(online.num_frames_ready)])
        assert ref.shape[0] == int(frames[i])
        torch.testing.assert_close(feats[i, : int(frames[i])], ref, rtol=0, atol=1e-3)
