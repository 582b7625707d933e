"""Upstream attempts: one call, one stream's opening, and the one loop that walks a decision's
plan through retries, the tier's fallback models, and the tiers above."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

from core import jsoncodec
from core.errors import AppError, BadRequest, UpstreamFailed, UpstreamTimeout
from gateway.calls import Usage
from gateway.costs import actual_cost, budget_refusal, ensure_budget, limit_reached, served_tier
from gateway.payloads import output_of, usage_of
from gateway.prepared import Answer, Prepared
from gateway.sse import SSEvent, sse_events
from gateway.upstream import (
    AttemptFailed,
    UpstreamResponse,
    classify_error,
    post_json,
    post_stream,
)
from routing.router import TierPlan
from routing.snapshot import ModelInfo
from spend.models import Purpose, UsageRecord
from spend.usage import UsageRow

log = logging.getLogger(__name__)

T = TypeVar("T")
Attempt = Callable[[Prepared, ModelInfo, TierPlan], Awaitable[T]]


def _backoff(retry: int, failure: AttemptFailed) -> float | None:
    """Seconds to wait before retrying the same model, or None to move on."""
    base = settings.GATEWAY_BACKOFF_SECONDS * (2**retry)
    wait = min(base * (1 - random.random() * 0.25), settings.GATEWAY_BACKOFF_MAX_SECONDS)
    if failure.retry_after is not None:
        if failure.retry_after > settings.GATEWAY_RETRY_AFTER_MAX_SECONDS:
            return None
        wait = max(wait, failure.retry_after)
    return wait


def _final_error(failures: list[tuple[ModelInfo, AttemptFailed]]) -> AppError:
    if not failures:
        return UpstreamFailed("No model could be tried for this request.")
    summary = ", ".join(f"{model.name} {failure.kind}" for model, failure in failures)
    last = failures[-1][1]
    message = f"Every upstream attempt failed ({len(failures)}): {summary}. Last: {last.message}"
    if last.kind == "timeout":
        return UpstreamTimeout(message[:1000])
    return UpstreamFailed(message[:1000])


def _client_error(failure: AttemptFailed) -> AppError:
    error = BadRequest(f"Upstream rejected the request: {failure.message}", param=failure.param)
    if failure.code:
        error.code = failure.code
    return error


def _record_failure(
    prepared: Prepared,
    model: ModelInfo,
    tier: str,
    failure: AttemptFailed,
    started_at: dt.datetime,
    t0: float,
) -> None:
    """The usage record of a failed attempt (no tokens, no cost)."""
    prepared.record(
        model,
        tier,
        started_at=started_at,
        latency=time.perf_counter() - t0,
        status=UsageRecord.Status.ERROR,
        error_code=failure.kind,
        error_message=failure.message,
    )


def _flex_refused(prepared: Prepared, failure: AttemptFailed) -> bool:
    """Switchboard's own work that can wait (a job's `flex` call) that the provider has no
    capacity for (429, resource unavailable) falls back to the default tier: the same model,
    at once, budgeted and billed at the default price. A client that asked for flex itself
    stays at flex, as it would at the provider: paying twice the price is its choice."""
    call = prepared.call
    if call.service_tier != "flex" or call.purpose == Purpose.GATEWAY or failure.status != 429:
        return False
    call.service_tier = "default"
    call.body.pop("service_tier", None)
    prepared.worst.clear()  # the worst cases were at the flex price
    prepared.notes.append("flex refused: fell back to the default tier")
    return True


async def walk_plan(
    prepared: Prepared,
    attempt: Attempt[T],
    *,
    check: Callable[[T], str | None] | None = None,
) -> T:
    """Try the decision's plan until an attempt succeeds: each model up to
    `GATEWAY_RETRIES` more times with backoff, then the tier's next model, then the next
    tier when the decision allows a fallback. `check` (non-streamed answers) returns why an
    answer fails its check; such an answer escalates to the next tier and is kept as a last
    resort. Raises the budget's, the upstream's 4xx or the last failure's AppError."""
    decision = prepared.decision
    failures: list[tuple[ModelInfo, AttemptFailed]] = []
    rejected: T | None = None  # an answer that failed its check, kept as a last resort
    escalate_why = ""
    retries = settings.GATEWAY_RETRIES
    for index, plan in enumerate(decision.plan):
        if index > 0:
            if escalate_why:
                prepared.notes.append(f"escalated to {plan.tier}: {escalate_why}")
            elif failures and decision.allow_tier_fallback:
                prepared.notes.append(
                    f"every {decision.plan[index - 1].tier} model failed: fell back to {plan.tier}"
                )
            else:
                break
        escalate_why = ""
        for model in plan.models:
            result: T | None = None
            retry = 0
            while retry <= retries:
                refused, need = await ensure_budget(prepared, model)
                if refused is not None:
                    if rejected is not None:
                        prepared.notes.append("no budget left to escalate")
                        return rejected
                    limit_reached(prepared, refused, "block", need)
                    raise budget_refusal(prepared, refused, need)
                try:
                    result = await attempt(prepared, model, plan)
                    break
                except AttemptFailed as failure:
                    failures.append((model, failure))
                    if failure.client_error:
                        raise _client_error(failure) from None
                    if _flex_refused(prepared, failure):
                        continue  # the same model at the default tier, at once
                    wait = _backoff(retry, failure) if failure.retryable else None
                    if wait is None or retry == retries:
                        break
                    await asyncio.sleep(wait)
                    retry += 1
            if result is None:
                if len(plan.models) > 1 and model is not plan.models[-1]:
                    prepared.notes.append(f"{model.name} failed ({failures[-1][1].kind})")
                continue
            can_escalate = decision.escalate_on_failed_check and index + 1 < len(decision.plan)
            if check is not None and can_escalate and (why := check(result)) is not None:
                rejected, escalate_why = result, f"{model.name} {why}"
                break
            if failures:
                prepared.notes.append(f"answered by {model.name}")
            return result
        if not escalate_why and not decision.allow_tier_fallback:
            break
    if rejected is not None:
        prepared.notes.append("kept the last answer: no higher tier left")
        return rejected
    raise _final_error(failures)


