"""Budget held by work that outlives a request (a batch): its whole worst case reserved at
submission, settled line by line, renewed while it runs, and closed when it ends.

A standing hold is one `BudgetReservation` row per applicable budget (the team's, and the
key's own if it has one), checked and reserved in one transaction with the budget rows
locked (PostgreSQL) or the database's write lock held (SQLite's IMMEDIATE transactions), so
`spent + reserved` never passes a limit. The usage writer's `Settlement`s do the rest: a line
moves its actual cost into `spent` and releases its worst case; a zero settlement renews
the row, so the sweeper leaves a running batch alone; closing releases what no line used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.money import ZERO
from spend.budgets import BudgetInfo, Settlement
from spend.models import Budget, BudgetReservation
from spend.periods import period_bounds


@dataclass(frozen=True, slots=True)
class StandingHold:
    """One budget's reservation row held by a batch (stored as JSON on the batch)."""

    budget: int
    period: str
    reservation: int

    def as_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "period": self.period, "reservation": self.reservation}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StandingHold:
        return cls(budget=data["budget"], period=data["period"], reservation=data["reservation"])

    def settlement(
        self, *, spend: Decimal = ZERO, release: Decimal = ZERO, close: bool = False
    ) -> Settlement:
        info = BudgetInfo(self.budget, 0, None, self.period, ZERO, "", None)
        return Settlement(info, self.reservation, spend=spend, release=release, close=close)


def _spent_now(budget: Budget, now: dt.datetime) -> Decimal:
    start = period_bounds(budget.period, now)[0]
    return ZERO if budget.period_start < start else budget.spent_usd


@transaction.atomic
def budget_hold_standing(
    *, team_id: int, api_key_id: int | None, request_id: str, amount: Decimal
) -> tuple[list[StandingHold], Budget | None]:
    """Reserve `amount` on every budget of the team (and of the key): (the holds, None), or
    ([], the budget that cannot cover it) with nothing reserved."""
    now = timezone.now()
    budgets = list(
        Budget.objects.select_for_update()
        .filter(team_id=team_id)
        .filter(Q(api_key=None) | Q(api_key_id=api_key_id))
        .order_by("pk")
    )
    for budget in budgets:
        if _spent_now(budget, now) + budget.reserved_usd + amount > budget.limit_usd:
            return [], budget
    holds = []
    for budget in budgets:
        start = period_bounds(budget.period, now)[0]
        fields: dict[str, Any] = {"reserved_usd": budget.reserved_usd + amount}
        if budget.period_start < start:
            fields.update(spent_usd=ZERO, period_start=start)
        Budget.objects.filter(pk=budget.pk).update(**fields)
        row = BudgetReservation.objects.create(
            budget=budget, request_id=request_id[:64], amount_usd=amount
        )
        holds.append(StandingHold(budget=budget.pk, period=budget.period, reservation=row.pk))
    return holds, None
