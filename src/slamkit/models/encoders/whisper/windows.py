"""Whisper past 30 s: a long clip runs through the encoder window by window (Ultravox's approach).

Whisper has 1 500 position embeddings, so one pass takes at most 30 s. In windowed mode
(:meth:`WhisperAudioEncoder.set_windowed`) a longer clip is cut into consecutive windows of
``window`` samples with **no overlap** (the last one holds the rest); every window is encoded on
its own exactly as a short clip is (its own log-mel, dynamic-range clamp and positions 0…), and
the windows' frames are concatenated in time. The projector and the LLM then see one sequence
for the whole clip. A clip of ``n`` samples gives
``(n // window) * rule(window) + rule(n % window)`` frames (:func:`windowed_frames`); a rest
shorter than one mel hop (10 ms) gives no frame and is not run.
"""

from __future__ import annotations

import torch
from torch import Tensor

from slamkit.models.lengths import LengthRule


def windowed_frames(lengths: Tensor, window: int, rule: LengthRule) -> Tensor:
    """Samples ``[b]`` -> frames ``[b]`` when clips run in windows of ``window`` samples, each
    window giving ``rule(window_samples)`` frames (the encoder's own one-pass rule)."""
    lengths = lengths.to(torch.long)
    full = torch.div(lengths, window, rounding_mode="floor")
    per_window = rule(torch.tensor([window], device=lengths.device))[0]
    return full * per_window + rule(lengths - full * window)


def split_windows(audio: Tensor, lengths: Tensor, window: int, min_samples: int) -> tuple[Tensor, Tensor, Tensor]:
    """``audio [b, t]``, ``lengths [b]`` -> ``windows [n, w]``, ``window_lengths [n]``, ``owner [n]``.

    Windows are listed clip by clip, in time order; ``owner`` is each window's clip index and
    ``w = min(window, max(lengths))``. A rest shorter than ``min_samples`` after a full window
    is left out (it gives no frame); a whole clip that short is kept, so the front end's own
    error names it.
    """
    starts: list[tuple[int, int, int]] = []  # (clip, start, samples)
    for i, n in enumerate(lengths.tolist()):
        for start in range(0, max(n, 1), window):
            size = min(window, n - start)
            if start == 0 or size >= min_samples:
                starts.append((i, start, size))
    width = min(window, int(lengths.max()))
    windows = audio.new_zeros(len(starts), width)
    for j, (i, start, size) in enumerate(starts):
        windows[j, :size] = audio[i, start : start + size]
    sizes = torch.tensor([s for _, _, s in starts], dtype=torch.long, device=audio.device)
    owner = torch.tensor([i for i, _, _ in starts], dtype=torch.long, device=audio.device)
    return windows, sizes, owner


def join_windows(feats: Tensor, frames: Tensor, owner: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    """Windows' ``feats [n, t, d]`` with ``frames [n]`` valid each, ``owner [n]`` -> ``[batch, T, d]``, ``[batch]``.

    Each clip's windows' valid frames are concatenated in order; ``T`` is the longest total and
    rows are zero past their clip's frames.
    """
    totals = torch.zeros(batch, dtype=torch.long, device=feats.device).index_add_(0, owner.to(feats.device), frames.to(feats.device))
    out = feats.new_zeros(batch, int(totals.max()), feats.shape[-1])
    filled = [0] * batch
    for j, (i, f) in enumerate(zip(owner.tolist(), frames.tolist())):
        out[i, filled[i] : filled[i] + f] = feats[j, :f]
        filled[i] += f
    return out, totals
