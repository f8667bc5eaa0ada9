"""Kaldi-style log-mel filterbank features, batched, as BEATs, EAT and AST compute them.

BEATs, EAT and AST all feed ``torchaudio.compliance.kaldi.fbank`` output to their patch
embeddings. This module computes the same features for a padded batch in one pass, without
torchaudio (which has no wheel for every torch release). Per frame, as Kaldi does:

1. frames of ``frame_length`` samples every ``frame_shift`` samples, only where a whole frame
   fits inside the clip (Kaldi's ``snip_edges``), so the frame count is
   ``1 + (n - frame_length) // frame_shift`` and padding never enters a valid frame;
2. the frame's mean removed (``remove_dc_offset``), then pre-emphasis 0.97 with the first sample
   repeated, then the window (``povey`` = Hann ** 0.85, or ``hanning``);
3. zero-padded to the next power of two (512 at 16 kHz, 25 ms), power spectrum;
4. triangular filters on Kaldi's mel scale ``1127 ln(1 + f / 700)`` between 20 Hz and Nyquist
   (the Nyquist bin gets weight 0), then ``log(max(x, float32 eps))``.

Dither is 0 and no energy term is added (the settings these models use). ``scale`` multiplies
the waveform first: BEATs feeds ``waveform * 2**15`` (16-bit sample units), EAT and AST do not.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Window = Literal["povey", "hanning"]
_EPS = float(torch.finfo(torch.float32).eps)


def kaldi_fbank_frames(lengths: Tensor, frame_length: int = 400, frame_shift: int = 160) -> Tensor:
    """Frames ``[b]`` Kaldi produces for clips of ``lengths`` samples ``[b]`` (0 below one frame)."""
    lengths = lengths.to(torch.long)
    return torch.where(lengths >= frame_length, 1 + (lengths - frame_length).clamp(min=0) // frame_shift, 0)


def _mel(freq: Tensor | float) -> Tensor:
    """Kaldi's mel scale."""
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def kaldi_mel_banks(num_bins: int, n_fft: int, sample_rate: int, low_freq: float = 20.0, high_freq: float = 0.0) -> Tensor:
    """Kaldi's triangular mel filters ``[num_bins, n_fft // 2 + 1]`` (float32, last column 0).

    ``high_freq <= 0`` is an offset from Nyquist, as in Kaldi.
    """
    nyquist = sample_rate / 2
    high = nyquist + high_freq if high_freq <= 0 else high_freq
    if not 0 <= low_freq < high <= nyquist:
        raise ValueError(f"mel range {low_freq}..{high} Hz is not inside 0..{nyquist} Hz")
    mel_low, mel_high = _mel(low_freq), _mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + torch.arange(num_bins, dtype=torch.float64)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    mel_f = _mel(sample_rate / n_fft * torch.arange(n_fft // 2, dtype=torch.float64))[None, :]
    up = (mel_f - left) / (center - left)
    down = (right - mel_f) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).to(torch.float32)


def feature_window(window: Window, size: int) -> Tensor:
    """The analysis window ``[size]`` (symmetric Hann, raised to 0.85 for ``povey``)."""
    hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
    if window == "povey":
        return hann.pow(0.85).to(torch.float32)
    if window == "hanning":
        return hann.to(torch.float32)
    raise ValueError(f"unknown fbank window {window!r}; use povey or hanning")


def kaldi_fbank(
    audio: Tensor,
    lengths: Tensor,
    *,
    num_mel_bins: int = 128,
    sample_rate: int = 16_000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window: Window = "povey",
    scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Log-mel fbank of a padded batch: ``audio [b, t]``, ``lengths [b]`` -> ``[b, T, num_mel_bins]``, ``frames [b]``.

    ``T = max(frames)``; rows past a clip's ``frames`` are 0. Computed in float32.
    """
    size = int(round(sample_rate * frame_length_ms / 1000))
    shift = int(round(sample_rate * frame_shift_ms / 1000))
    frames = kaldi_fbank_frames(lengths.to(audio.device), size, shift)
    total = int(frames.max()) if frames.numel() else 0
    if total == 0:
        return audio.new_zeros(audio.shape[0], 0, num_mel_bins, dtype=torch.float32), frames
    x = audio.float()[:, : (total - 1) * shift + size] * scale
    strided = x.unfold(1, size, shift)  # [b, T, size]
    strided = strided - strided.mean(dim=-1, keepdim=True)
    previous = torch.cat([strided[..., :1], strided[..., :-1]], dim=-1)
    strided = (strided - 0.97 * previous) * feature_window(window, size).to(x.device)
    n_fft = 1 << math.ceil(math.log2(size))
    power = torch.fft.rfft(strided, n=n_fft).abs().pow(2)
    banks = kaldi_mel_banks(num_mel_bins, n_fft, sample_rate).to(x.device)
    feats = torch.matmul(power, banks.T).clamp(min=_EPS).log()
    valid = torch.arange(total, device=x.device)[None, :] < frames[:, None]
    return feats.masked_fill(~valid[..., None], 0.0), frames
