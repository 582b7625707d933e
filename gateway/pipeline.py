"""The request path: route → (classify) → reserve → attempt upstream (`gateway.attempts`) →
record usage and settle.

    prepared = await prepare(call)        # routing decision + budget reservation
    outcome = await complete(prepared)    # non-streamed: the answer, or an AppError
    stream = await open_stream(prepared)  # streamed: the first event is in, headers are known

Every upstream attempt adds one usage record to the request's ledger; the ledger is closed
(handed to the usage writer, which also settles the budget) when the request ends, whatever
way it ends.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from gateway.attempts import OpenStream, call_once, open_once, walk_plan
from gateway.calls import GatewayCall
from gateway.costs import budget_refusal, ensure_budget, ensure_or_block, limit_reached
from gateway.payloads import check_output
from gateway.prepared import ERROR_MAX, Answer, Outcome, Prepared
from gateway.shadow import shadow_offer
from routing import classifier
from routing.router import AUTO, TIER_PREFIX, Decision, downgrade, route
from routing.snapshot import snapshot_get
from spend.budgets import BudgetHold, budgets_for
from spend.models import Budget, Purpose, UsageRecord
from spend.usage import Ledger

__all__ = ["OpenStream", "Outcome", "Prepared", "complete", "open_stream", "prepare"]


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
        team_id=call.team_id,
        text=call.classifier_text,
        snapshot=snapshot,
        execute=execute,
        cache_seconds=settings.GATEWAY_CLASSIFIER_CACHE_SECONDS,
        keep_reason=not call.no_content,
    )
    return route(
        call.features, snapshot, classified_tier=result.tier, classifier_reason=result.describe()
    )


async def run_classifier(parent: Prepared, version: Any, text: str) -> str:
    """Run the classifier prompt as its own upstream call, on the parent's ledger and budget."""
    sub = await GatewayCall.for_prompt_version(
        version=version,
        variables={"text": text},
        team_id=parent.call.team_id,
        api_key_id=parent.call.api_key_id,
        team_store_content=False,
        requested=AUTO if version.tier or version.model_name else f"{TIER_PREFIX}nano",
        pinned_by="classifier prompt",
        purpose=Purpose.CLASSIFIER,
        max_output_tokens=version.max_output_tokens or 200,
        request_id=parent.call.request_id,
    )
    decision = route(sub.features, parent.snapshot)
    prepared = Prepared(call=sub, snapshot=parent.snapshot, decision=decision, ledger=parent.ledger)
    await ensure_or_block(prepared, decision.model)  # type: ignore[arg-type]
    answer = await walk_plan(prepared, call_once, check=_failed_check(prepared))
    return answer.output.text


async def _reserve_first(prepared: Prepared) -> None:
    decision = prepared.decision
    model = decision.model
    if model is None or prepared.ledger.hold is None:
        return
    refused, need = await ensure_budget(prepared, model)
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
            refused_again, lowered_need = await ensure_budget(prepared, lowered.model)
            if refused_again is None:
                limit_reached(prepared, refused, "downgrade", need)
                return
            refused, need = refused_again, lowered_need
    limit_reached(prepared, refused, "block", need)
    raise budget_refusal(prepared, refused, need)


def _failed_check(prepared: Prepared) -> Any:
    """The answer check of `walk_plan`: why an answer fails the request's schema, marking its
    usage record as `failed_check`, or None."""

    def check(answer: Answer) -> str | None:
        why = check_output(answer.output, prepared.call.response_schema)
        if why is not None:
            answer.record.status = UsageRecord.Status.ERROR
            answer.record.error_code = "failed_check"
            answer.record.error_message = why[:ERROR_MAX]
        return why

    return check


async def complete(prepared: Prepared) -> Outcome:
    """Run a prepared non-streamed request to its answer (or an AppError)."""
    try:
        answer = await walk_plan(prepared, call_once, check=_failed_check(prepared))
    finally:
        prepared.ledger.close()
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


async def open_stream(prepared: Prepared) -> OpenStream:
    """Connect upstream with retries and fallbacks until a first event arrives.

    Nothing has been sent to the client yet, so a failure here still falls back. On success
    the caller owns the ledger: the relay closes it when the stream ends."""
    try:
        return await walk_plan(prepared, open_once)
    except BaseException:
        prepared.ledger.close()
        raise
