"""Audio loading: read, crop, mix to mono, resample, validate.

Every sample that enters training or decoding goes through :func:`load_audio`, so this is the one
place that decides what a usable waveform is: float32, mono, 1-D, finite, non-empty, at the rate
the encoder asks for. Anything else raises :class:`AudioError` whose message names the file (and
the crop), so the training loop can skip and count a bad sample instead of dying hours in.

Files are read with soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 with libsndfile ≥ 1.1,
…). A crop (``offset``/``duration`` in seconds, as in a manifest record) reads only the frames it
needs. Resampling uses soxr at "HQ" quality.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from slamkit.data.skips import MISSING_FILE, UNREADABLE_FILE, UNUSABLE_AUDIO

logger = logging.getLogger(__name__)

# Errors soundfile/libsndfile raise on files it cannot open or decode. LibsndfileError is a
# RuntimeError; TypeError/ValueError come from format detection and bad arguments.
_READ_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError)

RESAMPLE_QUALITY = "HQ"


class AudioError(ValueError):
    """An audio file is missing, unreadable, or gives no usable samples; the message names it and
    :attr:`reason` says which of the three (a :mod:`slamkit.data.skips` reason)."""

    def __init__(self, message: str, reason: str = UNUSABLE_AUDIO) -> None:
        super().__init__(message)
        self.reason = reason


def _describe(path: str | Path, offset: float = 0.0, duration: float | None = None) -> str:
    """The file name plus the crop, for error messages: ``a.wav [offset=1.5s duration=2s]``."""
    if offset == 0.0 and duration is None:
        return str(path)
    crop = f"offset={offset:g}s" + ("" if duration is None else f" duration={duration:g}s")
    return f"{path} [{crop}]"


def _check_exists(path: Path) -> None:
    """Raise AudioError if ``path`` is not an existing regular file."""
    if not path.exists():
        raise AudioError(f"{path}: audio file not found", MISSING_FILE)
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file", MISSING_FILE)
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: no permission to read the file", UNREADABLE_FILE)


def audio_info(path: str | Path) -> tuple[int, int]:
    """Return ``(sample_rate, num_frames)`` read from the file header only.

    Raises:
        AudioError: the file is missing or soundfile cannot read its header.
    """
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: unreadable audio file ({err})") from err
    return int(info.samplerate), int(info.frames)


def _crop_frames(
    path: str | Path, rate: int, num_frames: int, offset: float, duration: float | None
) -> tuple[int, int]:
    """Turn a crop in seconds into ``(start, frames)`` at the file's rate.

    ``frames`` is clipped at the end of the file (manifest durations are often rounded up);
    ``frames == -1`` means "to the end". An offset at or past the end, a negative offset, or a
    non-positive duration raises AudioError.
    """
    where = _describe(path, offset, duration)
    if not math.isfinite(offset) or offset < 0:
        raise AudioError(f"{where}: offset must be a finite number >= 0")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise AudioError(f"{where}: duration must be a finite number > 0")
    start = int(round(offset * rate))
    if num_frames <= 0:
        raise AudioError(f"{where}: file has no audio samples")
    if start >= num_frames:
        length = num_frames / rate
        raise AudioError(f"{where}: offset is beyond the end of the file ({length:.3f}s long)")
    if duration is None:
        return start, (-1 if start == 0 else num_frames - start)
    frames = int(round(duration * rate))
    if start + frames > num_frames:
        logger.debug("%s: crop runs past the end of the file; clipped", where)
        frames = num_frames - start
    return start, frames


def audio_duration(path: str | Path, offset: float = 0.0, duration: float | None = None) -> float:
    """Seconds of audio in the cropped region ``[offset, offset + duration)`` of ``path``.

    Reads only the header. The region is clipped at the end of the file, as :func:`load_audio`
    clips it.

    Raises:
        AudioError: missing/unreadable file, or a crop outside the file.
    """
    rate, num_frames = audio_info(path)
    start, frames = _crop_frames(path, rate, num_frames, offset, duration)
    if frames < 0:
        frames = num_frames - start
    return frames / rate


def _read(path: Path, start: int, frames: int, where: str) -> tuple[np.ndarray, int]:
    """Read ``frames`` frames from ``start`` as float32 ``[t, channels]`` plus the file rate."""
    try:
        data, rate = sf.read(
            str(path), start=start, frames=frames, dtype="float32", always_2d=True
        )
    except _READ_ERRORS as err:
        raise AudioError(f"{where}: unreadable audio file ({err})") from err
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average channels: ``[t, channels]`` (or ``[t]``) → float32 ``[t]``."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    if data.shape[1] == 1:
        return data[:, 0].astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono float32 ``[t]`` waveform with soxr (HQ); a no-op when rates match."""
    if orig_rate == target_rate:
        return wave
    out = soxr.resample(wave, orig_rate, target_rate, quality=RESAMPLE_QUALITY)
    return np.asarray(out, dtype=np.float32)


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Load ``path`` as a float32 mono waveform ``[t]`` at ``sample_rate`` Hz.

    Args:
        path: any file soundfile reads.
        sample_rate: rate of the returned waveform; the file is resampled (soxr HQ) if it differs.
        offset: start of the crop in seconds (file time).
        duration: length of the crop in seconds; ``None`` reads to the end. A crop that runs past
            the end of the file is clipped there.

    Returns:
        ``np.ndarray`` of shape ``[t]``, dtype float32, C-contiguous. All-zero audio is allowed.

    Raises:
        AudioError: missing or unreadable file, crop outside the file, no samples, or non-finite
            (NaN/inf) samples. The message names the file and the crop.
    """
    if not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    path = Path(path)
    where = _describe(path, offset, duration)
    file_rate, num_frames = audio_info(path)
    start, frames = _crop_frames(path, file_rate, num_frames, offset, duration)
    data, file_rate = _read(path, start, frames, where)
    wave = to_mono(data)
    if wave.size == 0:
        raise AudioError(f"{where}: no audio samples read")
    if not np.isfinite(wave).all():
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise AudioError(f"{where}: {bad} non-finite (NaN/inf) samples")
    wave = resample(wave, file_rate, int(sample_rate))
    if wave.size == 0:
        raise AudioError(f"{where}: no audio samples left after resampling to {sample_rate} Hz")
    return np.ascontiguousarray(wave, dtype=np.float32)
