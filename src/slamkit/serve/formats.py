"""Transcription response formats, as OpenAI's audio API writes them.

``json`` -> ``{"text", "usage"}``; ``text`` -> the bare text (text/plain, never JSON-quoted);
``srt`` / ``vtt`` -> subtitle cues, one per segment; ``verbose_json`` -> task, language, duration,
text and ``segments`` with ``start``/``end`` in seconds. Registered by name in :data:`FORMATS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slamkit.registry import Registry


@dataclass(frozen=True)
class Rendered:
    """A response body and its media type (a dict is sent as JSON)."""

    body: str | dict[str, Any]
    media_type: str


Render = Callable[[str, float, list[dict]], Rendered]
FORMATS: Registry[Render] = Registry("response_format")


def _clock(seconds: float, separator: str) -> str:
    """``HH:MM:SS,mmm`` (srt) or ``HH:MM:SS.mmm`` (vtt)."""
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def _usage(duration: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": int(math.ceil(duration))}


@FORMATS.register("json")
def _json(text: str, duration: float, segments: list[dict]) -> Rendered:
    return Rendered({"text": text, "usage": _usage(duration)}, "application/json")


@FORMATS.register("text")
def _text(text: str, duration: float, segments: list[dict]) -> Rendered:
    return Rendered(text + "\n", "text/plain; charset=utf-8")


@FORMATS.register("srt")
def _srt(text: str, duration: float, segments: list[dict]) -> Rendered:
    cues = [f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text']}\n" for i, s in enumerate(segments, 1)]
    return Rendered("\n".join(cues) + ("\n" if cues else ""), "text/plain; charset=utf-8")


@FORMATS.register("vtt")
def _vtt(text: str, duration: float, segments: list[dict]) -> Rendered:
    cues = [f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{s['text']}\n" for s in segments]
    return Rendered("WEBVTT\n\n" + "\n".join(cues), "text/vtt; charset=utf-8")


@FORMATS.register("verbose_json")
def _verbose(text: str, duration: float, segments: list[dict]) -> Rendered:
    rows = [{"id": i, "seek": int(s["start"] * 100), "start": round(s["start"], 3), "end": round(s["end"], 3), "text": s["text"],
             "tokens": [], "temperature": 0.0} for i, s in enumerate(segments)]
    body = {"task": "transcribe", "language": "english", "duration": round(duration, 3), "text": text, "segments": rows,
            "usage": _usage(duration)}
    return Rendered(body, "application/json")


def render(name: str, text: str, duration: float, segments: list[dict]) -> Rendered:
    """The response for ``response_format=name`` (a name not in :data:`FORMATS` raises KeyError)."""
    return FORMATS.get(name)(text, duration, segments)
