"""What a budget change would have done to recent traffic: the last 7 days' requests replayed
against the proposed limit, in order, counting those it would have refused or downgraded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Min
from django.utils import timezone

from core.money import ZERO, MoneySum
from spend.models import Budget, UsageRecord
from spend.periods import period_bounds

PREVIEW_DAYS = 7


@dataclass(frozen=True)
class BudgetPreview:
    requests: int  # requests in the window
    affected: int  # refused (block) or downgraded (downgrade) under the proposed budget
    action: str
    spend: Decimal  # the window's actual spend
    days: int = PREVIEW_DAYS

    @property
    def verb(self) -> str:
        return "downgraded" if self.action == Budget.Action.DOWNGRADE else "refused"


def budget_preview(
    *,
    team_id: int,
    api_key_id: int | None,
    limit_usd: Decimal,
    period: str,
    action: str,
    now: dt.datetime | None = None,
) -> BudgetPreview:
    """Replay the team's (or key's) requests of the last PREVIEW_DAYS days, oldest first, each
    at its actual cost, against `limit_usd` per `period`: a request that would have taken its
    period's spend past the limit counts as affected, and its cost is not added (refused, or
    moved to a cheaper tier). Spend earlier in a period that began before the window counts
    too, as it would have against the budget."""
    now = now or timezone.now()
    window_start = now - dt.timedelta(days=PREVIEW_DAYS)
    replay_from = min(window_start, period_bounds(period, window_start)[0])
    records = UsageRecord.objects.filter(
        team_id=team_id, created_at__gte=replay_from, created_at__lt=now
    )
    if api_key_id is not None:
        records = records.filter(api_key_id=api_key_id)
    requests = (
        records.values("request_id")
        .annotate(at=Min("created_at"), cost=MoneySum("cost_usd"))
        .order_by("at")
        .values_list("at", "cost")
    )
    total = affected = 0
    spend = ZERO
    current_period: dt.datetime | None = None
    spent = ZERO
    for at, cost in requests.iterator(chunk_size=5000):
        cost = Decimal(cost or 0)
        start = period_bounds(period, at)[0]
        if start != current_period:
            current_period, spent = start, ZERO
        in_window = at >= window_start
        if spent + cost > limit_usd:
            affected += in_window
        else:
            spent += cost
        if in_window:
            total += 1
            spend += cost
    return BudgetPreview(requests=total, affected=affected, action=action, spend=spend)
