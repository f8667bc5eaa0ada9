"""``POST /v1/chat/completions``: audio in ``input_audio`` content parts, an instruction in text.

The last ``user`` message carries the request: its ``input_audio`` part (base64 ``data`` and a
``format``: wav, mp3, flac, ogg, webm, m4a) is the clip; its text parts, joined, are the
instruction, taken literally as the prompt (so a model trained on several tasks does what the text
asks). With no text the run's task prompt is used; a ``task`` field in the body (an extension:
``extra_body={"task": "aac"}`` in OpenAI's client) picks another registered task's prompt.

``stream: true`` answers with server-sent events in OpenAI's ``chat.completion.chunk`` shape: a
role chunk, the text as it is generated (token by token with greedy decoding, a segment at a time
with beam search; :mod:`slamkit.serve.streaming`), a final chunk with ``finish_reason``, an optional usage chunk
(``stream_options.include_usage``) and ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from slamkit.data.tasks import TASKS
from slamkit.serve.batcher import QueueFull
from slamkit.serve.engine import Clip, Engine
from slamkit.serve.errors import ApiError, error_body
from slamkit.serve.metrics import ServerMetrics
from slamkit.serve.requests import ServeSettings, check_model, open_clip, queue_full, run_clip, timed_out

AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "webm", "m4a")


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ApiError(400, "messages[].content must be a string or a list of content parts", "invalid_value", "messages")
    return content


def parse_request(body: Any) -> tuple[str, bytes, str, str | None, str | None]:
    """``(model, audio bytes, audio format, prompt or None, task or None)`` of a chat request; 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_request")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: a non-empty list is required", "invalid_value", "messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ApiError(400, "messages: no message with role 'user'", "invalid_value", "messages")
    parts = _parts(users[-1])
    audio = [p for p in parts if isinstance(p, dict) and p.get("type") == "input_audio"]
    if len(audio) != 1:
        raise ApiError(400, f"the last user message needs exactly one input_audio part (found {len(audio)})", "invalid_value", "messages")
    spec = audio[0].get("input_audio") or {}
    fmt = str(spec.get("format", "wav")).lower()
    if fmt not in AUDIO_FORMATS:
        raise ApiError(400, f"input_audio.format {fmt!r} is not one of {', '.join(AUDIO_FORMATS)}", "invalid_value", "input_audio.format")
    try:
        data = base64.b64decode(str(spec.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "input_audio.data is not valid base64", "invalid_value", "input_audio.data") from None
    text = " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text").strip()
    task = body.get("task")
    if task is not None and task not in TASKS:
        raise ApiError(400, f"task {task!r} is not one of {', '.join(TASKS.names())}", "invalid_value", "task")
    return str(body.get("model") or ""), data, fmt, text or None, task


def _chunk(cid: str, created: int, model: str, delta: dict, finish: str | None = None) -> str:
    payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def add_chat_route(app: FastAPI, engine: Engine, settings: ServeSettings, metrics: ServerMetrics, auth: list) -> None:
    """Register ``POST /v1/chat/completions`` on ``app``."""
    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the body is not valid JSON", "invalid_request") from None
        model, data, fmt, prompt, task = parse_request(body)
        check_model(engine, model)
        path, duration = await open_clip(engine, data, f"input_audio.{fmt}")
        metrics.audio_seconds.inc(duration)
        clip = Clip(path, duration, prompt=prompt, task=task)
        prompt_tokens = engine.count_tokens(prompt or "")
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.get("stream"):
            text = (await run_clip(engine, clip, settings)).text
            completion = engine.count_tokens(text)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": engine.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion},
            })
        try:
            records = await asyncio.to_thread(engine.plan, clip)
            pieces = engine.stream(records, settings.timeout_s)
            first = await _first(pieces, settings)  # queue-full and timeouts answer with a status, before any byte is sent
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_events(engine, pieces, first, clip, cid, created, prompt_tokens, usage, settings),
                                 media_type="text/event-stream")


async def _first(pieces: AsyncIterator[str], settings: ServeSettings) -> str | None:
    """The first text piece (None when there is none), as HTTP errors."""
    try:
        return await anext(pieces, None)
    except QueueFull as exc:
        raise queue_full(exc, settings) from None
    except asyncio.TimeoutError:
        raise timed_out(settings) from None


async def _events(engine: Engine, pieces: AsyncIterator[str], first: str | None, clip: Clip, cid: str, created: int,
                  prompt_tokens: int, usage: bool, settings: ServeSettings) -> AsyncIterator[str]:
    """The SSE frames of a streamed answer; the clip's file is deleted when it ends."""
    texts: list[str] = []
    try:
        yield _chunk(cid, created, engine.name, {"role": "assistant", "content": ""})
        try:
            async for piece in _chain([first] if first else [], pieces):
                yield _chunk(cid, created, engine.name, {"content": piece})
                texts.append(piece)
        except asyncio.TimeoutError:
            err = timed_out(settings)
            yield f"data: {json.dumps(error_body(err.status, err.message, err.code))}\n\n"
            return
        yield _chunk(cid, created, engine.name, {}, "stop")
        if usage:
            completion = engine.count_tokens("".join(texts))
            payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": engine.name, "choices": [],
                       "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                                 "total_tokens": prompt_tokens + completion}}
            yield f"data: {json.dumps(payload)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        await pieces.aclose()
        clip.path.unlink(missing_ok=True)


async def _chain(first: list, rest: AsyncIterator) -> AsyncIterator:
    for item in first:
        yield item
    async for item in rest:
        yield item
