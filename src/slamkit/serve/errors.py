"""Errors in OpenAI's shape, and the gate every request passes (size limit, API key, counters).

Every refusal is a JSON body ``{"error": {"message", "type", "param", "code"}}`` with the status
OpenAI's clients map to their exception classes: 400 bad request or audio, 401 key, 404 unknown
model, 413 upload too large, 503 queue full (with ``Retry-After``), 504 timed out. The
:class:`Gate` middleware refuses bodies over the upload limit (by ``Content-Length`` at once, and
by counting for chunked bodies), and counts every answer in :mod:`slamkit.serve.metrics`.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slamkit.serve.metrics import ServerMetrics

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
               413: "invalid_request_error", 503: "server_error", 504: "server_error", 500: "server_error"}
KNOWN_PATHS = ("/v1/audio/transcriptions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/")


class ApiError(Exception):
    """A refusal with its HTTP status, OpenAI error ``code`` and offending ``param``."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers or {}


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": param, "code": code}}


def error_response(exc: ApiError) -> JSONResponse:
    """The JSON response of an :class:`ApiError`."""
    return JSONResponse(error_body(exc.status, exc.message, exc.code, exc.param), status_code=exc.status, headers=exc.headers)


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (unparsable body, unknown path, wrong method) in OpenAI's shape."""
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(error_body(exc.status_code, str(exc.detail), "invalid_request"), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a missing or mistyped field, as OpenAI's 400 naming the field."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    message = f"{field}: {first.get('msg', 'invalid value')}" if field else str(first.get("msg", "invalid request"))
    return JSONResponse(error_body(400, message, "invalid_request", field), status_code=400)


class BodyTooLarge(Exception):
    """A request body passed the upload limit while it was being read."""


class Gate:
    """ASGI middleware: the body-size limit and the request counters."""

    def __init__(self, app: Any, max_bytes: int, metrics: ServerMetrics) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    def _too_large(self) -> JSONResponse:
        mb = self.max_bytes / 2**20
        return JSONResponse(error_body(413, f"the request body is larger than the server's limit of {mb:g} MB (--max-upload-mb)",
                                       "payload_too_large"), status_code=413)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, started, over = time.perf_counter(), [500], [False], [False]
        path = scope.get("path", "")
        endpoint = next((p for p in KNOWN_PATHS if path == p or (p != "/" and path.startswith(p + "/"))), "other")

        async def counted_send(message: dict) -> None:
            if over[0]:  # the body passed the limit while the app read it: whatever the app answers, the answer is 413
                if message["type"] == "http.response.start" and not started[0]:
                    started[0], status[0] = True, 413
                    await self._too_large()(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                await self._too_large()(scope, receive, counted_send)
            else:
                await self.app(scope, self._counting(receive, over), counted_send)
        except BodyTooLarge:
            if not started[0]:
                started[0], status[0] = True, 413
                await self._too_large()(scope, receive, send)
        finally:
            self.metrics.observe(endpoint, status[0], time.perf_counter() - start)

    def _counting(self, receive: Any, over: list[bool]) -> Any:
        seen = [0]

        async def wrapped() -> dict:
            message = await receive()
            seen[0] += len(message.get("body", b""))
            if seen[0] > self.max_bytes:
                over[0] = True
                raise BodyTooLarge()
            return message

        return wrapped
