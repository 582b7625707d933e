"""Relaying an upstream SSE stream to the client, and recording it however it ends.

- Completed: the upstream's usage (the chat usage chunk, or `response.completed`) is costed
  and recorded with status `success`.
- Cut by the upstream (no `[DONE]` / `response.completed`): the client gets an OpenAI-style
  error event, never a silently truncated success, and the attempt is recorded as `error`
  with estimated tokens.
- Cancelled by a client that went away: Django cancels the response task; the `finally`
  records the attempt as `cancelled` with estimated tokens, without awaiting anything first.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from core import jsoncodec
from gateway.attempts import OpenStream
from gateway.calls import Usage
from gateway.costs import served_tier
from gateway.payloads import usage_from_chat, usage_from_responses
from gateway.shadow import shadow_offer
from gateway.sse import SSEvent
from gateway.upstream import CHAT, classify_error
from routing.router import estimate_tokens
from spend.models import UsageRecord

log = logging.getLogger(__name__)

STREAM_CUT = "upstream_stream_cut"
CUT_MESSAGE = "The upstream stream ended before the response was complete."


@dataclass(slots=True)
class StreamState:
    """What the relay has seen so far."""

    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    completed: bool = False
    failed: str = ""  # an error code once the stream failed
    failed_message: str = ""
    ttft: float | None = None
    sequence: int = 0
    final: dict[str, Any] | None = None  # the upstream's final response object (responses API)
    service_tier: Any = None  # as the upstream says it served the call

    @property
    def output_text(self) -> str:
        return "".join(self.text)


@dataclass(slots=True)
class Parsed:
    kind: str  # delta | usage | done | error | other
    data: dict[str, Any] | None
    text: str = ""


def parse_chat(event: SSEvent, state: StreamState) -> Parsed:
    if event.data.startswith("[DONE]"):
        state.completed = True
        return Parsed("done", None)
    try:
        data = jsoncodec.loads(event.data)
    except ValueError:
        return Parsed("other", None)
    if not isinstance(data, dict):
        return Parsed("other", None)
    if data.get("error"):
        error = data["error"] if isinstance(data["error"], dict) else {}
        state.failed = str(error.get("code") or "upstream_error")
        state.failed_message = str(error.get("message") or "upstream stream error")
        return Parsed("error", data)
    if data.get("service_tier"):
        state.service_tier = data["service_tier"]
    if data.get("usage"):
        state.usage = usage_from_chat(data["usage"])
        if not data.get("choices"):
            return Parsed("usage", data)
    text = ""
    for choice in data.get("choices") or ():
        delta = (choice or {}).get("delta") or {}
        if delta.get("content"):
            text += delta["content"]
    return Parsed("delta" if text else "other", data, text)


def parse_responses(event: SSEvent, state: StreamState) -> Parsed:
    try:
        data = jsoncodec.loads(event.data)
    except ValueError:
        return Parsed("other", None)
    if not isinstance(data, dict):
        return Parsed("other", None)
    kind = data.get("type") or event.event or ""
    if isinstance(data.get("sequence_number"), int):
        state.sequence = data["sequence_number"]
    if kind == "response.output_text.delta":
        return Parsed("delta", data, str(data.get("delta") or ""))
    if kind in ("response.completed", "response.incomplete", "response.failed"):
        response = data.get("response") or {}
        state.final = response
        state.service_tier = response.get("service_tier")
        state.usage = usage_from_responses(response.get("usage"))
        if kind == "response.failed":
            error = response.get("error") or {}
            state.failed = str(error.get("code") or "response_failed")
            state.failed_message = str(error.get("message") or "the response failed")
        else:
            state.completed = True
        return Parsed("done", data)
    if kind == "error":
        state.failed = str(data.get("code") or "upstream_error")
        state.failed_message = str(data.get("message") or "upstream stream error")
        return Parsed("error", data)
    return Parsed("other", data)


def error_payload(code: str, message: str) -> dict[str, Any]:
    return {"message": message, "type": "api_error", "code": code, "param": None}


# Emitters turn parsed upstream events into bytes for the client (None: send nothing).
Emitter = Callable[[SSEvent, Parsed, StreamState], bytes | None]


def openai_emitter(
    api: str, *, client_wants_usage: bool
) -> tuple[Emitter, Callable[[StreamState], bytes]]:
    """Pass-through of the upstream's events, and the error event that ends a broken stream."""

    def emit(event: SSEvent, parsed: Parsed, state: StreamState) -> bytes | None:
        if api == CHAT:
            if parsed.kind == "usage" and not client_wants_usage:
                return None
            return b"data: " + event.data.encode() + b"\n\n"
        name = event.event or (parsed.data or {}).get("type") or "message"
        return b"event: " + name.encode() + b"\ndata: " + event.data.encode() + b"\n\n"

    def error_event(state: StreamState) -> bytes:
        error = error_payload(
            state.failed or STREAM_CUT, state.failed_message or "The upstream stream was cut."
        )
        if api == CHAT:
            return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
        body = {
            "type": "error",
            "code": error["code"],
            "message": error["message"],
            "param": None,
            "sequence_number": state.sequence + 1,
            "error": error,
        }
        return b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"

    return emit, error_event


