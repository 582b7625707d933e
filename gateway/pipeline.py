"""The request path: route → (classify) → reserve → call upstream with retries, fallbacks and
escalation → record usage and settle.

    prepared = await prepare(call)        # routing decision + budget reservation
    outcome = await complete(prepared)    # non-streamed: the answer, or an AppError
    stream = await open_stream(prepared)  # streamed: the first event is in, headers are known

Every upstream attempt adds one usage record to the request's ledger; the ledger is closed
(handed to the usage writer, which also settles the budget) when the request ends, whatever
way it ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.errors import AppError, BadRequest, BudgetExceeded, UpstreamFailed, UpstreamTimeout
from core.metrics import record_budget_block
from core.money import ZERO
from gateway.calls import GatewayCall, Usage, responses_input_stats
from gateway.conf import setting
from gateway.payloads import Output, check_output, output_of, usage_of
from gateway.shadow import shadow_offer
from gateway.upstream import RESPONSES, AttemptFailed, UpstreamResponse, post_json, post_stream
from gateway.usage import Ledger, UsageRow
from routing import classifier
from routing.router import Decision, RequestFeatures, TierPlan, downgrade, route
from routing.snapshot import ModelInfo, Snapshot, snapshot_get
from spend.budgets import BudgetHold, BudgetInfo, budget_limit_alert, budgets_for
from spend.models import Budget, Purpose, UsageRecord
from spend.pricing import cost_usd, worst_case_cost_usd

log = logging.getLogger(__name__)

_REASON_MAX = UsageRecord._meta.get_field("route_reason").max_length or 300
_ERROR_MAX = UsageRecord._meta.get_field("error_message").max_length or 500


@dataclass(slots=True)
class Prepared:
    call: GatewayCall
    snapshot: Snapshot
    decision: Decision
    ledger: Ledger
    notes: list[str] = field(default_factory=list)
    worst: dict[int, Decimal] = field(default_factory=dict)  # model id → worst-case cost

    @property
    def reason(self) -> str:
        return "; ".join([self.decision.reason, *self.notes])


@dataclass(slots=True)
class Answer:
    """A successful upstream answer (non-streamed)."""

    model: ModelInfo
    tier: str
    body: bytes
    data: dict[str, Any]
    output: Output
    usage: Usage
    cost: Decimal
    record: UsageRow


@dataclass(slots=True)
class Outcome:
    prepared: Prepared
    answer: Answer
    latency_ms: int

    @property
    def cost_usd(self) -> Decimal:
        """Everything the request cost: every attempt, the classifier included."""
        return self.prepared.ledger.committed

    @property
    def budget_left(self) -> Decimal | None:
        hold = self.prepared.ledger.hold
        return hold.remaining_usd(self.cost_usd) if hold else None

    def route(self) -> dict[str, str]:
        return {"rule": self.prepared.decision.rule, "reason": self.prepared.reason}


# ------------------------------------------------------------------------------ money


def _price(model: ModelInfo, at: dt.datetime) -> Any:
    try:
        return model.price_at(at)
    except LookupError:
        return None


def worst_case(call: GatewayCall, model: ModelInfo, at: dt.datetime) -> Decimal:
    price = _price(model, at)
    if price is None:
        raise UpstreamFailed(f"The catalog has no price for {model.name}: it cannot be budgeted.")
    return worst_case_cost_usd(
        price=price,
        input_tokens=call.input_token_bound,
        max_output_tokens=call.max_output_for(model),
        service_tier=call.service_tier,
    )


def actual_cost(call: GatewayCall, model: ModelInfo, usage: Usage, at: dt.datetime) -> Decimal:
    price = _price(model, at)
    if price is None:
        log.warning("no price for %s at %s: recorded at zero cost", model.name, at)
        return ZERO
    return cost_usd(
        price=price,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        service_tier=call.service_tier,
    )


def budget_error(budget: BudgetInfo, needed: Decimal) -> BudgetExceeded:
    return BudgetExceeded(
        f"The {budget.scope} budget ({budget.period}, ${budget.limit_usd}) cannot cover this "
        f"request (up to ${needed.normalize():f} at worst). Raise the budget, lower "
        "max_output_tokens, or use a cheaper tier.",
        details={
            "scope": budget.scope,
            "period": budget.period,
            "limit_usd": str(budget.limit_usd),
        },
    )


def _limit_reached(prepared: Prepared, budget: BudgetInfo, action: str) -> None:
    """A budget's hard limit blocked (`block`) or downgraded (`downgrade`) the request."""
    record_budget_block(team=str(prepared.call.team_id), action=action)
    budget_limit_alert(budget=budget)


