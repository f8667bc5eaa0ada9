"""Uploaded audio: bytes from a request -> a private temporary file the decoder reads.

A request carries audio bytes only, never a path: the server writes them to a file of its own
(random name, in the server's private temporary directory, the file name's extension kept only
when it is a plain audio extension) and deletes it when the request is done. The file then goes
through the same loader as `slamkit decode` (:func:`slamkit.data.audio.load_audio`), so a clip
served is the same input as the same clip decoded offline. Formats libsndfile cannot read (WebM,
M4A/AAC, …) are converted to WAV with PyAV when it is installed. Every failure is an
:class:`UploadError` whose message names the upload (never the temporary path).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from slamkit.data.audio import AudioError, load_audio

_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


class UploadError(ValueError):
    """The upload is empty, too large, or not decodable audio; the message says which."""


def store(data: bytes, filename: str, folder: Path) -> Path:
    """Write ``data`` to a new file in ``folder``; only a short alphanumeric extension of ``filename`` is kept."""
    if not data:
        raise UploadError(f"{filename}: the file is empty")
    suffix = Path(filename or "").suffix.lower()
    path = folder / f"{uuid.uuid4().hex}{suffix if _SAFE_SUFFIX.match(suffix) else ''}"
    path.write_bytes(data)
    return path


def _readable(path: Path, filename: str) -> Path:
    """``path`` if libsndfile reads it, else a WAV converted by PyAV beside it."""
    try:
        sf.info(str(path))
        return path
    except Exception:  # libsndfile's errors are RuntimeError/SoundFileError/TypeError: any means "not readable"
        pass
    try:
        import av
    except ImportError:
        raise UploadError(f"{filename}: not a format libsndfile reads (WAV, FLAC, OGG, MP3) and PyAV is not installed") from None
    try:
        with av.open(str(path)) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            resampler = av.AudioResampler(format="flt", layout="mono")
            chunks = [frame.to_ndarray().reshape(-1) for packet in container.decode(stream) for frame in resampler.resample(packet)]
            rate = stream.rate
    except StopIteration:
        raise UploadError(f"{filename}: the file has no audio stream") from None
    except Exception as exc:  # PyAV raises its own error classes for every container/codec failure
        raise UploadError(f"{filename}: not decodable audio ({type(exc).__name__}: {exc})") from None
    if not chunks:
        raise UploadError(f"{filename}: the audio stream holds no samples")
    wav = path.with_suffix(".wav")
    sf.write(str(wav), np.concatenate(chunks), rate, subtype="FLOAT")
    path.unlink(missing_ok=True)
    return wav


def open_upload(data: bytes, filename: str, folder: Path, sample_rate: int) -> tuple[Path, float]:
    """Store and check an upload: ``(path the decoder reads, duration in seconds)``.

    The whole clip is loaded once here, so an undecodable, silent-length or non-finite upload is
    refused before it reaches a batch.
    """
    path = store(data, filename, folder)
    try:
        path = _readable(path, filename)
        audio = load_audio(path, sample_rate)
    except AudioError as exc:
        path.unlink(missing_ok=True)
        raise UploadError(str(exc).replace(str(path), filename)) from None
    except UploadError:
        path.unlink(missing_ok=True)
        raise
    return path, len(audio) / sample_rate
