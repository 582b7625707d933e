"""Budget enforcement services: reserve (conditional UPDATE), settle, rollover, sweep.

Async tests run the real hot-path code (PostgreSQL: native async connections; SQLite: the
Django connection on a worker thread) against the real database."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from accounts.services import api_key_create
from core.hot import hot_clear
from spend.budgets import (
    budget_reservations_sweep,
    budget_set,
)
from spend.models import Budget, BudgetReservation, UsageRecord
from spend.periods import period_bounds
from spend.pg import pg_close, serving
from tests.spend.conftest import fresh, hold_for, make_budget, settle

D = Decimal


@pytest.fixture
async def async_db(settings) -> AsyncIterator[None]:
    """The server's async PostgreSQL path (as under uvicorn), with per-request reservations
    (leases: test_budget_leases.py); its pool is closed after the test, so the test
    database can be dropped later."""
    settings.BUDGET_LEASES = False
    hot_clear()
    serving(True)
    yield
    serving(False)
    await pg_close()


pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reservation_holds_the_worst_case_and_the_limit_refuses_more(team, async_db):
    budget = await sync_to_async(make_budget)(team, "1.00")
    first, second = await hold_for(team, request_id="a"), await hold_for(team, request_id="b")

    assert await first.ensure(D("0.60")) is None
    refused = await second.ensure(D("0.50"))
    assert await second.ensure(D("0.40")) is None

    assert refused is not None
    assert refused.id == budget.id
    budget = await fresh(budget)
    assert budget.reserved_usd == D("1.00")
    assert budget.spent_usd == 0
    assert await BudgetReservation.objects.filter(settled_at=None).acount() == 2


async def test_growing_a_hold_reserves_only_the_difference(team, async_db):
    budget = await sync_to_async(make_budget)(team, "1.00")
    hold = await hold_for(team)

    await hold.ensure(D("0.30"))
    await hold.ensure(D("0.50"))
    await hold.ensure(D("0.40"))  # already covered: nothing happens

    assert (await fresh(budget)).reserved_usd == D("0.50")
    reservation = await BudgetReservation.objects.aget()
    assert reservation.amount_usd == D("0.50")
    assert hold.reserved == D("0.50")


async def test_settling_moves_the_actual_cost_into_spent_and_releases_the_hold(team, async_db):
    budget = await sync_to_async(make_budget)(team, "1.00")
    hold = await hold_for(team)
    await hold.ensure(D("0.50"))

    await settle(hold, team, "0.0123456789", "0.0000000011")

    budget = await fresh(budget)
    assert budget.spent_usd == D("0.0123456800")
    assert budget.reserved_usd == 0
    assert await BudgetReservation.objects.filter(settled_at=None).acount() == 0
    assert await UsageRecord.objects.filter(request_id="req_1").acount() == 2


async def test_budget_left_is_reported_from_the_reservation(team, async_db):
    await sync_to_async(make_budget)(team, "10.00", spent_usd=D("4.00"))
    hold = await hold_for(team)
    await hold.ensure(D("1.00"))

    assert hold.remaining_usd(D("0.25")) == D("5.75")


async def test_the_period_rolls_over_inside_the_reservation(team, async_db):
    last_month = period_bounds("monthly", timezone.now())[0] - dt.timedelta(days=20)
    budget = await sync_to_async(make_budget)(
        team, "1.00", spent_usd=D("1.00"), period_start=last_month
    )
    hold = await hold_for(team)

    assert await hold.ensure(D("0.40")) is None

    budget = await fresh(budget)
    assert budget.spent_usd == 0
    assert budget.reserved_usd == D("0.40")
    assert budget.period_start == period_bounds("monthly", timezone.now())[0]


async def test_two_requests_at_the_boundary_reset_the_period_once(team, async_db):
    last_month = period_bounds("monthly", timezone.now())[0] - dt.timedelta(seconds=1)
    budget = await sync_to_async(make_budget)(
        team, "5.00", spent_usd=D("4.00"), period_start=last_month
    )
    first, second = await hold_for(team, request_id="a"), await hold_for(team, request_id="b")

    await first.ensure(D("1.00"))
    await settle(first, team, "0.50")
    await second.ensure(D("1.00"))
    await settle(second, team, "0.25")

    budget = await fresh(budget)
    assert budget.spent_usd == D("0.75")  # not reset again by the second request
    assert budget.reserved_usd == 0


async def test_a_settlement_after_the_period_ended_counts_in_the_new_period(team, async_db):
    budget = await sync_to_async(make_budget)(team, "5.00", spent_usd=D("3.00"))
    hold = await hold_for(team)
    await hold.ensure(D("1.00"))
    last_month = budget.period_start - dt.timedelta(days=31)
    await Budget.objects.filter(pk=budget.pk).aupdate(period_start=last_month)

    await settle(hold, team, "0.20")

    budget = await fresh(budget)
    assert budget.spent_usd == D("0.20")
    assert budget.reserved_usd == 0


async def test_a_key_budget_applies_with_the_team_budget_and_undoes_a_partial_hold(team, async_db):
    key = (await sync_to_async(api_key_create)(team=team, name="k"))[0]
    team_budget = await sync_to_async(make_budget)(team, "100.00")
    key_budget = await sync_to_async(make_budget)(team, "0.10", api_key=key)
    other_key = (await sync_to_async(api_key_create)(team=team, name="other"))[0]

    refused = await (await hold_for(team, key)).ensure(D("0.50"))
    other = await hold_for(team, other_key)
    allowed = await other.ensure(D("0.50"))

    assert refused is not None
    assert refused.id == key_budget.id
    assert allowed is None
    assert [b.id for b in other.budgets] == [team_budget.id]
    assert (await fresh(team_budget)).reserved_usd == D("0.50")  # only the other key's hold
    assert (await fresh(key_budget)).reserved_usd == 0


async def test_concurrent_holds_never_pass_the_limit(team, async_db):
    budget = await sync_to_async(make_budget)(team, "5.00")

    async def one(index: int) -> bool:
        hold = await hold_for(team, request_id=f"r{index}")
        return await hold.ensure(D("0.10")) is None

    results = await asyncio.gather(*(one(i) for i in range(200)))

    assert sum(results) == 50
    budget = await fresh(budget)
    assert budget.reserved_usd == D("5.00")
    assert await BudgetReservation.objects.acount() == 50


def test_the_sweeper_releases_only_stale_reservations(team):
    budget = make_budget(team, "1.00", reserved_usd=D("0.70"))
    old = BudgetReservation.objects.create(budget=budget, request_id="old", amount_usd=D("0.30"))
    BudgetReservation.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=1)
    )
    recent = BudgetReservation.objects.create(
        budget=budget, request_id="recent", amount_usd=D("0.40")
    )

    released = budget_reservations_sweep(older_than=dt.timedelta(minutes=15))

    assert released == 1
    budget.refresh_from_db()
    assert budget.reserved_usd == D("0.40")
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.settled_at is not None
    assert recent.settled_at is None
    assert budget_reservations_sweep(older_than=dt.timedelta(minutes=15)) == 0


async def test_a_request_settling_after_the_sweep_does_not_release_twice(team, async_db):
    budget = await sync_to_async(make_budget)(team, "1.00")
    hold = await hold_for(team)
    await hold.ensure(D("0.50"))
    await sync_to_async(budget_reservations_sweep)(older_than=dt.timedelta(0))

    await settle(hold, team, "0.10")

    budget = await fresh(budget)
    assert budget.reserved_usd == 0
    assert budget.spent_usd == D("0.10")


def test_the_sweeper_task_runs_the_service(team, settings):
    from spend.tasks import budget_reservations_sweep_task

    settings.CELERY_TASK_ALWAYS_EAGER = True
    budget = make_budget(team, "1.00", reserved_usd=D("0.30"))
    BudgetReservation.objects.create(budget=budget, request_id="x", amount_usd=D("0.30"))

    assert budget_reservations_sweep_task.delay(0).get() == 1
    budget.refresh_from_db()
    assert budget.reserved_usd == 0


def test_set_budget_creates_then_changes_a_team_budget(team, catalog, capsys):
    call_command("set_budget", "--team", team.slug, "--limit", "25")
    call_command(
        "set_budget",
        "--team",
        team.slug,
        "--limit",
        "40.50",
        "--period",
        "daily",
        "--action",
        "downgrade",
        "--downgrade-to",
        "nano",
    )

    budget = Budget.objects.get(team=team, api_key=None)
    assert budget.limit_usd == D("40.50")
    assert budget.period == Budget.Period.DAILY
    assert budget.action == Budget.Action.DOWNGRADE
    assert budget.downgrade_tier.name == "nano"
    assert budget.period_start == period_bounds("daily", timezone.now())[0]
    assert "Budget for team-a: $40.50 daily, action downgrade to nano" in capsys.readouterr().out


def test_set_budget_refuses_a_downgrade_without_a_tier_and_unknown_teams(team, catalog):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="needs a tier"):
        call_command("set_budget", "--team", team.slug, "--limit", "5", "--action", "downgrade")
    with pytest.raises(CommandError, match="No team"):
        call_command("set_budget", "--team", "nope", "--limit", "5")
    with pytest.raises(CommandError, match="Unknown tier"):
        call_command("set_budget", "--team", team.slug, "--limit", "5", "--downgrade-to", "x")
    assert not Budget.objects.exists()


def test_budget_set_keeps_spend_unless_the_period_changes(team):
    budget = budget_set(team=team, limit_usd=D("10"))
    Budget.objects.filter(pk=budget.pk).update(spent_usd=D("3"))

    assert budget_set(team=team, limit_usd=D("20")).spent_usd == D("3")
    assert budget_set(team=team, limit_usd=D("20"), period="weekly").spent_usd == 0