async def _ensure(prepared: Prepared, model: ModelInfo) -> tuple[BudgetInfo | None, Decimal]:
    hold = prepared.ledger.hold
    if hold is None:
        return None, ZERO
    worst = prepared.worst.get(model.id)
    if worst is None:
        worst = prepared.worst[model.id] = worst_case(prepared.call, model, timezone.now())
    need = prepared.ledger.committed + worst
    return await hold.ensure(need), need


# ------------------------------------------------------------------------------ records


def _record(
    prepared: Prepared,
    call: GatewayCall,
    model: ModelInfo,
    tier: str,
    *,
    started_at: dt.datetime,
    latency: float,
    usage: Usage | None = None,
    cost: Decimal = ZERO,
    status: str = UsageRecord.Status.SUCCESS,
    error_code: str = "",
    error_message: str = "",
    ttft: float | None = None,
    response_body: Any = None,
) -> UsageRow:
    usage = usage or Usage()
    version = call.prompt_version
    record = UsageRow(
        created_at=started_at,
        request_id=call.request_id,
        team_id=call.team_id,
        api_key_id=call.api_key_id,
        prompt_version_id=version.id if version is not None else None,
        purpose=call.purpose,
        rule=prepared.decision.rule[:100],
        route_reason=prepared.reason[:_REASON_MAX],
        model_id=model.id,
        model_name=model.name,
        tier_name=tier,
        service_tier=call.service_tier,
        stream=call.stream,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        latency_ms=max(int(latency * 1000), 0),
        ttft_ms=int(ttft * 1000) if ttft is not None else None,
        status=status,
        error_code=error_code[:64],
        error_message=error_message[:_ERROR_MAX],
    )
    if call.store_content:
        record.request_body = call.body
        record.response_body = response_body
    return prepared.ledger.add(record)


# ------------------------------------------------------------------------------ prepare


async def prepare(call: GatewayCall, *, ledger: Ledger | None = None) -> Prepared:
    """Route the request and reserve its worst case. Raises AppError (402, 400, ...)."""
    snapshot = await snapshot_get()
    decision = route(call.features, snapshot)
    if ledger is None:
        budgets = await budgets_for(team_id=call.team_id, api_key_id=call.api_key_id)
        hold = BudgetHold(request_id=call.request_id, budgets=budgets) if budgets else None
        ledger = Ledger(hold=hold, api_key_id=call.api_key_id)
    prepared = Prepared(call=call, snapshot=snapshot, decision=decision, ledger=ledger)
    try:
        if decision.needs_classifier:
            prepared.decision = await _classify(prepared)
        await _reserve_first(prepared)
    except BaseException:
        ledger.close()
        raise
    return prepared


async def _classify(prepared: Prepared) -> Decision:
    call, snapshot = prepared.call, prepared.snapshot

    async def execute(version: Any, text: str) -> str:
        return await run_classifier(prepared, version, text)

    result = await classifier.classify(
        text=call.classifier_text,
        snapshot=snapshot,
        execute=execute,
        cache_seconds=setting("GATEWAY_CLASSIFIER_CACHE_SECONDS"),
    )
    decision = route(
        call.features, snapshot, classified_tier=result.tier, classifier_reason=result.describe()
    )
    return decision


async def run_classifier(parent: Prepared, version: Any, text: str) -> str:
    """Run the classifier prompt as its own upstream call, on the parent's ledger and budget."""
    from prompts.rendering import render_version

    rendered = render_version(version, {"text": text})
    body = prompt_body(version, rendered)
    stats = responses_input_stats(body["input"], body.get("instructions", ""))
    requested = f"tier:{version.tier}" if version.tier else version.model_name or "tier:nano"
    sub = GatewayCall(
        api=RESPONSES,
        team_id=parent.call.team_id,
        api_key_id=parent.call.api_key_id,
        body=body,
        stream=False,
        features=RequestFeatures(
            team_id=parent.call.team_id,
            required_capabilities=frozenset({"json_schema"}),
            requested=requested,
            pinned_by="classifier prompt",
        ),
        input_token_bound=stats.token_bound,
        max_output_tokens=version.max_output_tokens or 200,
        response_schema=version.response_schema,
        prompt_version=version,
        purpose=Purpose.CLASSIFIER,
        request_id=parent.call.request_id,
    )
    decision = route(sub.features, parent.snapshot)
    prepared = Prepared(call=sub, snapshot=parent.snapshot, decision=decision, ledger=parent.ledger)
    refused, need = await _ensure(prepared, decision.model)  # type: ignore[arg-type]
    if refused is not None:
        _limit_reached(prepared, refused, "block")
        raise budget_error(refused, need)
    answer = await _attempt_plan(prepared, close=False)
    return answer.output.text


