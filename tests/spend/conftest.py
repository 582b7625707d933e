"""Usage records and rollups for the spend tests: a seeded price catalog (no upstream needed)
and a factory that writes records at chosen times, costed with the real pricing code."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Team
from prompts.models import Prompt, PromptVersion
from routing.models import Model
from spend.budgets import BudgetHold, budgets_for
from spend.models import Budget, UsageRecord
from spend.periods import period_bounds
from spend.pricing import cost_usd, price_at
from spend.usage import Ledger, usage_flush

_ids = itertools.count(1)


@pytest.fixture
def prices(db) -> None:
    """The demo catalog and prices (DESIGN.md), with an upstream nobody calls."""
    from routing.seed import seed_catalog

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")


def prompt_for(team: Team, slug: str) -> PromptVersion:
    prompt, _ = Prompt.objects.get_or_create(team=team, slug=slug, defaults={"name": slug})
    version = prompt.versions.first()
    if version is None:
        version = PromptVersion.objects.create(prompt=prompt, number=1, user_template="{{ x }}")
    return version


@pytest.fixture
def make_usage(prices) -> Callable[..., UsageRecord]:
    """Write one usage record; its cost is the real price of its tokens unless given."""

    def make(
        *,
        team: Team,
        at: dt.datetime,
        model: str = "gpt-5.4-mini",
        tier: str = "mini",
        prompt: str | None = None,
        input_tokens: int = 1000,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        output_tokens: int = 200,
        reasoning_tokens: int = 0,
        latency_ms: int = 800,
        status: str = UsageRecord.Status.SUCCESS,
        purpose: str = "gateway",
        service_tier: str = "default",
        cost: Decimal | None = None,
        api_key=None,
        **extra,
    ) -> UsageRecord:
        catalog_model = Model.objects.filter(name=model).first()
        if cost is None:
            cost = (
                cost_usd(
                    price=price_at(catalog_model, at),
                    input_tokens=input_tokens,
                    cached_input_tokens=cached_input_tokens,
                    cache_write_tokens=cache_write_tokens,
                    output_tokens=output_tokens,
                    reasoning_tokens=reasoning_tokens,
                    service_tier=service_tier,
                )
                if catalog_model
                else Decimal("0")
            )
        return UsageRecord.objects.create(
            created_at=at,
            request_id=extra.pop("request_id", None) or f"req_{next(_ids)}",
            team=team,
            api_key=api_key,
            prompt_version=prompt_for(team, prompt) if prompt else None,
            purpose=purpose,
            model=catalog_model,
            model_name=model,
            tier_name=tier,
            service_tier=service_tier,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
            status=status,
            **extra,
        )

    return make


# Budgets (test_budgets.py, test_budget_leases.py)


def make_budget(team: Team, limit: str, **fields) -> Budget:
    now = timezone.now()
    fields.setdefault("period", Budget.Period.MONTHLY)
    fields.setdefault("period_start", period_bounds(fields["period"], now)[0])
    return Budget.objects.create(team=team, limit_usd=Decimal(limit), **fields)


async def hold_for(team: Team, key: ApiKey | None = None, request_id: str = "req_1") -> BudgetHold:
    budgets = await budgets_for(team_id=team.id, api_key_id=key.id if key else None)
    return BudgetHold(request_id=request_id, budgets=budgets)


def usage(team: Team, request_id: str, cost: str) -> UsageRecord:
    return UsageRecord(
        created_at=timezone.now(),
        request_id=request_id,
        team_id=team.id,
        model_name="gpt-5.4-mini",
        cost_usd=Decimal(cost),
    )


async def settle(hold: BudgetHold, team: Team, *costs: str) -> None:
    """What the gateway does at the end of a request: hand its ledger to the usage writer."""
    ledger = Ledger(hold=hold)
    for cost in costs:
        ledger.add(usage(team, hold.request_id, cost))
    ledger.close()
    await usage_flush()


async def fresh(budget: Budget) -> Budget:
    return await Budget.objects.aget(pk=budget.pk)
