"""ASGI-level guard: a request body larger than MAX_REQUEST_BYTES is refused with 413.

Django's ASGI handler reads the whole body (spooling it to disk past 2.5 MB) before any
middleware runs, so a body sent without Content-Length (chunked) would be read in full before
RequestContextMiddleware could look at it. This wrapper counts the bytes as they arrive and
stops reading at the limit: the client gets the 413 and Django never sees the request.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPENAI_PREFIX = "/v1/"


def _body(path: str, limit: int) -> bytes:
    message = f"The request body is larger than the limit of {limit} bytes."
    error: dict[str, Any]
    if path.startswith(OPENAI_PREFIX):
        error = {
            "message": message,
            "type": "invalid_request_error",
            "code": "payload_too_large",
            "param": None,
        }
    else:
        error = {"code": "payload_too_large", "message": message, "details": {"max_bytes": limit}}
    return json.dumps({"error": error}).encode()


async def _send_413(scope: Scope, send: Send, limit: int) -> None:
    body = _body(scope.get("path", ""), limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def body_size_limit(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        limit: int = settings.MAX_REQUEST_BYTES
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await _send_413(scope, send, limit)
                    return
                # With a declared length Django's middleware enforces the limit.
                await app(scope, receive, send)
                return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    # Django stops reading and drops the request (RequestAborted).
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await app(scope, counting_receive, tracking_send)
        if exceeded and not started:
            await _send_413(scope, send, limit)

    return guarded