async def _reserve_first(prepared: Prepared) -> None:
    decision = prepared.decision
    model = decision.model
    if model is None or prepared.ledger.hold is None:
        return
    refused, need = await _ensure(prepared, model)
    if refused is None:
        return
    if refused.action == Budget.Action.DOWNGRADE and refused.downgrade_tier:
        lowered = downgrade(
            decision,
            refused.downgrade_tier,
            prepared.snapshot,
            prepared.call.features,
            f"{refused.scope} budget limit reached",
        )
        if lowered is not None and lowered.model is not None:
            prepared.decision = lowered
            refused_again, need = await _ensure(prepared, lowered.model)
            if refused_again is None:
                _limit_reached(prepared, refused, "downgrade")
                return
            refused = refused_again
    _limit_reached(prepared, refused, "block")
    raise budget_error(refused, need)


# ------------------------------------------------------------------------------ attempts


def _backoff(retry: int, failure: AttemptFailed) -> float | None:
    """Seconds to wait before retrying the same model, or None to move on."""
    base = setting("GATEWAY_BACKOFF_SECONDS") * (2**retry)
    wait = min(base * (1 - random.random() * 0.25), setting("GATEWAY_BACKOFF_MAX_SECONDS"))
    if failure.retry_after is not None:
        if failure.retry_after > setting("GATEWAY_RETRY_AFTER_MAX_SECONDS"):
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
    _record(
        prepared,
        prepared.call,
        model,
        tier,
        started_at=started_at,
        latency=time.perf_counter() - t0,
        status=UsageRecord.Status.ERROR,
        error_code=failure.kind,
        error_message=failure.message,
    )


async def _call_once(prepared: Prepared, model: ModelInfo, plan: TierPlan) -> Answer:
    """One non-streamed attempt; records it; raises AttemptFailed."""
    call = prepared.call
    started_at, t0 = timezone.now(), time.perf_counter()
    tier = prepared.snapshot.tier(plan.tier)
    try:
        response = await post_json(model, call.api, call.upstream_body(model, tier))
        try:
            data = json.loads(response.content)
        except ValueError:
            raise AttemptFailed(
                "server_error", "The upstream answered with invalid JSON."
            ) from None
        if not isinstance(data, dict):
            raise AttemptFailed("server_error", "The upstream answered with unexpected JSON.")
    except AttemptFailed as failure:
        _record_failure(prepared, model, plan.tier, failure, started_at, t0)
        raise
    usage = usage_of(call.api, data)
    cost = actual_cost(call, model, usage, started_at)
    output = output_of(call.api, data)
    record = _record(
        prepared,
        call,
        model,
        plan.tier,
        started_at=started_at,
        latency=time.perf_counter() - t0,
        usage=usage,
        cost=cost,
        response_body=data if call.store_content else None,
    )
    return Answer(model, plan.tier, response.content, data, output, usage, cost, record)


async def _attempt_plan(prepared: Prepared, *, close: bool = True) -> Answer:
    """Walk the decision's plan: retries, the tier's fallbacks, then the tiers above."""
    decision = prepared.decision
    failures: list[tuple[ModelInfo, AttemptFailed]] = []
    rejected: Answer | None = None  # an answer that failed its check, kept as a last resort
    escalate_why = ""
    retries = int(setting("GATEWAY_RETRIES"))
    try:
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
                answer = None
                for retry in range(retries + 1):
                    refused, need = await _ensure(prepared, model)
                    if refused is not None:
                        if rejected is not None:
                            prepared.notes.append("no budget left to escalate")
                            return rejected
                        _limit_reached(prepared, refused, "block")
                        raise budget_error(refused, need)
                    try:
                        answer = await _call_once(prepared, model, plan)
                        break
                    except AttemptFailed as failure:
                        failures.append((model, failure))
                        if failure.client_error:
                            raise _client_error(failure) from None
                        wait = _backoff(retry, failure) if failure.retryable else None
                        if wait is None or retry == retries:
                            break
                        await asyncio.sleep(wait)
                if answer is None:
                    if len(plan.models) > 1 and model is not plan.models[-1]:
                        prepared.notes.append(f"{model.name} failed ({failures[-1][1].kind})")
                    continue
                if decision.escalate_on_failed_check and index + 1 < len(decision.plan):
                    why = check_output(answer.output, prepared.call.response_schema)
                    if why is not None:
                        answer.record.status = UsageRecord.Status.ERROR
                        answer.record.error_code = "failed_check"
                        answer.record.error_message = why[:_ERROR_MAX]
                        rejected, escalate_why = answer, f"{model.name} {why}"
                        break
                if failures:
                    prepared.notes.append(f"answered by {model.name}")
                return answer
            if not escalate_why and not decision.allow_tier_fallback:
                break
        if rejected is not None:
            prepared.notes.append("kept the last answer: no higher tier left")
            return rejected
        raise _final_error(failures)
    finally:
        if close:
            prepared.ledger.close()


