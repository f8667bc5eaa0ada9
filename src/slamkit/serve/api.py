"""The HTTP API: OpenAI's audio and chat endpoints, models, health, metrics and the web page.

=====================================  =====================================================
``POST /v1/audio/transcriptions``      multipart ``file``, ``model``, ``prompt``, ``response_format``
                                       (json, text, srt, verbose_json, vtt), ``temperature``,
                                       ``timestamp_granularities[]`` (segment)
``POST /v1/chat/completions``          ``input_audio`` content parts plus text; ``stream`` (SSE)
``GET /v1/models``, ``/v1/models/ID``  the served model (its task and the tasks' prompts)
``GET /health``                        liveness: ``{"status": "ok", "model": ID}``
``GET /metrics``                       Prometheus text (:mod:`slamkit.serve.metrics`)
``GET /``                              the web page (files in ``slamkit/serve/page/``)
=====================================  =====================================================

With an API key set, ``/v1/*`` needs ``Authorization: Bearer KEY``. Decoding runs in the
batcher's thread and audio checks in worker threads: the event loop never waits on the model.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from slamkit.serve.chat import add_chat_route
from slamkit.serve.engine import Clip, Engine
from slamkit.serve.errors import ApiError, Gate, on_api_error, on_http_error, on_validation_error
from slamkit.serve.formats import FORMATS, render
from slamkit.serve.metrics import CONTENT_TYPE, ServerMetrics
from slamkit.serve.requests import ServeSettings, check_model, open_clip, run_clip

__all__ = ["ServeSettings", "create_app"]

PAGE_DIR = Path(__file__).resolve().parent / "page"
GRANULARITIES = ("segment", "word")


def model_card(engine: Engine, created: int) -> dict:
    """The ``/v1/models`` entry of the served model."""
    return {"id": engine.name, "object": "model", "created": created, "owned_by": "slamkit", "task": engine.cfg.data.task,
            "tasks": engine.tasks, "max_segment_seconds": engine.window}


def create_app(engine: Engine, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``engine``."""
    settings = settings or ServeSettings()
    metrics = ServerMetrics(lambda: engine.batcher.depth)
    engine.on_batch.append(metrics.batch_size.observe)
    created = int(time.time())
    # no /docs or /redoc: their pages load scripts from a CDN; the schema is at /openapi.json
    app = FastAPI(title="slamkit", summary="OpenAI-compatible speech and audio LLM server", version="1", docs_url=None, redoc_url=None)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(Gate, max_bytes=int(settings.max_upload_mb * 2**20), metrics=metrics)
    app.state.engine, app.state.settings, app.state.metrics = engine, settings, metrics

    def authorise(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'" if token or given
                           else "this server needs an API key: send 'Authorization: Bearer <key>'", "invalid_api_key")

    auth = [Depends(authorise)]

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": engine.name, "queue_depth": engine.batcher.depth}

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", dependencies=auth)
    async def models() -> dict:
        return {"object": "list", "data": [model_card(engine, created)]}

    @app.get("/v1/models/{model_id}", dependencies=auth)
    async def one_model(model_id: str) -> dict:
        check_model(engine, model_id)
        return model_card(engine, created)

    @app.post("/v1/audio/transcriptions", dependencies=auth)
    async def transcriptions(
        file: Annotated[UploadFile, File()],
        model: Annotated[str, Form()],
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
        language: Annotated[str | None, Form()] = None,
        granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    ) -> Response:
        check_model(engine, model)
        check_transcription_options(response_format, temperature, granularities or [])
        path, duration = await open_clip(engine, await file.read(), file.filename or "upload")
        metrics.audio_seconds.inc(duration)
        transcript = await run_clip(engine, Clip(path, duration, extra=engine.prompt_fields(prompt)), settings)
        out = render(response_format, transcript.text, transcript.duration, transcript.segments)
        if isinstance(out.body, dict):
            return JSONResponse(out.body)
        return Response(out.body, media_type=out.media_type)

    add_chat_route(app, engine, settings, metrics, auth)
    if (PAGE_DIR / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def page() -> FileResponse:
            return FileResponse(PAGE_DIR / "index.html")

    return app


def check_transcription_options(response_format: str, temperature: float, granularities: list[str]) -> None:
    """400 for what this server does not do, naming the parameter."""
    if response_format not in FORMATS:
        raise ApiError(400, f"response_format {response_format!r} is not one of {', '.join(FORMATS.names())}",
                       "invalid_value", "response_format")
    if not 0.0 <= temperature <= 1.0:
        raise ApiError(400, f"temperature must be between 0 and 1 (got {temperature:g})", "invalid_value", "temperature")
    if temperature > 0.0:
        raise ApiError(400, "temperature > 0 (sampling) is not supported: slamkit decodes with greedy or beam search "
                       "(decode.beam_size); send 0 or leave it out", "unsupported_value", "temperature")
    for g in granularities:
        if g not in GRANULARITIES:
            raise ApiError(400, f"timestamp_granularities[]: {g!r} is not one of segment, word", "invalid_value", "timestamp_granularities")
        if g == "word":
            raise ApiError(400, "word timestamps are not supported; use timestamp_granularities[]=segment", "unsupported_value",
                           "timestamp_granularities")
    if granularities and response_format != "verbose_json":
        raise ApiError(400, "timestamp_granularities[] needs response_format=verbose_json", "invalid_value", "timestamp_granularities")
