"""HTTP plumbing shared by the gateway's views: auth, JSON bodies, error shapes, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from accounts.keys import api_key_resolve
from accounts.models import ApiKey
from core.bearer import bearer_token
from core.errors import AppError, BadRequest, PayloadTooLarge, RateLimited, Unauthenticated
from core.jsonlimits import json_loads_limited
from core.ratelimit import rate_limit_hit
from gateway.refusals import refusal_log
from prompts.selectors import prompt_version_resolve

R = TypeVar("R", bound=HttpResponse)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def authenticate(request: HttpRequest) -> ApiKey:
    """The request's team key (`Authorization: Bearer sb_...`), or Unauthenticated (401)."""
    raw = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if raw is None:
        raise Unauthenticated(
            "Missing API key: send `Authorization: Bearer sb_...` with a team key."
        )
    api_key = await api_key_resolve(raw)
    if api_key is None:
        raise Unauthenticated("Invalid or revoked API key.")
    return api_key


def json_body(request: HttpRequest) -> dict[str, Any]:
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > settings.GATEWAY_MAX_BODY_BYTES:
        raise PayloadTooLarge("The request body is too large.")
    try:
        raw = request.body
    except Exception as exc:  # RequestDataTooBig and friends
        raise PayloadTooLarge(str(exc)) from None
    if not raw:
        raise BadRequest("The request body must be a JSON object.")
    # Malformed, too deep, NUL, lone surrogates: a 400 with a specific code (core.jsonlimits).
    body = json_loads_limited(raw)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


async def rate_limit(api_key: ApiKey, call: Any, *, record: bool = True) -> None:
    """The key's requests/tokens-per-minute limits (429 with Retry-After); tokens are the
    request's input bound plus its max output. No I/O for keys without limits. A refusal is
    listed in the request explorer unless `record` is off (a job item paced by the limit
    waits and asks again: it was delayed, not refused)."""
    if api_key.rate_limit_rpm or api_key.rate_limit_tpm:
        try:
            await rate_limit_hit(
                key_id=api_key.id,
                rpm=api_key.rate_limit_rpm,
                tpm=api_key.rate_limit_tpm,
                tokens=call.input_token_bound + (call.max_output_tokens or 0),
            )
        except RateLimited as exc:
            if record:
                refusal_log(call, exc)
            raise


def openai_error(exc: AppError, request_id: str | None = None) -> JsonResponse:
    """OpenAI's error shape: {"error": {"message", "type", "code", "param"}}."""
    message = exc.message
    if isinstance(exc.details, dict) and exc.status == 422:
        message += " " + "; ".join(f"{name}: {why}" for name, why in exc.details.items())
    response = JsonResponse(
        {
            "error": {
                "message": message,
                "type": exc.openai_type,
                "code": exc.code,
                "param": exc.param
                if exc.param is not None
                else (
                    next(iter(exc.details))
                    if isinstance(exc.details, dict) and exc.details
                    else None
                ),
            }
        },
        status=exc.status,
    )
    return _with_headers(response, exc.headers, request_id)


def api_error(exc: AppError, request_id: str | None = None) -> JsonResponse:
    """Our /api shape: {"error": {"code", "message", "details"}}."""
    return _with_headers(JsonResponse(exc.as_dict(), status=exc.status), exc.headers, request_id)


def _with_headers(response: R, headers: dict[str, str], request_id: str | None) -> R:
    for name, value in headers.items():
        response[name] = value
    if request_id:
        response["x-request-id"] = request_id
    return response


# Printable ASCII but `%`: what a header value keeps as is (docs/gateway.md, headers).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_safe(value: str, limit: int = 400) -> str:
    """`value` as a header value: UTF-8 percent-encoded (RFC 3986) outside printable ASCII,
    and `%` itself, so that `urllib.parse.unquote` gives the text back (a rule named in
    Japanese stays readable, not `???`); at most `limit` characters before encoding."""
    text = value[:limit].replace("\n", " ").replace("\r", " ")
    return quote(text, safe=_HEADER_SAFE)


def switchboard_headers(
    *, request_id: str, model: str, tier: str, rule: str, reason: str, cost: Decimal | None
) -> dict[str, str]:
    headers = {
        "x-request-id": request_id,
        "x-switchboard-model": model,
        "x-switchboard-tier": tier,
        "x-switchboard-route": header_safe(f"{rule}: {reason}"),
    }
    if cost is not None:
        headers["x-switchboard-cost-usd"] = money(cost)
    return headers


def money(value: Decimal) -> str:
    return f"{value:f}"


def raw_json(body: bytes, headers: dict[str, str]) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    for name, value in headers.items():
        response[name] = value
    return response


def event_stream(chunks: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    for name, value in {**SSE_HEADERS, **headers}.items():
        response[name] = value
    return response


async def resolve_version(
    *, team_id: int, slug: str, label: str | None, version: int | None
) -> Any:
    """A prompt version by label or number (prompts.selectors, behind the hot cache)."""
    return await prompt_version_resolve(team_id=team_id, slug=slug, label=label, version=version)
