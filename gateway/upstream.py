"""Upstream calls: one shared AsyncOpenAI client per provider and event loop, one attempt each.

The SDK's own retries are off (`max_retries=0`): the pipeline retries, falls back and
escalates itself so that every attempt gets its own usage record. Calls go through the
client's low-level `post()` and return the raw HTTP response: the gateway relays upstream
JSON and SSE bytes instead of building and re-serializing pydantic objects, and still gets
the SDK's request building, auth headers, connection pool and error classes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from gateway.conf import setting
from routing.snapshot import ModelInfo, ProviderInfo

CHAT, RESPONSES = "chat", "responses"
PATHS = {CHAT: "/chat/completions", RESPONSES: "/responses"}

_clients: dict[tuple[int, int, str, str], AsyncOpenAI] = {}


def client_for(provider: ProviderInfo) -> AsyncOpenAI:
    """The provider's client for the running event loop (a client is bound to its loop)."""
    api_key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    key = (id(asyncio.get_running_loop()), provider.id, provider.base_url, api_key)
    client = _clients.get(key)
    if client is None:
        client = AsyncOpenAI(
            base_url=provider.base_url,
            api_key=api_key or "switchboard-no-key",
            max_retries=0,
            timeout=httpx2.Timeout(
                provider.timeout_seconds, connect=setting("GATEWAY_CONNECT_TIMEOUT_SECONDS")
            ),
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(max_connections=2000, max_keepalive_connections=1000),
            ),
        )
        _clients[key] = client
    return client


async def clients_close() -> None:
    """Close the clients of the running loop (shutdown, end of a test)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _clients if key[0] == loop_id]:
        await _clients.pop(key).close()


@dataclass(slots=True)
class AttemptFailed(Exception):
    """One upstream attempt that failed. `kind` is the usage record's error code."""

    kind: str  # rate_limited | server_error | timeout | connection_error | bad_request | upstream_error
    message: str
    status: int | None = None
    retry_after: float | None = None
    code: str | None = None
    param: str | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in {"rate_limited", "server_error", "timeout", "connection_error"}

    @property
    def client_error(self) -> bool:
        """The request itself is wrong: no other model would answer differently."""
        return self.kind == "bad_request"

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def classify_error(exc: Exception) -> AttemptFailed:
    if isinstance(exc, openai.APITimeoutError):
        return AttemptFailed("timeout", "The upstream did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return AttemptFailed("connection_error", f"Upstream connection failed: {exc}")
    if isinstance(exc, httpx2.TimeoutException | asyncio.TimeoutError):
        return AttemptFailed("timeout", "The upstream did not answer in time.")
    if isinstance(exc, httpx2.TransportError):
        return AttemptFailed("connection_error", f"Upstream connection failed: {exc}")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = str(body.get("message") or exc.message)
        status = exc.status_code
        if status == 429:
            kind = "rate_limited"
        elif status >= 500:
            kind = "server_error"
        elif status in (400, 422):
            kind = "bad_request"
        else:
            kind = "upstream_error"  # 401/403/404/409: our configuration, not the caller's
        return AttemptFailed(
            kind,
            message,
            status=status,
            retry_after=_retry_after(exc.response.headers),
            code=body.get("code"),
            param=body.get("param"),
        )
    return AttemptFailed("upstream_error", f"{type(exc).__name__}: {exc}")


def _options(model: ModelInfo) -> dict[str, Any]:
    return {
        "timeout": httpx2.Timeout(
            model.timeout_seconds, connect=setting("GATEWAY_CONNECT_TIMEOUT_SECONDS")
        )
    }


async def post_json(model: ModelInfo, api: str, body: dict[str, Any]) -> httpx2.Response:
    """A non-streamed call; the response body has been read. Raises AttemptFailed."""
    client = client_for(model.provider)
    try:
        return await client.post(
            PATHS[api], body=body, cast_to=httpx2.Response, options=_options(model)
        )
    except Exception as exc:  # every failure is recorded and decides retry/fallback
        raise classify_error(exc) from exc


async def post_stream(model: ModelInfo, api: str, body: dict[str, Any]) -> httpx2.Response:
    """A streamed call: status checked, body unread (iterate `aiter_lines`, then `aclose`)."""
    client = client_for(model.provider)
    try:
        return await client.post(
            PATHS[api],
            body=body,
            cast_to=httpx2.Response,
            options=_options(model),
            stream=True,
            stream_cls=openai.AsyncStream,
        )
    except Exception as exc:
        raise classify_error(exc) from exc
