"""Async-only middleware for every request: request id, size limit, access log, metrics, CSP.

Both classes are native coroutines (`async_capable = True`, `sync_capable = False`): under
ASGI they add no thread hop, which a sync-only middleware, or one whose work runs through
`MiddlewareMixin`'s `sync_to_async`, would cost on the gateway's hot path. Measured cost:
bench/middleware.py.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from typing import Any, cast

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)

from core.errors import AppError, BadRequest, PayloadTooLarge
from core.logging import request_id_var
from core.metrics import HTTP_IN_FLIGHT, record_http, record_request

access_log = logging.getLogger("switchboard.access")

# A caller's x-request-id is kept if it is a sane token (it is stored on usage records, 64
# characters at most) outside the internal namespace; otherwise we make one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
# The ids the site gives its own calls (job items, shadow runs) start with this, and a caller's
# never does: no caller can choose an id that is mistaken for one of ours.
INTERNAL_REQUEST_ID_PREFIX = "int:"
OPENAI_PREFIX = "/v1/"
# Gateway views (by view name) and the surface label their metrics carry.
GATEWAY_SURFACES = {
    "openai:chat-completions": "chat",
    "openai:responses": "responses",
    "prompt-run": "run",
}


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def internal_request_id(name: str) -> str:
    """The request id of a call the site makes by itself, e.g. `job12-item34`."""
    return INTERNAL_REQUEST_ID_PREFIX + name


def caller_request_id(incoming: str | None) -> str:
    """The caller's x-request-id if it is a sane token outside the internal namespace, else
    a new one."""
    if (
        incoming
        and _REQUEST_ID.fullmatch(incoming)
        and not incoming.startswith(INTERNAL_REQUEST_ID_PREFIX)
    ):
        return incoming
    return new_request_id()


GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def error_response(request_path: str, error: AppError) -> JsonResponse:
    """An AppError in the shape of the surface the path belongs to (OpenAI's under /v1/)."""
    if request_path.startswith(OPENAI_PREFIX):
        body: dict[str, Any] = {
            "error": {
                "message": error.message,
                "type": error.openai_type,
                "code": error.code,
                "param": error.param,
            }
        }
    else:
        body = error.as_dict()
    response = JsonResponse(body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def max_request_bytes() -> int:
    return settings.MAX_REQUEST_BYTES


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the limit of {limit} bytes.",
        details={"max_bytes": limit},
    )


class RequestContextMiddleware:
    """Outermost middleware: gives the request an id, refuses what is too large or malformed
    before anything reads it, then logs one JSON line and records metrics per response.

    Views may add fields to the access-log line with `request.log_fields["team"] = ...`
    (never secrets or bodies)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = perf_counter()
        meta = request.META
        request_id = caller_request_id(meta.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        request.log_fields = {}  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        HTTP_IN_FLIGHT.inc()
        try:
            response = self._refuse(request, meta) or await self.get_response(request)
        finally:
            HTTP_IN_FLIGHT.dec()
            request_id_var.reset(token)
        response["x-request-id"] = request_id
        if isinstance(response, StreamingHttpResponse) and response.is_async:
            response.streaming_content = self._observe_stream(
                request, response, started, cast(AsyncIterator[bytes], response.streaming_content)
            )
        else:
            self._finish(request, response, started, request_id)
        return response

    @staticmethod
    def _refuse(request: HttpRequest, meta: dict[str, Any]) -> HttpResponse | None:
        length = meta.get("CONTENT_LENGTH")
        if length:
            limit = max_request_bytes()
            try:
                too_big = int(length) > limit
            except ValueError:
                return error_response(request.path, BadRequest("Invalid Content-Length header."))
            if too_big:
                return error_response(request.path, too_large(limit))
        # NUL cannot be stored in PostgreSQL text; refuse it at the door rather than fail later.
        if "%00" in meta.get("QUERY_STRING", "") or "\x00" in request.path:
            return error_response(
                request.path, BadRequest("NUL characters are not allowed in URLs.")
            )
        return None

    async def _observe_stream(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        started: float,
        content: AsyncIterator[bytes],
    ) -> AsyncIterator[bytes]:
        token = request_id_var.set(request.request_id)  # type: ignore[attr-defined]
        try:
            async for chunk in content:
                yield chunk
        finally:
            self._finish(request, response, started, request.request_id)  # type: ignore[attr-defined]
            request_id_var.reset(token)

    @staticmethod
    def _finish(
        request: HttpRequest, response: HttpResponseBase, started: float, request_id: str
    ) -> None:
        seconds = perf_counter() - started
        match = request.resolver_match
        route = match.route if match is not None else "unmatched"
        status = response.status_code
        record_http(method=request.method or "", route=route, status=status, seconds=seconds)
        surface = GATEWAY_SURFACES.get(match.view_name) if match is not None else None
        if surface is not None:
            # The gateway names what served the request in its response headers.
            record_request(
                surface=surface,
                tier=response.get("x-switchboard-tier", ""),
                model=response.get("x-switchboard-model", ""),
                status=status,
                latency_seconds=seconds,
            )
        # The line's fields are built only when it is written (LOG_LEVEL may be above INFO).
        if settings.ACCESS_LOG and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                status,
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": request.META.get("REMOTE_ADDR"),
                    **request.log_fields,  # type: ignore[attr-defined]
                },
            )


class ContentSecurityPolicyMiddleware:
    """Sets Content-Security-Policy on HTML responses, with a fresh nonce per request.

    Templates get the nonce as `{{ csp_nonce }}` (core.context_processors.site); django-htmx's
    `{% htmx_script %}` picks it up by itself. Inline scripts without it do not run."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith(OPENAI_PREFIX):
            return await self.get_response(request)
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = await self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if (
            policy
            and response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
        ):
            header = (
                "Content-Security-Policy-Report-Only"
                if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
                else "Content-Security-Policy"
            )
            response[header] = policy.replace("{nonce}", nonce)
        return response