async def relay(
    stream: OpenStream,
    emit: Emitter,
    error_event: Callable[[StreamState], bytes],
    *,
    on_end: Callable[[StreamState], bytes | None] | None = None,
    prelude: bytes | None = None,
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; record the attempt and close the ledger however it ends."""
    call = stream.prepared.call
    parse = parse_chat if call.api == CHAT else parse_responses
    state = StreamState()
    event: SSEvent | None = stream.first
    try:
        if prelude:
            yield prelude
        while event is not None:
            parsed = parse(event, state)
            if parsed.text:
                if state.ttft is None:
                    state.ttft = time.perf_counter() - stream.t0
                state.text.append(parsed.text)
            chunk = emit(event, parsed, state)
            if chunk:
                yield chunk
            if parsed.kind in ("done", "error"):
                break
            try:
                event = await stream.events.__anext__()
            except StopAsyncIteration:
                event = None
            except Exception as exc:  # a read timeout or a broken connection mid-stream
                failure = classify_error(exc)
                if failure.kind == "connection_error":
                    # A cut, whatever the transport's message: the client gets the documented
                    # code, never a transport's wording.
                    state.failed, state.failed_message = STREAM_CUT, CUT_MESSAGE
                else:
                    state.failed, state.failed_message = failure.kind, failure.message
                event = None
        if not state.completed:
            if not state.failed:
                state.failed, state.failed_message = STREAM_CUT, CUT_MESSAGE
            yield error_event(state)
        elif on_end is not None:
            tail = on_end(state)
            if tail:
                yield tail
    finally:
        _finish(stream, state)
        await stream.aclose()


def _estimated_usage(stream: OpenStream, state: StreamState) -> Usage:
    features = stream.prepared.call.features
    return Usage(
        input_tokens=features.estimated_input_tokens,
        output_tokens=estimate_tokens(state.output_text),
    )


def _finish(stream: OpenStream, state: StreamState) -> None:
    """Record the attempt and hand the ledger to the writer; no await (may run cancelled)."""
    try:
        if state.completed:
            usage = state.usage or _estimated_usage(stream, state)
            status, code, message = UsageRecord.Status.SUCCESS, "", ""
        elif state.failed:
            usage = state.usage or _estimated_usage(stream, state)
            status, code, message = UsageRecord.Status.ERROR, state.failed, state.failed_message
        else:
            usage = _estimated_usage(stream, state)
            status, code, message = (
                UsageRecord.Status.CANCELLED,
                "client_disconnected",
                "The client went away mid-stream; tokens are estimated.",
            )
        tier = served_tier(stream.prepared.call, state.service_tier)
        stream.record(
            usage=usage,
            cost=stream.cost(usage, tier),
            service_tier=tier,
            status=status,
            error_code=code,
            error_message=message,
            ttft=state.ttft,
            response_body={"output_text": state.output_text}
            if stream.prepared.call.store_content
            else None,
        )
        if state.completed:
            shadow_offer(
                stream.prepared.call,
                model=stream.model.name,
                tier=stream.tier,
                output=state.output_text,
                cost=stream.prepared.ledger.committed,
            )
    except Exception:
        log.exception("could not record a streamed attempt of %s", stream.prepared.call.request_id)
    finally:
        stream.prepared.ledger.close()
