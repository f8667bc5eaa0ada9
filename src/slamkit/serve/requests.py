"""What both API modules need: the server's settings, the model check, uploads and decoding as HTTP errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from slamkit.serve.batcher import QueueFull
from slamkit.serve.engine import Clip, Engine, Transcript
from slamkit.serve.errors import ApiError
from slamkit.serve.upload import UploadError


@dataclass
class ServeSettings:
    """What ``slamkit serve`` sets besides the model."""

    api_key: str | None = None
    max_upload_mb: float = 25.0
    timeout_s: float = 300.0
    retry_after_s: int = 1


def check_model(engine: Engine, model: str | None) -> None:
    """404 unless ``model`` is the served model's id (an empty or missing id means the served one)."""
    if model and model != engine.name:
        raise ApiError(404, f"model {model!r} is not served here; this server serves {engine.name!r} (GET /v1/models)",
                       "model_not_found", "model")


async def open_clip(engine: Engine, data: bytes, filename: str) -> tuple[Path, float]:
    """Store and check uploaded audio off the event loop; 400 naming the reason when it is not usable."""
    try:
        return await asyncio.to_thread(engine.open, data, filename)
    except UploadError as exc:
        raise ApiError(400, str(exc), "invalid_audio", "file") from None


async def run_clip(engine: Engine, clip: Clip, settings: ServeSettings) -> Transcript:
    """Decode ``clip``; 503 when the queue is full, 504 past the request timeout. The file is deleted after."""
    try:
        return await engine.transcribe(clip, settings.timeout_s)
    except QueueFull as exc:
        raise queue_full(exc, settings) from None
    except asyncio.TimeoutError:
        raise timed_out(settings) from None
    finally:
        clip.path.unlink(missing_ok=True)


def queue_full(exc: QueueFull, settings: ServeSettings) -> ApiError:
    """503 with ``Retry-After``."""
    return ApiError(503, str(exc), "queue_full", headers={"Retry-After": str(settings.retry_after_s)})


def timed_out(settings: ServeSettings) -> ApiError:
    """504 naming the timeout."""
    return ApiError(504, f"decoding took longer than the server's {settings.timeout_s:g} s request timeout", "timeout")
