"""AV-HuBERT's audio features: 26 log mel filterbanks at 100 Hz, 4 frames stacked to 25 Hz, normalised.

The official loader computes ``python_speech_features.logfbank`` (25 ms frames every 10 ms,
pre-emphasis 0.97, rectangular window, 512-point FFT power spectrum / 512, 26 triangular mel
filters on 0–8 kHz with integer FFT-bin edges, log with a machine-epsilon floor) on the int16
samples, stacks 4 consecutive frames (zero-padding the last group), cuts or pads to the video's
frames, and applies ``layer_norm`` over the whole clip. :func:`avhubert_audio_features` does the
same in torch, on one clip's samples scaled to the int16 range.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SAMPLE_RATE = 16_000
WIN, HOP, NFFT, NFILT, PREEMPH, STACK = 400, 160, 512, 26, 0.97, 4
FEATURE_DIM = NFILT * STACK  # 104, the checkpoint's audio_feat_dim


def mel_filterbank(nfilt: int = NFILT, nfft: int = NFFT, rate: int = SAMPLE_RATE) -> Tensor:
    """``[nfilt, nfft // 2 + 1]`` triangular filters with python_speech_features' bin edges."""
    def hz2mel(hz: float) -> float:
        return 2595 * math.log10(1 + hz / 700.0)

    mels = np.linspace(hz2mel(0.0), hz2mel(rate / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mels / 2595.0) - 1)) / rate).astype(int)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(lo, mid):
            fb[j, i] = (i - lo) / (mid - lo)
        for i in range(mid, hi):
            fb[j, i] = (hi - i) / (hi - mid)
    return torch.from_numpy(fb).float()


def logfbank(wave: Tensor, filters: Tensor) -> Tensor:
    """``[t]`` samples -> ``[n, NFILT]`` log filterbank energies (n = 1 + ceil((t - 400) / 160))."""
    x = torch.cat([wave[:1], wave[1:] - PREEMPH * wave[:-1]])
    n = 1 if len(x) <= WIN else 1 + math.ceil((len(x) - WIN) / HOP)
    x = F.pad(x, (0, (n - 1) * HOP + WIN - len(x)))
    frames = x.unfold(0, WIN, HOP)  # [n, WIN]
    power = torch.fft.rfft(frames, NFFT).abs().pow(2) / NFFT
    energies = power @ filters.t()
    return torch.log(torch.where(energies == 0, torch.finfo(torch.float64).eps, energies))


def avhubert_audio_features(wave: Tensor, frames: int, filters: Tensor) -> Tensor:
    """One clip's waveform ``[t]`` (float in [-1, 1], 16 kHz) -> normalised features ``[frames, 104]`` (float32).

    Computed in float32 even under autocast: log energies of int16-scaled audio span too wide a range for bf16.
    """
    with torch.autocast(wave.device.type, enabled=False):
        feats = logfbank(wave.float() * 32768.0, filters.to(wave.device, torch.float32))
    pad = (-len(feats)) % STACK
    feats = F.pad(feats, (0, 0, 0, pad)).reshape(-1, FEATURE_DIM)
    feats = F.pad(feats[:frames], (0, 0, 0, max(0, frames - len(feats))))
    return F.layer_norm(feats, feats.shape)
