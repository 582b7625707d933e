"""Upstream calls: one connection pool per provider and event loop, one attempt each.

The pipeline retries, falls back and escalates itself so that every attempt gets its own
usage record. A call returns the raw HTTP response: the gateway relays upstream JSON and SSE
bytes instead of building and re-serializing pydantic objects, and still uses the SDK
client's auth headers and error classes (see `send`). The server and Celery tasks send
through the same code.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import resource
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from django.conf import settings
from openai import AsyncOpenAI

from core import jsoncodec
from gateway.adapters.openai_sdk import sdk_status_error
from gateway.http1 import ConnectionFailed, Origin, Response
from routing.snapshot import ModelInfo, ProviderInfo

CHAT, RESPONSES = "chat", "responses"
_WIRE_HEADERS = {b"content-encoding", b"content-length", b"transfer-encoding"}
PATHS = {CHAT: "/chat/completions", RESPONSES: "/responses"}


@dataclass(frozen=True, slots=True)
class Upstream:
    """A provider's shared SDK client, and what a call needs from it, computed once."""

    client: AsyncOpenAI
    base_url: str
    origin: Origin
    loop: asyncio.AbstractEventLoop


_upstreams: dict[tuple[int, int, str, str], Upstream] = {}

log = logging.getLogger(__name__)

# Each request in flight holds two sockets (the client's, the upstream's): 4,096 open files
# serve about 2,000 at once.
OPEN_FILES_WANTED = 4096


def serving() -> None:
    """Called at ASGI lifespan startup, beside `clients_close` at shutdown: say so if the
    process may open too few files for a burst, which would otherwise show only as failed
    connections under load."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < OPEN_FILES_WANTED:
        log.warning(
            "this process may open only %d files: past about %d requests in flight, new "
            "connections fail; raise its limit (docs/production.md, Open files)",
            soft,
            soft // 2,
        )


def upstream_for(provider: ProviderInfo) -> Upstream:
    """The provider's client for the running event loop (a client is bound to its loop; a
    loop that reuses a dead one's id gets its own)."""
    api_key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    loop = asyncio.get_running_loop()
    key = (id(loop), provider.id, provider.base_url, api_key)
    found = _upstreams.get(key)
    if found is None or found.loop is not loop:
        # The SDK client sends nothing: it gives the headers and the error classes. The one
        # transport, in the server and in Celery tasks alike, is gateway.http1; a short-lived
        # loop (a Celery task, a test) closes it with `clients_close`.
        client = AsyncOpenAI(base_url=provider.base_url, api_key=api_key or "switchboard-no-key")
        headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
        headers.update(client.auth_headers)
        base_url = str(client.base_url).rstrip("/")
        found = _upstreams[key] = Upstream(
            client=client, base_url=base_url, origin=Origin(base_url, headers), loop=loop
        )
    return found


async def clients_close() -> None:
    """Close the clients of the running loop (shutdown, end of a test)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _upstreams if key[0] == loop_id]:
        upstream = _upstreams.pop(key)
        await upstream.client.close()
        upstream.origin.close()


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


def _transport_kind(exc: BaseException) -> str | None:
    """What a transport error was, raised straight or as the cause of another."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return "timeout"
        if isinstance(cause, ConnectionFailed):
            return "connection_error"
        cause = cause.__cause__
    return None


def classify_error(exc: Exception) -> AttemptFailed:
    kind = _transport_kind(exc)
    if kind == "timeout":
        return AttemptFailed("timeout", "The upstream did not answer in time.")
    if kind == "connection_error":
        return AttemptFailed(
            "connection_error", f"Upstream connection failed: {exc.__cause__ or exc}"
        )
    if isinstance(exc, openai.APITimeoutError):
        return AttemptFailed("timeout", "The upstream did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return AttemptFailed("connection_error", f"Upstream connection failed: {exc}")
    if isinstance(exc, asyncio.TimeoutError):
        return AttemptFailed("timeout", "The upstream did not answer in time.")
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


class Reply:
    """An upstream answer: `status_code`, `content` (once read), `aiter_lines`, `aclose`."""

    __slots__ = ("_response", "content", "status_code")

    def __init__(self, response: Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.content = b""

    async def aread(self) -> bytes:
        self.content = await self._response.read()
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines as they arrive, without their line ending; no limit on a line's length."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        async for chunk in self._response.chunks():
            *lines, pending = (pending + decoder.decode(chunk)).split("\n")
            for line in lines:
                yield line.removesuffix("\r")
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending.removesuffix("\r")

    async def aclose(self) -> None:
        # Back to the pool once read to the end; a connection left mid-body is closed.
        self._response.release()

    def as_httpx(self, url: str) -> httpx2.Response:
        """For the SDK's error classes (error statuses only: the body has been read, and
        decoded: the headers that framed and encoded it on the wire are left out)."""
        return httpx2.Response(
            self.status_code,
            headers=[
                (name, value)
                for name, value in self._response.raw_headers
                if name.lower() not in _WIRE_HEADERS
            ],
            content=self.content,
            request=httpx2.Request("POST", url),
        )


UpstreamResponse = Reply


async def send(
    model: ModelInfo, api: str, body: dict[str, Any], *, stream: bool
) -> UpstreamResponse:
    """POST the body to the model's provider; raises AttemptFailed. A streamed answer comes
    back with its body unread (iterate `aiter_lines`, then `aclose`), any other read.

    The request is built here with the SDK client's headers, and error statuses become the
    SDK's exception classes: the SDK's per-call request machinery (option models, auth
    hooks, retry loop) costs more CPU than the whole rest of the gateway's hot path, and
    none of it applies with retries done by the pipeline."""
    upstream = upstream_for(model.provider)
    path = PATHS[api]
    content = jsoncodec.dumps(body)
    response: UpstreamResponse
    try:
        response = Reply(
            await upstream.origin.post(
                path,
                content,
                connect_timeout=settings.GATEWAY_CONNECT_TIMEOUT_SECONDS,
                read_timeout=model.timeout_seconds,
            )
        )
        try:
            if response.status_code >= 400 or not stream:
                await response.aread()
        except BaseException:
            await response.aclose()
            raise
        if response.status_code >= 400:
            await response.aclose()
            raise sdk_status_error(upstream.client, response.as_httpx(upstream.base_url + path))
    except AttemptFailed:
        raise
    except Exception as exc:  # every failure is recorded and decides retry/fallback
        raise classify_error(exc) from exc
    return response


async def post_json(model: ModelInfo, api: str, body: dict[str, Any]) -> UpstreamResponse:
    """A non-streamed call; the response body has been read. Raises AttemptFailed."""
    return await send(model, api, body, stream=False)


async def post_stream(model: ModelInfo, api: str, body: dict[str, Any]) -> UpstreamResponse:
    """A streamed call: status checked, body unread (iterate `aiter_lines`, then `aclose`)."""
    return await send(model, api, body, stream=True)
