"""Money sums are exact on every backend: SQLite sums REAL values in binary floating point and
Django reads its results as 15-digit floats, so there `MoneySum` sums Decimals in Python."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from core.money import MoneySum
from spend.models import UsageRecord

pytestmark = pytest.mark.django_db

# 17 significant digits in all, beyond what a float (or a 15-digit read) holds, and tenths
# that binary floating point cannot represent.
AMOUNTS = [Decimal("99999.9999999999")] * 100 + [Decimal("0.1"), Decimal("0.2")] * 50


def _records(team, amounts: list[Decimal]) -> None:
    now = timezone.now()
    UsageRecord.objects.bulk_create(
        UsageRecord(created_at=now, request_id=f"r{i}", team=team, model_name="m", cost_usd=cost)
        for i, cost in enumerate(amounts)
    )


def test_a_money_sum_is_exact_to_the_last_place(team):
    _records(team, AMOUNTS)
    total = UsageRecord.objects.filter(team=team).aggregate(total=MoneySum("cost_usd"))["total"]
    assert total == sum(AMOUNTS) == Decimal("10000014.9999999900")
    assert str(total) == "10000014.9999999900"  # the same places as PostgreSQL's numeric


def test_a_money_sum_per_group_and_of_nothing(team, other_team):
    _records(team, [Decimal("0.1")] * 3)
    rows = UsageRecord.objects.values("team").annotate(cost=MoneySum("cost_usd"))
    assert [row["cost"] for row in rows] == [Decimal("0.3")]
    empty = UsageRecord.objects.filter(team=other_team).aggregate(total=MoneySum("cost_usd"))
    assert empty["total"] is None


def test_sum_alone_is_what_money_sum_replaces(team):
    """The reason for MoneySum, pinned: should Django's SQLite sum become exact, this fails
    and MoneySum can go."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL sums numeric exactly")
    _records(team, AMOUNTS)
    total = UsageRecord.objects.filter(team=team).aggregate(total=Sum("cost_usd"))["total"]
    assert total != sum(AMOUNTS)
