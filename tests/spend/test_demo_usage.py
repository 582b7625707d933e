"""Seeded demo usage is charged to the team's budgets, so spend and budget bars agree."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import ApiKey
from spend.demo import usage_demo_create
from spend.models import Budget, UsageRecord
from spend.periods import period_bounds

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC)


def spent_since(start: dt.datetime, **filters) -> Decimal:
    return UsageRecord.objects.filter(created_at__gte=start, **filters).aggregate(
        total=Sum("cost_usd")
    )["total"]


def test_each_budget_is_charged_with_its_current_periods_seeded_spend(catalog, team, api_key):
    key = ApiKey.objects.get(team=team)
    month_start, _ = period_bounds("monthly", NOW)
    day_start, _ = period_bounds("daily", NOW)
    team_budget = Budget.objects.create(
        team=team, limit_usd=Decimal("1000"), period="monthly", period_start=month_start
    )
    key_budget = Budget.objects.create(
        team=team,
        api_key=key,
        limit_usd=Decimal("1000"),
        period="daily",
        # still on an earlier period: its old spend no longer counts
        period_start=day_start - dt.timedelta(days=3),
        spent_usd=Decimal("7"),
    )

    usage_demo_create(team=team, days=30, per_day=20, end=NOW, seed=5)

    team_budget.refresh_from_db()
    key_budget.refresh_from_db()
    assert team_budget.spent_usd == spent_since(month_start) > 0
    assert spent_since(month_start) < spent_since(NOW - dt.timedelta(days=31))
    assert key_budget.period_start == day_start
    assert key_budget.spent_usd == spent_since(day_start, api_key=key) > 0


def test_seed_usage_says_what_it_charged_and_warns_at_the_limit(catalog, capsys):
    call_command("seed_demo")
    demo = Budget.objects.get(team__slug="demo", api_key=None)
    demo.limit_usd = Decimal("0.01")
    demo.save()

    call_command("seed_usage", "--days", "3", "--per-day", "10")

    out = capsys.readouterr().out
    assert "Charged to the team budget: $" in out
    assert "of $0.01 (" in out
    assert "The team budget is at its limit: requests will be blocked." in out
