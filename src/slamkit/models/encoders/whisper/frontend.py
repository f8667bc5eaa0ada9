"""Whisper's log-mel front end: a padded waveform batch -> log-mel features.

:class:`WhisperLogMel` reproduces OpenAI Whisper's ``log_mel_spectrogram`` (``whisper/audio.py``):
400-point STFT with a Hann window and hop 160 at 16 kHz, power spectrum without the last frame,
slaney-normalised mel filterbank, ``log10`` clamped at 1e-10, dynamic range limited to 8 (in
log10 units) below the maximum, then ``(x + 4) / 4``. It is a ``nn.Module`` so the filterbank
travels with the model's device, and it differs from Whisper in one deliberate way: every clip is
processed on its own valid length, so a clip's features never depend on the batch it is in.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.audio_utils import mel_filter_bank

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # 480 000 samples: Whisper's 30 s window
CHUNK_FRAMES = CHUNK_SAMPLES // HOP_LENGTH  # 3 000 mel frames


def whisper_mel_filters(n_mels: int) -> Tensor:
    """Whisper's mel filterbank ``[n_mels, n_fft // 2 + 1]`` (librosa's slaney filters, float32).

    Matches ``whisper/assets/mel_filters.npz`` to ~1e-9; computed here so nothing reads
    openai-whisper's files at run time.
    """
    filters = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters.T.copy()).to(torch.float32)


def mel_frame_count(lengths: Tensor) -> Tensor:
    """Valid mel frames for clips of ``lengths`` samples ``[b]`` -> ``[b]`` (n // 160, at most 3000).

    The same with or without ``pad_to_30s``: that pads the input, not the real content. (The cap
    only keeps the rule total: :class:`WhisperLogMel` refuses clips longer than 30 s.)
    """
    return torch.div(lengths.clamp(max=CHUNK_SAMPLES), HOP_LENGTH, rounding_mode="floor")


class WhisperLogMel(nn.Module):
    """Whisper log-mel features of a padded batch, each clip on its own length.

    Args:
        n_mels: 80 (Whisper up to large-v2) or 128 (large-v3); any count works.
        pad_to_30s: zero-pad every clip to 30 s before the STFT, as Whisper does; the output then
            always has 3000 frames and its dynamic-range clamp sees the padding too.
    """

    def __init__(self, n_mels: int = 80, pad_to_30s: bool = False) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.pad_to_30s = pad_to_30s
        # Not persistent: both are functions of n_mels, so checkpoints need not carry them.
        self.register_buffer("filters", whisper_mel_filters(n_mels), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "WhisperLogMel":
        """Move with the model, but keep the filterbank float32 when the model is cast to half."""
        super()._apply(fn, recurse)
        if self.filters.dtype != torch.float32:
            # Rebuilt rather than cast back: a round trip through half precision would lose bits.
            self.filters = whisper_mel_filters(self.n_mels).to(self.filters.device)
            self.window = torch.hann_window(N_FFT, device=self.window.device)
        return self

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames ``[b]`` for clips of ``lengths`` samples ``[b]``."""
        return mel_frame_count(lengths)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float 16 kHz, ``lengths [b]`` samples -> ``mel [b, n_mels, T]``, ``frames [b]``.

        Real-length mode: ``T = max(frames)`` and frames past a clip's length are 0. With
        ``pad_to_30s``: ``T = 3000`` and every frame is Whisper's input (the padding's mel
        included); ``frames`` still counts only the real ones.
        """
        lengths = self._check_lengths(audio, lengths)
        frames = self.output_lengths(lengths)
        # Autocast would run the filterbank matmul in half precision; features stay float32.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            rows = self._padded_rows(audio.float(), lengths)
            log_spec = self._log_mel(rows)  # [b, n_mels, T]
            log_spec = _clamp_dynamic_range(log_spec, None if self.pad_to_30s else frames)
            if not self.pad_to_30s:
                log_spec = log_spec.masked_fill(~_frame_mask(frames, log_spec.shape[-1])[:, None, :], 0.0)
        return log_spec, frames

    def _check_lengths(self, audio: Tensor, lengths: Tensor) -> Tensor:
        """Validate ``lengths [b]`` against ``audio [b, t]`` and Whisper's 30 s window.

        A clip longer than 30 s is an error, never cut silently: `slamkit decode` segments long
        audio before it gets here (:mod:`slamkit.infer.longform`) and training skips clips past
        ``data.max_seconds``, which may not exceed the window.
        """
        if audio.dim() != 2 or lengths.shape != audio.shape[:1]:
            raise ValueError(f"expected audio [b, t] and lengths [b], got {tuple(audio.shape)} and {tuple(lengths.shape)}")
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        if bool((lengths > audio.shape[1]).any()):
            raise ValueError(f"a length exceeds the padded audio ({audio.shape[1]} samples): {lengths.tolist()}")
        if bool((lengths < HOP_LENGTH).any()):
            raise ValueError(f"clips need at least {HOP_LENGTH} samples (one 10 ms frame); lengths: {lengths.tolist()}")
        if bool((lengths > CHUNK_SAMPLES).any()):
            longest = int(lengths.max()) / SAMPLE_RATE
            raise ValueError(f"Whisper's input window is {CHUNK_SAMPLES // SAMPLE_RATE} s ({CHUNK_SAMPLES} samples at {SAMPLE_RATE} Hz); "
                             f"got a clip of {longest:.2f} s. Segment long audio first (slamkit decode does: decode.segment, "
                             "decode.max_segment_seconds), run it in 30 s windows (decode.segment=windowed) or keep "
                             "data.max_seconds <= 30")
        return lengths

    def _padded_rows(self, audio: Tensor, lengths: Tensor) -> Tensor:
        """Each clip reflect-padded by n_fft/2 on its own ends, as ``torch.stft(center=True)`` would.

        ``[b, t]`` -> ``[b, L + n_fft]`` with ``L`` the longest (or 30 s) clip; zeros after each
        row's own padding. A centred STFT of the clip alone equals a non-centred STFT of its row.
        """
        target = CHUNK_SAMPLES if self.pad_to_30s else int(lengths.max())
        half = N_FFT // 2
        rows = audio.new_zeros(audio.shape[0], target + N_FFT)
        for i, n in enumerate(lengths.tolist()):
            clip = audio[i, :n]
            if self.pad_to_30s:
                clip = F.pad(clip, (0, CHUNK_SAMPLES - n))
            elif n <= half:
                # Reflection needs more than n_fft/2 samples; such clips (<12.5 ms) are padded
                # with zeros first, which Whisper itself cannot process at all.
                clip = F.pad(clip, (0, half + 1 - n))
            padded = F.pad(clip[None, None], (half, half), mode="reflect")[0, 0]
            rows[i, : padded.shape[0]] = padded[: rows.shape[1]]
        return rows

    def _log_mel(self, rows: Tensor) -> Tensor:
        """``rows [b, L + n_fft]`` -> ``log10`` mel power ``[b, n_mels, L // 160]`` (last frame dropped)."""
        stft = torch.stft(rows, N_FFT, HOP_LENGTH, window=self.window, center=False, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        mel = self.filters @ power
        return torch.clamp(mel, min=1e-10).log10()


def _frame_mask(frames: Tensor, total: int) -> Tensor:
    """``[b]`` valid counts -> ``[b, total]`` bool, True on valid frames."""
    return torch.arange(total, device=frames.device)[None, :] < frames[:, None]


def _clamp_dynamic_range(log_spec: Tensor, frames: Tensor | None) -> Tensor:
    """Whisper's ``max(x, x.max() - 8)`` then ``(x + 4) / 4``, the max taken per clip.

    ``log_spec [b, n_mels, T]``; ``frames [b]`` limits each clip's max to its valid frames
    (None: all ``T`` frames count, as in the padded 30 s mode).
    """
    if frames is None:
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
    else:
        valid = _frame_mask(frames, log_spec.shape[-1])[:, None, :]
        peak = log_spec.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0