async def complete(prepared: Prepared) -> Outcome:
    """Run a prepared non-streamed request to its answer (or an AppError)."""
    answer = await _attempt_plan(prepared)
    latency_ms = int((time.perf_counter() - prepared.call.started) * 1000)
    outcome = Outcome(prepared=prepared, answer=answer, latency_ms=latency_ms)
    shadow_offer(
        prepared.call,
        model=answer.model.name,
        tier=answer.tier,
        output=answer.output.text,
        cost=outcome.cost_usd,
    )
    return outcome


# ------------------------------------------------------------------------------ streams


@dataclass(slots=True)
class SSEvent:
    event: str | None
    data: str


async def sse_events(response: UpstreamResponse) -> AsyncIterator[SSEvent]:
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SSEvent(event, "\n".join(data))
            event, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield SSEvent(event, "\n".join(data))


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
        return _record(
            self.prepared,
            self.prepared.call,
            self.model,
            self.tier,
            started_at=self.started_at,
            latency=time.perf_counter() - self.t0,
            **kwargs,
        )

    def cost(self, usage: Usage) -> Decimal:
        return actual_cost(self.prepared.call, self.model, usage, self.started_at)

    async def aclose(self) -> None:
        try:
            await self.response.aclose()
        except Exception:  # closing a broken connection may raise; nothing to do about it
            log.debug("closing the upstream stream failed", exc_info=True)


async def _open_once(prepared: Prepared, model: ModelInfo, plan: TierPlan) -> OpenStream:
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
            from gateway.upstream import classify_error

            raise classify_error(exc) from exc
    except AttemptFailed as failure:
        if response is not None:
            await response.aclose()
        _record_failure(prepared, model, plan.tier, failure, started_at, t0)
        raise
    return OpenStream(prepared, model, plan.tier, response, events, first, started_at, t0)


async def open_stream(prepared: Prepared) -> OpenStream:
    """Connect upstream with retries and fallbacks until a first event arrives.

    Nothing has been sent to the client yet, so a failure here still falls back. On success
    the caller owns the ledger: the relay closes it when the stream ends."""
    decision = prepared.decision
    failures: list[tuple[ModelInfo, AttemptFailed]] = []
    retries = int(setting("GATEWAY_RETRIES"))
    try:
        for index, plan in enumerate(decision.plan):
            if index > 0:
                if not (failures and decision.allow_tier_fallback):
                    break
                prepared.notes.append(
                    f"every {decision.plan[index - 1].tier} model failed: fell back to {plan.tier}"
                )
            for model in plan.models:
                for retry in range(retries + 1):
                    refused, need = await _ensure(prepared, model)
                    if refused is not None:
                        _limit_reached(prepared, refused, "block")
                        raise budget_error(refused, need)
                    try:
                        stream = await _open_once(prepared, model, plan)
                    except AttemptFailed as failure:
                        failures.append((model, failure))
                        if failure.client_error:
                            raise _client_error(failure) from None
                        wait = _backoff(retry, failure) if failure.retryable else None
                        if wait is None or retry == retries:
                            break
                        await asyncio.sleep(wait)
                        continue
                    if failures:
                        prepared.notes.append(f"answered by {model.name}")
                    return stream
        raise _final_error(failures)
    except BaseException:
        prepared.ledger.close()
        raise


# ------------------------------------------------------------------------------ prompts


def prompt_body(version: Any, rendered: Any) -> dict[str, Any]:
    """A Responses API body for a rendered prompt version (its model settings included)."""
    body: dict[str, Any] = {"input": rendered.input_messages}
    if rendered.instructions:
        body["instructions"] = rendered.instructions
    if version.temperature is not None:
        body["temperature"] = float(version.temperature)
    if version.max_output_tokens:
        body["max_output_tokens"] = version.max_output_tokens
    if version.reasoning_effort:
        body["reasoning"] = {"effort": version.reasoning_effort}
    if version.tools:
        body["tools"] = version.tools
    schema = version.response_schema
    if schema:
        body["text"] = {
            "format": {
                "type": "json_schema",
                "name": version.prompt.slug.replace("-", "_")[:64],
                "schema": schema,
                "strict": schema.get("additionalProperties") is False,
            }
        }
    return body


def with_decision(prepared: Prepared, decision: Decision) -> Prepared:
    return replace(prepared, decision=decision)
