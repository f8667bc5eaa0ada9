"""Video loading for visual (VSR) and audio-visual (AVSR) speech recognition: mouth-region frames.

A video clip enters the model as a *signal* like a waveform: a float32 array whose first axis is
time at the encoder's rate (for AV-HuBERT, 25 frames per second), so the collator pads it, the
sampler budgets it and the length rules count it exactly as they do audio samples. One step is

* **video only** — one grayscale mouth crop, flattened: ``[f, crop * crop]`` in [0, 1];
* **audio-visual** — the crop followed by the step's audio, ``AUDIO_RATE / fps`` samples (640 at
  25 fps): ``[f, crop * crop + AUDIO_RATE // fps]``. Audio is cut or zero-padded to the frames, as
  AV-HuBERT aligns them.

Which one a manifest record gives (:func:`load_signal`): a record with a ``video`` field is
audio-visual (its ``source`` is the audio: a sound file, or a video file whose audio track is
read); a ``source`` that is a video file (``.mp4``, ``.avi``, ``.mkv``, …) or a folder of frame
images (``.png``/``.jpg``, in name order) is video only; anything else is audio (:mod:`~slamkit.data.audio`).

Frames must already be mouth regions of interest (what AV-HuBERT's LRS3 preparation writes:
96×96); they are converted to grayscale and center-cropped to ``crop`` (88). A frame smaller than
the crop is an error. The **frame rate is checked**, never converted: a video whose rate differs
from the encoder's by more than 1 % raises :class:`VideoError` naming the file and both rates
(dropping or repeating frames would silently change lip timing). A frame folder carries no rate:
it is taken at the encoder's rate, or checked against the record's ``fps`` field when present.

Files are decoded with PyAV (FFmpeg's libraries; ``pip install slamkit[video]``). Errors are
:class:`VideoError`, a :class:`~slamkit.data.audio.AudioError`, so the dataset skips and counts a
broken clip exactly as it does a broken sound file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from slamkit.data.audio import AudioError, audio_duration, load_audio
from slamkit.data.manifest import Record
from slamkit.data.skips import BAD_FIELD, MISSING_FILE, UNREADABLE_FILE, UNUSABLE_AUDIO

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
AUDIO_RATE = 16_000  # rate of the audio packed into an audio-visual signal (AV-HuBERT's)
CROP = 88  # side of the mouth crop AV-HuBERT reads
DEFAULT_FPS = 25.0  # rate assumed for a frame folder's duration when the record gives no `fps`
RATE_TOLERANCE = 0.01  # relative difference between a file's frame rate and the encoder's that is accepted


class VideoError(AudioError):
    """A video is missing, unreadable, at the wrong frame rate or gives no usable frames; the
    message names the file (:attr:`reason` is a :mod:`slamkit.data.skips` reason)."""


def _av() -> Any:
    """The PyAV module, or a VideoError saying how to install it."""
    try:
        import av
    except ImportError as err:  # pragma: no cover - PyAV is installed with the `video` extra
        raise VideoError("reading video needs PyAV: pip install 'slamkit[video]' (or pip install av)", UNREADABLE_FILE) from err
    return av


def is_video_source(path: str | Path) -> bool:
    """True when ``path`` names a video file (by suffix) or an existing folder (of frame images)."""
    p = Path(path)
    return p.suffix.lower() in VIDEO_SUFFIXES or p.is_dir()


def frame_files(folder: Path) -> list[Path]:
    """The frame images of ``folder`` in name order (numbers compared as numbers: 2 before 10)."""
    def order(p: Path) -> tuple:
        return tuple(int(t) if t.isdigit() else t for t in _split_digits(p.stem))
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=order)


def _split_digits(text: str) -> list[str]:
    parts, current = [], ""
    for ch in text:
        if current and ch.isdigit() != current[-1].isdigit():
            parts.append(current)
            current = ""
        current += ch
    return parts + ([current] if current else [])


def _check_path(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: video not found", MISSING_FILE)
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: no permission to read", UNREADABLE_FILE)


def video_info(path: str | Path, folder_fps: float | None = None) -> tuple[float, int]:
    """``(frames per second, frame count)`` of a video file (from its header) or a frame folder.

    A folder's rate is ``folder_fps`` (else :data:`DEFAULT_FPS`); its count is its images.
    """
    path = Path(path)
    _check_path(path)
    if path.is_dir():
        return float(folder_fps or DEFAULT_FPS), len(frame_files(path))
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream", UNUSABLE_AUDIO)
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = int(stream.frames or 0)
            if frames <= 0 and fps > 0:
                seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
                frames = round(seconds * fps)
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{path}: unreadable video ({err})", UNREADABLE_FILE) from err
    if fps <= 0:
        raise VideoError(f"{path}: the video stream states no frame rate", UNUSABLE_AUDIO)
    return fps, frames


def check_rate(path: str | Path, found: float, wanted: float) -> None:
    """Raise VideoError unless ``found`` fps is within 1 % of the encoder's ``wanted`` rate."""
    if abs(found - wanted) <= RATE_TOLERANCE * wanted:
        return
    if wanted >= 1000:
        raise VideoError(f"{path}: a video clip (file or frame folder), but the encoder reads audio at {wanted:g} Hz; video needs a video "
                         "encoder (model.encoder.name=av_hubert)", BAD_FIELD)
    raise VideoError(f"{path}: video at {found:g} fps, but the encoder reads {wanted:g} frames per second; re-encode "
                     f"it at {wanted:g} fps (e.g. ffmpeg -i IN -r {wanted:g} OUT)", UNUSABLE_AUDIO)


