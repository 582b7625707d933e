"""The playground's one door to the models: the gateway's pipeline (routing, budgets, retries
and fallbacks, usage records). This module only maps a column and an input onto a
`GatewayCall` and reads the outcome back; it has no upstream client of its own."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async

from core.errors import AppError, BadRequest, UpstreamFailed
from gateway.calls import GatewayCall, Usage, prompt_body
from gateway.http import rate_limit
from gateway.pipeline import complete, open_stream, prepare
from gateway.streaming import relay
from playground.columns import ColumnSpec
from prompts.rendering import arender_version
from routing.router import AUTO, TIER_PREFIX, estimate_tokens
from spend.models import UsageRecord
from spend.usage import usage_flush

# Free text has no prompt version to bound its answer; the budget reserves for this many.
FREE_TEXT_MAX_OUTPUT_TOKENS = 4096


@dataclass(slots=True)
class CallInput:
    """What to send: a prompt version with variables, or free text (instructions + input)."""

    team: Any
    purpose: str
    column: ColumnSpec
    prompt_version: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    instructions: str = ""
    input: Any = None  # free text: a string or a list of {"role", "content"} messages
    body: dict[str, Any] | None = None  # an upstream body as it was sent (shadow re-runs)
    api_key: Any = None
    request_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    service_tier: str = "default"  # `flex` for a job that can wait (falls back to default)


@dataclass(slots=True)
class CallResult:
    output: str
    model_name: str
    tier_name: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal  # every attempt of the request (fallbacks, a classifier) included
    latency_ms: int
    ttft_ms: int | None
    usage_record_id: int | None
    request_id: str = ""
    stopped: bool = False  # ended by `stop`: the text so far, its tokens estimated


def _requested(column: ColumnSpec) -> str:
    """The column's own target; `auto` lets the prompt version's pin or the policy decide."""
    if column.model:
        return column.model
    if column.tier:
        return f"{TIER_PREFIX}{column.tier}"
    return AUTO


async def _body(spec: CallInput) -> tuple[dict[str, Any], int | None]:
    version = spec.prompt_version
    if spec.body is not None:
        body = {
            k: v for k, v in spec.body.items() if k not in ("model", "stream", "stream_options")
        }
        max_output = body.get("max_output_tokens") or (
            version.max_output_tokens if version else None
        )
    elif version is not None:
        body = prompt_body(version, await arender_version(version, spec.variables))
        max_output = version.max_output_tokens
    else:
        if not spec.input:
            raise BadRequest("Free text needs an input.", param="input")
        body = {"input": spec.input}
        if spec.instructions.strip():
            body["instructions"] = spec.instructions
        body["max_output_tokens"] = max_output = FREE_TEXT_MAX_OUTPUT_TOKENS
    if spec.column.temperature is not None:
        body["temperature"] = float(spec.column.temperature)
    if spec.column.reasoning_effort:
        body["reasoning"] = {
            **(body.get("reasoning") or {}),
            "effort": spec.column.reasoning_effort,
        }
    return body, max_output


async def call_of(spec: CallInput, *, stream: bool = False) -> GatewayCall:
    """The gateway call of `spec` (not yet sent)."""
    body, max_output = await _body(spec)
    if spec.service_tier != "default":
        body["service_tier"] = spec.service_tier
    return GatewayCall.for_responses(
        body=body,
        team_id=spec.team.pk,
        api_key_id=spec.api_key.pk if spec.api_key is not None else None,
        team_store_content=spec.team.store_content,
        team_no_content=spec.team.no_content,
        version=spec.prompt_version,
        requested=_requested(spec.column),
        stream=stream,
        metadata={**spec.metadata, "purpose": spec.purpose},
        purpose=spec.purpose,
        max_output_tokens=max_output,
        request_id=spec.request_id,
        service_tier=spec.service_tier,
    )


async def usage_record_id(request_id: str, *, team_id: int) -> int | None:
    """The team's successful usage record of a request, once the gateway's writer has stored
    it (callers choose request ids: another team may have used the same one)."""
    await usage_flush()
    return await sync_to_async(
        lambda: (
            UsageRecord.objects.filter(
                team_id=team_id, request_id=request_id, status=UsageRecord.Status.SUCCESS
            )
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
    )()


async def _count_against_key(spec: CallInput, gateway_call: GatewayCall) -> None:
    """A call made with a team key (a job's item) counts against the key's requests and
    tokens per minute like a /v1 request; raises RateLimited (with Retry-After) before any
    money is spent when it does not fit."""
    if spec.api_key is not None:
        await rate_limit(spec.api_key, gateway_call, record=False)


async def call(spec: CallInput) -> CallResult:
    """One non-streamed call through the gateway; raises the gateway's AppError on failure
    (RateLimited, before anything is spent, when the key is over its rate limits)."""
    gateway_call = await call_of(spec, stream=False)
    await _count_against_key(spec, gateway_call)
    outcome = await complete(await prepare(gateway_call))
    answer = outcome.answer
    return CallResult(
        output=answer.output.text,
        model_name=answer.model.name,
        tier_name=answer.tier,
        input_tokens=answer.usage.input_tokens,
        cached_input_tokens=answer.usage.cached_input_tokens,
        output_tokens=answer.usage.output_tokens,
        reasoning_tokens=answer.usage.reasoning_tokens,
        cost_usd=outcome.cost_usd,
        latency_ms=outcome.latency_ms,
        ttft_ms=None,
        usage_record_id=await usage_record_id(gateway_call.request_id, team_id=spec.team.pk),
        request_id=gateway_call.request_id,
    )


_DELTA, _ERROR, _END = b"d", b"e", b"z"


async def stream(
    spec: CallInput,
    *,
    stop: Callable[[], Awaitable[bool]] | None = None,
    stop_every: float = 0.2,
) -> AsyncIterator[str | CallResult]:
    """Text deltas as the model writes them, then one CallResult. A stream that breaks after
    its first bytes raises UpstreamFailed (the gateway has recorded the attempt as failed);
    one that never starts raises the gateway's error, after its retries and fallbacks.

    `stop`, asked between deltas at most every `stop_every` seconds, ends the stream early:
    the upstream is closed (the gateway records the attempt as cancelled, tokens estimated)
    and the CallResult has the text so far, with the same estimate (`stopped`)."""

    gateway_call = await call_of(spec, stream=True)
    await _count_against_key(spec, gateway_call)
    prepared = await prepare(gateway_call)
    opened = await open_stream(prepared)
    final: dict[str, Any] = {}

    def emit(event: Any, parsed: Any, state: Any) -> bytes | None:
        return _DELTA + parsed.text.encode() if parsed.kind == "delta" and parsed.text else None

    def error_event(state: Any) -> bytes:
        final["error"] = state.failed_message or state.failed or "The stream broke."
        return _ERROR

    def on_end(state: Any) -> bytes:
        usage = state.usage
        final["state"] = state
        final["cost"] = prepared.ledger.committed + (opened.cost(usage) if usage else 0)
        return _END

    relayed = relay(opened, emit, error_event, on_end=on_end)
    text: list[str] = []
    ttft_ms = 0
    asked = time.monotonic()
    async for chunk in relayed:
        if chunk.startswith(_DELTA):
            if not text:
                ttft_ms = int((time.perf_counter() - gateway_call.started) * 1000)
            text.append(chunk[1:].decode())
            yield text[-1]
            if stop is not None and time.monotonic() - asked >= stop_every:
                asked = time.monotonic()
                if await stop():
                    yield await _stopped(gateway_call, prepared, opened, relayed, text, ttft_ms)
                    return
    if "error" in final:
        raise UpstreamFailed(final["error"])
    state = final.get("state")
    if state is None:
        raise AppError("The stream ended without a result.")
    usage = state.usage
    yield CallResult(
        output=state.output_text,
        model_name=opened.model.name,
        tier_name=opened.tier,
        input_tokens=usage.input_tokens if usage else 0,
        cached_input_tokens=usage.cached_input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        cost_usd=final["cost"],
        latency_ms=int((time.perf_counter() - gateway_call.started) * 1000),
        ttft_ms=int((state.ttft + (opened.t0 - gateway_call.started)) * 1000)
        if state.ttft is not None
        else None,
        usage_record_id=await usage_record_id(gateway_call.request_id, team_id=spec.team.pk),
        request_id=gateway_call.request_id,
    )


async def _stopped(
    gateway_call: GatewayCall,
    prepared: Any,
    opened: Any,
    relayed: AsyncGenerator[bytes],
    text: list[str],
    ttft_ms: int,
) -> CallResult:
    """Close a stream stopped on purpose; its figures as the gateway records them (input
    tokens estimated from the request, output tokens from the text so far)."""
    committed = prepared.ledger.committed
    await relayed.aclose()  # the relay records the attempt as cancelled and closes the ledger
    output = "".join(text)
    usage = Usage(
        input_tokens=gateway_call.features.estimated_input_tokens,
        output_tokens=estimate_tokens(output),
    )
    return CallResult(
        output=output,
        model_name=opened.model.name,
        tier_name=opened.tier,
        input_tokens=usage.input_tokens,
        cached_input_tokens=0,
        output_tokens=usage.output_tokens,
        reasoning_tokens=0,
        cost_usd=committed + opened.cost(usage),
        latency_ms=int((time.perf_counter() - gateway_call.started) * 1000),
        ttft_ms=ttft_ms,
        usage_record_id=None,
        request_id=gateway_call.request_id,
        stopped=True,
    )
