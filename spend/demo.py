"""Synthetic usage for demos and browser tests: plausible traffic priced at the real prices.

Not used on any request path. `python manage.py seed_usage` calls it; so does the dashboard's
browser test. Deterministic for a given seed. Seeded spend is charged to the team's budgets,
as real spend would be, so that the usage page's spend and budget bars agree.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

from django.db import transaction

from accounts.models import ApiKey, Team
from core.money import ZERO
from prompts.models import PromptVersion
from routing.models import Model
from spend.budgets import budget_charge
from spend.models import Budget, Purpose, UsageRecord
from spend.periods import period_bounds
from spend.pricing import PriceNotFound, cost_usd, price_at

# the share of traffic per (tier, model) for prompt-less calls, by task
MIX = [
    ("mini", "gpt-5.4-mini", 50),
    ("nano", "gpt-5.4-nano", 20),
    ("flagship", "gpt-5.4", 18),
    ("reasoning", "gpt-5.5", 5),
    ("mini", "gpt-6.1-terra", 4),
    ("flagship", "gpt-6.1-sol", 3),
]
LATENCY = {"nano": 300, "mini": 650, "flagship": 1400, "reasoning": 6000}
TASK_TIERS = {
    "classification": "mini",
    "extraction": "mini",
    "summarization": "mini",
    "routing": "nano",
    "generation": "flagship",
    "reasoning": "reasoning",
}
PRIMARY = {
    "nano": "gpt-5.4-nano",
    "mini": "gpt-5.4-mini",
    "flagship": "gpt-5.4",
    "reasoning": "gpt-5.5",
}


@transaction.atomic
def usage_demo_create(
    *,
    team: Team,
    days: int = 14,
    per_day: int = 60,
    end: dt.datetime,
    seed: int = 1,
    error_rate: float = 0.03,
) -> int:
    """Write `days` x ~`per_day` usage records for `team`, ending at `end`. Returns the count."""
    rng = random.Random(seed)
    models = {m.name: m for m in Model.objects.all()}
    versions = list(
        PromptVersion.objects.filter(prompt__team=team).select_related("prompt").order_by("id")
    )
    latest: dict[int, PromptVersion] = {}
    for candidate in versions:
        newest = latest.get(candidate.prompt_id)
        if newest is None or candidate.number > newest.number:
            latest[candidate.prompt_id] = candidate
    prompts = list(latest.values())
    keys = list(ApiKey.objects.filter(team=team, revoked_at=None))
    records = []
    for back in range(days):
        day_end = end - dt.timedelta(days=back)
        count = int(per_day * rng.uniform(0.6, 1.4) * (1.3 if back < days / 2 else 1))
        for _ in range(count):
            created = day_end - dt.timedelta(seconds=rng.uniform(0, 86_399))
            version = rng.choice(prompts) if prompts and rng.random() < 0.8 else None
            if version is not None:
                tier = version.tier or TASK_TIERS.get(version.prompt.task_tag, "mini")
                name = PRIMARY[tier] if rng.random() > 0.05 else MIX[rng.randrange(len(MIX))][1]
            else:
                tier, name, _w = rng.choices(MIX, [w for *_x, w in MIX])[0]
            model = models.get(name)
            status = UsageRecord.Status.ERROR if rng.random() < error_rate else "success"
            input_tokens = int(rng.lognormvariate(6.5, 0.8)) + 30
            cached = int(input_tokens * 0.5) if rng.random() < 0.25 else 0
            output_tokens = int(rng.lognormvariate(4.8, 0.7)) + 5 if status == "success" else 0
            reasoning = int(output_tokens * 2) if tier == "reasoning" and output_tokens else 0
            output_tokens += reasoning
            try:
                cost = (
                    cost_usd(
                        price=price_at(model, created),
                        input_tokens=input_tokens,
                        cached_input_tokens=cached,
                        output_tokens=output_tokens,
                        reasoning_tokens=reasoning,
                    )
                    if model
                    else Decimal(0)
                )
            except PriceNotFound:
                cost = Decimal(0)
            latency = int(LATENCY.get(tier, 800) * rng.uniform(0.5, 1.8))
            stream = rng.random() < 0.3
            records.append(
                UsageRecord(
                    created_at=created,
                    request_id=f"req_demo_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}",
                    team=team,
                    api_key=rng.choice(keys) if keys else None,
                    prompt_version=version,
                    purpose=Purpose.GATEWAY if rng.random() < 0.9 else Purpose.PLAYGROUND,
                    model=model,
                    model_name=name,
                    tier_name=tier,
                    input_tokens=input_tokens,
                    cached_input_tokens=cached,
                    output_tokens=output_tokens,
                    reasoning_tokens=reasoning,
                    cost_usd=cost,
                    latency_ms=latency,
                    ttft_ms=int(latency * 0.25) if stream else None,
                    stream=stream,
                    status=status,
                    error_code="upstream_failed" if status == "error" else "",
                )
            )
    UsageRecord.objects.bulk_create(records, batch_size=1000)
    _budgets_charge(team, records, end)
    return len(records)


def _budgets_charge(team: Team, records: list[UsageRecord], now: dt.datetime) -> None:
    """Charge each of the team's budgets (team and key) with the seeded records of its
    current period; a budget still on an earlier period moves to this one first."""
    for budget in Budget.objects.filter(team=team):
        start, _end = period_bounds(budget.period, now)
        amount = sum(
            (
                record.cost_usd
                for record in records
                if record.created_at >= start and budget.api_key_id in (None, record.api_key_id)
            ),
            ZERO,
        )
        Budget.objects.filter(id=budget.id, period_start__lt=start).update(
            period_start=start, spent_usd=ZERO
        )
        if amount:
            budget_charge(budget_id=budget.id, amount_usd=amount)