def _decode_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` (a video file or one image) as grayscale uint8 ``[h, w]``."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            return [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    except (av.FFmpegError, OSError, ValueError, IndexError) as err:
        raise VideoError(f"{path}: unreadable video ({err})", UNREADABLE_FILE) from err


def center_crop(frames: np.ndarray, crop: int, where: str) -> np.ndarray:
    """``[f, h, w]`` -> ``[f, crop, crop]``, the center of each frame (VideoError if smaller)."""
    h, w = frames.shape[1:]
    if h < crop or w < crop:
        raise VideoError(f"{where}: frames of {w}x{h} pixels are smaller than the {crop}x{crop} mouth crop "
                         "(expected mouth regions of interest, e.g. 96x96)", UNUSABLE_AUDIO)
    top, left = (h - crop) // 2, (w - crop) // 2
    return frames[:, top : top + crop, left : left + crop]


def load_frames(path: str | Path, fps: float, offset: float = 0.0, duration: float | None = None,
                crop: int = CROP, folder_fps: float | None = None) -> np.ndarray:
    """Mouth frames of a video file or frame folder: float32 ``[f, crop, crop]`` in [0, 1].

    Args:
        path: a video file or a folder of frame images.
        fps: the encoder's frame rate; a file at another rate raises VideoError (see the module).
        offset, duration: the crop in seconds (as in a manifest record), rounded to whole frames.
        crop: side of the center crop.
        folder_fps: a frame folder's stated rate (the record's ``fps``), checked like a file's.
    """
    path = Path(path)
    where = str(path) if offset == 0.0 and duration is None else f"{path} [offset={offset:g}s duration={duration}]"
    _check_path(path)
    if path.is_dir():
        check_rate(path, float(folder_fps or (fps if fps < 1000 else DEFAULT_FPS)), fps)
        images = frame_files(path)
        start, stop = _frame_span(offset, duration, fps, len(images))
        raw = [_single_image(p) for p in images[start:stop]]
    else:
        found, _ = video_info(path)
        check_rate(path, found, fps)
        raw = _decode_frames(path)
        start, stop = _frame_span(offset, duration, fps, len(raw))
        raw = raw[start:stop]
    if not raw:
        raise VideoError(f"{where}: no frames", UNUSABLE_AUDIO)
    if len({f.shape for f in raw}) > 1:
        raise VideoError(f"{where}: frames of different sizes {sorted({f.shape for f in raw})}", UNUSABLE_AUDIO)
    frames = center_crop(np.stack(raw), crop, where)
    return np.ascontiguousarray(frames, dtype=np.float32) / np.float32(255.0)


def _single_image(path: Path) -> np.ndarray:
    frames = _decode_frames(path)
    if len(frames) != 1:
        raise VideoError(f"{path}: expected one image, found {len(frames)} frames", UNUSABLE_AUDIO)
    return frames[0]


def _frame_span(offset: float, duration: float | None, fps: float, total: int) -> tuple[int, int]:
    start = round(offset * fps)
    stop = total if duration is None else min(total, start + round(duration * fps))
    return start, stop


def load_track_audio(path: str | Path, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """The audio track of a video file as float32 mono ``[t]`` at :data:`AUDIO_RATE`, cropped."""
    av, path = _av(), Path(path)
    _check_path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise VideoError(f"{path}: no audio track (an audio-visual clip needs one, or a sound file as `source`)",
                                 UNUSABLE_AUDIO)
            # FFmpeg's resampler mixes to mono float at AUDIO_RATE; flushing it (None) returns the tail.
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{path}: unreadable audio track ({err})", UNREADABLE_FILE) from err
    if not chunks:
        raise VideoError(f"{path}: empty audio track", UNUSABLE_AUDIO)
    wave = np.concatenate(chunks).astype(np.float32)
    start = round(offset * AUDIO_RATE)
    stop = len(wave) if duration is None else start + round(duration * AUDIO_RATE)
    return np.ascontiguousarray(wave[start:stop], dtype=np.float32)


def samples_per_frame(fps: float) -> int:
    """Audio samples per video frame in an audio-visual signal (AUDIO_RATE / fps, a whole number)."""
    n = AUDIO_RATE / fps
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"audio-visual clips need {AUDIO_RATE} / fps to be whole; {fps:g} fps gives {n:g}")
    return round(n)


def load_audio_visual(video: str | Path, audio: str | Path, fps: float, offset: float = 0.0,
                      duration: float | None = None, crop: int = CROP, folder_fps: float | None = None) -> np.ndarray:
    """An audio-visual signal ``[f, crop * crop + AUDIO_RATE // fps]`` (see the module docstring)."""
    frames = load_frames(video, fps, offset, duration, crop, folder_fps)
    step = samples_per_frame(fps)
    if Path(audio).suffix.lower() in VIDEO_SUFFIXES:
        wave = load_track_audio(audio, offset, duration)
    else:
        wave = load_audio(audio, AUDIO_RATE, offset, duration)
    need = len(frames) * step
    wave = np.pad(wave[:need], (0, max(0, need - len(wave))))
    return np.concatenate([frames.reshape(len(frames), -1), wave.reshape(len(frames), step)], axis=1)


def _record_path(rec: Record, value: Any, name: str) -> Path:
    """A path field of ``rec`` (relative paths resolved against the manifest's folder)."""
    if not isinstance(value, str) or not value:
        raise VideoError(f"{rec.where}: field {name!r} must be a non-empty path, got {value!r}", BAD_FIELD)
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and rec.manifest:
        path = Path(rec.manifest).parent / path
    return path


def _folder_fps(rec: Record) -> float | None:
    fps = rec.extra.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0):
        raise VideoError(f"{rec.where}: field 'fps' must be a positive number, got {fps!r}", BAD_FIELD)
    return None if fps is None else float(fps)


def load_signal(rec: Record, rate: int) -> np.ndarray:
    """What ``rec`` gives the encoder at ``rate``: audio ``[t]``, video ``[f, crop²]`` or audio-visual
    ``[f, crop² + AUDIO_RATE // rate]`` (see the module docstring for which)."""
    assert rec.source is not None
    if "video" in rec.extra:
        return load_audio_visual(_record_path(rec, rec.extra["video"], "video"), rec.source, rate, rec.offset,
                                 rec.duration, folder_fps=_folder_fps(rec))
    if is_video_source(rec.source):
        frames = load_frames(rec.source, rate, rec.offset, rec.duration, folder_fps=_folder_fps(rec))
        return frames.reshape(len(frames), -1)
    return load_audio(rec.source, rate, rec.offset, rec.duration)


def signal_path(rec: Record) -> str | None:
    """The video file or folder of an audio-visual record (None for audio or video-only records)."""
    video = rec.extra.get("video")
    return None if video is None else str(_record_path(rec, video, "video"))


def signal_duration(rec: Record) -> float:
    """Seconds of ``rec``'s clip (manifest ``duration`` first, else the video or audio header)."""
    assert rec.source is not None
    if rec.duration is not None:
        return float(rec.duration)
    video = signal_path(rec)
    if video is None and not is_video_source(rec.source):
        return audio_duration(rec.source, rec.offset, rec.duration)
    fps, frames = video_info(video or rec.source, _folder_fps(rec))
    return max(0.0, frames / fps - rec.offset) if math.isfinite(fps) else 0.0
