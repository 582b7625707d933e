"""What a request may cost at worst and what an attempt did cost, and the budget check
before each attempt (block or downgrade when a hard limit is reached)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.errors import BudgetExceeded, UpstreamFailed
from core.metrics import record_budget_block
from core.money import ZERO, usd
from gateway.calls import GatewayCall, Usage
from gateway.prepared import Prepared
from gateway.refusals import refusal_row
from routing.snapshot import ModelInfo
from spend.budgets import BudgetInfo, budget_limit_alert
from spend.pricing import SERVICE_TIER_MULTIPLIERS, cost_usd, worst_case_cost_usd

log = logging.getLogger(__name__)


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


def served_tier(call: GatewayCall, answered: Any) -> str:
    """The service tier the upstream says it served (a `flex` request may be served at
    `default`), else the one asked for: what the call is billed at."""
    tier = answered if isinstance(answered, str) else None
    return tier if tier in SERVICE_TIER_MULTIPLIERS else call.service_tier


def actual_cost(
    call: GatewayCall,
    model: ModelInfo,
    usage: Usage,
    at: dt.datetime,
    service_tier: str | None = None,
) -> Decimal:
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
        service_tier=service_tier or call.service_tier,
    )


def budget_refusal(prepared: Prepared, budget: BudgetInfo, needed: Decimal) -> BudgetExceeded:
    """The 402 for a request the budget cannot cover, logged as the request's last usage
    record (a refusal: no upstream call, no cost) so that the request explorer lists it."""
    error = BudgetExceeded(
        f"The {budget.scope} budget ({budget.period}, {usd(budget.limit_usd)}) cannot cover this "
        f"request (up to {usd(needed)} at worst). Raise the budget, lower "
        "max_output_tokens, or use a cheaper tier.",
        details={
            "scope": budget.scope,
            "period": budget.period,
            "limit_usd": str(budget.limit_usd),
        },
    )
    decision = prepared.decision
    model = decision.model
    prepared.ledger.add(
        refusal_row(
            prepared.call,
            error,
            model_id=model.id if model else None,
            model_name=model.name if model else "",
            tier=decision.tier or "",
            rule=decision.rule,
            reason=prepared.reason,
        )
    )
    return error


def limit_reached(prepared: Prepared, budget: BudgetInfo, action: str, needed: Decimal) -> None:
    """A budget's hard limit blocked (`block`) or downgraded (`downgrade`) the request, which
    needed up to `needed`."""
    record_budget_block(team=str(prepared.call.team_id), action=action)
    budget_limit_alert(budget=budget, action=action, request_usd=needed)


async def ensure_budget(prepared: Prepared, model: ModelInfo) -> tuple[BudgetInfo | None, Decimal]:
    """Grow the request's hold to cover `model`'s worst case on top of what is spent: the
    budget that refuses (or None) and the amount needed."""
    hold = prepared.ledger.hold
    if hold is None:
        return None, ZERO
    worst = prepared.worst.get(model.id)
    if worst is None:
        worst = prepared.worst[model.id] = worst_case(prepared.call, model, timezone.now())
    need = prepared.ledger.committed + worst
    return await hold.ensure(need), need


async def ensure_or_block(prepared: Prepared, model: ModelInfo) -> None:
    """`ensure_budget`, raising BudgetExceeded (and counting the block) when refused."""
    refused, need = await ensure_budget(prepared, model)
    if refused is not None:
        limit_reached(prepared, refused, "block", need)
        raise budget_refusal(prepared, refused, need)