# ------------------------------------------------------------------------------ calls


def _record_cancelled(
    prepared: Prepared, model: ModelInfo, tier: str, started_at: dt.datetime, t0: float
) -> None:
    """The usage record of an attempt whose client went away before the upstream answered:
    the upstream may bill it, so it is recorded with its input tokens estimated."""
    call = prepared.call
    usage = Usage(input_tokens=call.features.estimated_input_tokens)
    prepared.record(
        model,
        tier,
        started_at=started_at,
        latency=time.perf_counter() - t0,
        usage=usage,
        cost=actual_cost(call, model, usage, started_at),
        status=UsageRecord.Status.CANCELLED,
        error_code="client_disconnected",
        error_message="The client went away before the upstream answered; "
        "input tokens are estimated, output tokens unknown.",
    )


async def call_once(prepared: Prepared, model: ModelInfo, plan: TierPlan) -> Answer:
    """One non-streamed attempt; records it; raises AttemptFailed."""
    call = prepared.call
    started_at, t0 = timezone.now(), time.perf_counter()
    tier = prepared.snapshot.tier(plan.tier)
    try:
        response = await post_json(model, call.api, call.upstream_body(model, tier))
        try:
            data = jsoncodec.loads(response.content)
        except ValueError:
            raise AttemptFailed(
                "server_error", "The upstream answered with invalid JSON."
            ) from None
        if not isinstance(data, dict):
            raise AttemptFailed("server_error", "The upstream answered with unexpected JSON.")
    except AttemptFailed as failure:
        _record_failure(prepared, model, plan.tier, failure, started_at, t0)
        raise
    except asyncio.CancelledError:
        _record_cancelled(prepared, model, plan.tier, started_at, t0)
        raise
    usage = usage_of(call.api, data)
    tier_served = served_tier(call, data.get("service_tier"))
    cost = actual_cost(call, model, usage, started_at, tier_served)
    output = output_of(call.api, data)
    record = prepared.record(
        model,
        plan.tier,
        started_at=started_at,
        latency=time.perf_counter() - t0,
        usage=usage,
        cost=cost,
        response_body=data if call.store_content else None,
        service_tier=tier_served,
    )
    return Answer(model, plan.tier, response.content, data, output, usage, cost, record)


# ------------------------------------------------------------------------------ streams


@dataclass(slots=True)
class OpenStream:
    """An upstream stream whose first event has arrived; the relay reads the rest."""

    prepared: Prepared
    model: ModelInfo
    tier: str
    response: UpstreamResponse
    events: AsyncIterator[SSEvent]
    first: SSEvent
    started_at: dt.datetime
    t0: float

    def record(self, **kwargs: Any) -> UsageRow:
        return self.prepared.record(
            self.model,
            self.tier,
            started_at=self.started_at,
            latency=time.perf_counter() - self.t0,
            **kwargs,
        )

    def cost(self, usage: Usage, service_tier: str | None = None) -> Decimal:
        return actual_cost(self.prepared.call, self.model, usage, self.started_at, service_tier)

    async def aclose(self) -> None:
        try:
            await self.response.aclose()
        except Exception:  # closing a broken connection may raise; nothing to do about it
            log.debug("closing the upstream stream failed", exc_info=True)


async def open_once(prepared: Prepared, model: ModelInfo, plan: TierPlan) -> OpenStream:
    """Open one upstream stream and wait for its first event; records a failure; raises
    AttemptFailed."""
    call = prepared.call
    started_at, t0 = timezone.now(), time.perf_counter()
    tier = prepared.snapshot.tier(plan.tier)
    response = None
    try:
        response = await post_stream(model, call.api, call.upstream_body(model, tier))
        events = sse_events(response)
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            raise AttemptFailed(
                "connection_error", "The upstream stream ended before any event."
            ) from None
        except Exception as exc:
            raise classify_error(exc) from exc
    except AttemptFailed as failure:
        if response is not None:
            await response.aclose()
        _record_failure(prepared, model, plan.tier, failure, started_at, t0)
        raise
    except asyncio.CancelledError:
        _record_cancelled(prepared, model, plan.tier, started_at, t0)
        if response is not None:
            await response.aclose()
        raise
    return OpenStream(prepared, model, plan.tier, response, events, first, started_at, t0)
