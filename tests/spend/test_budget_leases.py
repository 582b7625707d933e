"""Budget leases: a chunk of the budget held in memory by each serving event loop.

The real hot-path code (PostgreSQL: native async connections; SQLite: the Django connection
on a worker thread) against the real database. Independent lease holders are event loops in
their own threads, each with its own leases, writer and connections, as separate server
processes have; tests/gateway/test_budget_leases_live.py runs real server processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db.models import Sum
from django.utils import timezone

from accounts.services import api_key_create
from core import hot
from core.hot import hot_clear
from spend.budgets import (
    budget_leases_return,
    budget_reservations_sweep,
    leasing,
)
from spend.models import Budget, BudgetReservation, UsageRecord
from spend.periods import period_bounds
from spend.pg import pg_close, serving
from spend.usage import usage_flush
from tests.spend.conftest import fresh, hold_for, make_budget, settle

D = Decimal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lease_settings(settings):
    settings.BUDGET_LEASES = True
    settings.BUDGET_LEASE_FRACTION = 0.05
    settings.BUDGET_LEASE_REQUESTS = 10
    settings.BUDGET_LEASE_IDLE_SECONDS = 0.2
    return settings


@pytest.fixture
async def leases(lease_settings) -> AsyncIterator[None]:
    """This test's event loop serves with leases, as the web server's does."""
    hot_clear()
    serving(True)
    yield
    budget_leases_return()
    await usage_flush()
    serving(False)
    await pg_close()


async def open_rows() -> list[BudgetReservation]:
    return [r async for r in BudgetReservation.objects.filter(settled_at=None)]


async def ledger_total(team) -> Decimal:
    """The sum of the usage records, at the column's 10 places (SQLite sums REALs)."""
    total = await UsageRecord.objects.filter(team=team).aaggregate(total=Sum("cost_usd"))
    return D(total["total"] or 0).quantize(D("1e-10"))


async def turns_held_on(team, prefix: str, count: int) -> list[int]:
    """`count` requests at once, each holding 1.00: the turn of the event loop in which each
    was held (a top-up waited for is a database round trip, several turns)."""
    turns = 0
    finished: list[int] = []

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async def one(index: int) -> None:
        hold = await hold_for(team, request_id=f"{prefix}{index}")
        assert await hold.ensure(D("1.00")) is None
        finished.append(turns)

    counter = asyncio.create_task(count_turns())
    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        counter.cancel()
    return finished


async def test_one_top_up_then_requests_are_held_from_memory(team, leases):
    budget = await sync_to_async(make_budget)(team, "100.00")

    first = await hold_for(team, request_id="a")
    assert await first.ensure(D("1.00")) is None
    # The request's worst case plus 5 % of the headroom left after it (at most 10 requests).
    assert (await fresh(budget)).reserved_usd == D("1.00") + D("0.05") * D("99.00")
    await settle(first, team, "0.10")
    # The cost moved into spent; the lease keeps its spare and gives the rest back.
    budget = await fresh(budget)
    assert budget.spent_usd == D("0.10")
    assert budget.reserved_usd == D("4.95")

    for index in range(5):
        hold = await hold_for(team, request_id=f"r{index}")
        before = (await fresh(budget)).reserved_usd
        assert await hold.ensure(D("1.00")) is None
        assert (await fresh(budget)).reserved_usd == before  # no database round trip
        await settle(hold, team, "0.10")

    budget = await fresh(budget)
    assert budget.spent_usd == D("0.60") == await ledger_total(team)
    assert await BudgetReservation.objects.acount() == 1
    (row,) = await open_rows()
    assert row.amount_usd == budget.reserved_usd
    assert row.request_id.startswith("lease:")


async def test_requests_waiting_for_a_top_up_all_wake_when_it_lands(team, leases):
    """Eight requests at once on a new lease: the first tops up for itself and four more (its
    1.00 and 5 % of the 99.00 left). Those four wake together, not one per turn of the loop
    as a queue on a lock would (a busy loop's turn is milliseconds long)."""
    await sync_to_async(make_budget)(team, "100.00")

    finished = await turns_held_on(team, "r", 8)

    first_five = sorted(finished)[:5]
    assert first_five[-1] - first_five[0] <= 2, finished


async def test_a_busy_lease_tops_up_before_it_runs_dry(team, leases):
    """Requests that cost their worst case use the lease up; once less than half its spare is
    free, it tops up in the background while the request that noticed is still in flight."""
    budget = await sync_to_async(make_budget)(team, "100.00")
    for index in range(3):  # reserved: 5.95 (1.00 + 4.95 spare), then 1.00 less per request
        hold = await hold_for(team, request_id=f"r{index}")
        assert await hold.ensure(D("1.00")) is None
        await settle(hold, team, "1.00")
    assert (await fresh(budget)).reserved_usd == D("2.95")

    hold = await hold_for(team, request_id="r3")
    assert await hold.ensure(D("1.00")) is None  # 1.95 free now: less than 4.95 / 2
    # 5 % of the 94.05 left (100 - 3.00 spent - 2.95 reserved), before the request ends.
    expected = D("2.95") + D("4.7025")
    for _ in range(500):
        if (await fresh(budget)).reserved_usd == expected:
            break
        await asyncio.sleep(0.01)
    assert (await fresh(budget)).reserved_usd == expected
    await settle(hold, team, "1.00")

    budget = await fresh(budget)
    assert budget.spent_usd == D("4.00") == await ledger_total(team)
    assert budget.reserved_usd == D("4.7025")  # the new spare


async def test_a_burst_s_spare_follows_the_requests_in_flight(team, leases):
    """A top-up's spare is at most 10 worst cases, or twice what the requests in flight hold
    if more: after a burst of 40, the next 40 at once are all held from memory, in the turn of
    the loop they start in. (With at most 10, half of them waited for a top-up: a database
    round trip, tens of milliseconds each on a busy loop.)"""
    await sync_to_async(make_budget)(team, "1000.00")
    burst = [await hold_for(team, request_id=f"burst{i}") for i in range(40)]
    assert await asyncio.gather(*(hold.ensure(D("1.00")) for hold in burst)) == [None] * 40
    await asyncio.gather(*(settle(hold, team, "0.10") for hold in burst))

    finished = await turns_held_on(team, "next", 40)

    assert max(finished) - min(finished) <= 1, finished


async def test_a_lease_never_refuses_what_per_request_reservation_admits(team, leases):
    budget = await sync_to_async(make_budget)(team, "1.00")
    first, second = await hold_for(team, request_id="a"), await hold_for(team, request_id="b")

    assert await first.ensure(D("0.60")) is None
    assert (await fresh(budget)).reserved_usd == D("0.62")  # 5 % of the 0.40 left
    refused = await second.ensure(D("0.50"))
    assert await second.ensure(D("0.40")) is None  # 0.60 + 0.40 fits exactly

    assert refused is not None
    assert refused.id == budget.id
    assert (await fresh(budget)).reserved_usd == D("1.00")


async def test_concurrent_holds_on_one_lease_never_pass_the_limit(team, leases):
    budget = await sync_to_async(make_budget)(team, "5.00")

    async def one(index: int) -> bool:
        hold = await hold_for(team, request_id=f"r{index}")
        return await hold.ensure(D("0.10")) is None

    results = await asyncio.gather(*(one(i) for i in range(200)))

    assert sum(results) == 50  # as many as per-request reservations admit
    budget = await fresh(budget)
    assert budget.reserved_usd == D("5.00")
    assert await BudgetReservation.objects.acount() == 1


async def test_a_key_budget_refusal_gives_the_team_lease_back_in_memory(team, leases):
    key = (await sync_to_async(api_key_create)(team=team, name="k"))[0]
    other_key = (await sync_to_async(api_key_create)(team=team, name="other"))[0]
    team_budget = await sync_to_async(make_budget)(team, "100.00")
    key_budget = await sync_to_async(make_budget)(team, "0.10", api_key=key)

    refused = await (await hold_for(team, key)).ensure(D("0.50"))
    other = await hold_for(team, other_key, request_id="other")
    allowed = await other.ensure(D("0.50"))

    assert refused is not None
    assert refused.id == key_budget.id
    assert allowed is None
    (row,) = await open_rows()  # the team's lease only, holding the other key's request
    assert row.budget_id == team_budget.id
    assert (await fresh(team_budget)).reserved_usd == row.amount_usd
    assert (await fresh(key_budget)).reserved_usd == 0


async def test_an_idle_lease_is_returned_and_a_busy_one_renewed(team, leases, lease_settings):
    lease_settings.BUDGET_RESERVATION_TIMEOUT_SECONDS = 0.8
    budget = await sync_to_async(make_budget)(team, "10.00")
    busy = await hold_for(team, request_id="busy")
    await busy.ensure(D("1.00"))

    await asyncio.sleep(1.6)  # twice the sweep timeout, with the request still in flight

    assert await sync_to_async(budget_reservations_sweep)() == 0  # renewed: not taken for dead
    await settle(busy, team, "0.25")
    await asyncio.sleep(0.5)  # more than the idle time
    await usage_flush()

    budget = await fresh(budget)
    assert budget.reserved_usd == 0
    assert budget.spent_usd == D("0.25")
    assert await open_rows() == []


async def test_returning_the_leases_on_shutdown_releases_them(team, leases):
    budget = await sync_to_async(make_budget)(team, "10.00")
    hold = await hold_for(team)
    await hold.ensure(D("1.00"))
    await settle(hold, team, "0.50")

    budget_leases_return()
    await usage_flush()

    budget = await fresh(budget)
    assert budget.reserved_usd == 0
    assert budget.spent_usd == D("0.50")
    assert await open_rows() == []


async def test_rollover_releases_the_previous_period_s_lease(team, leases, monkeypatch):
    budget = await sync_to_async(make_budget)(
        team, "10.00", period=Budget.Period.DAILY, spent_usd=D("9.00")
    )
    yesterday = await hold_for(team, request_id="yesterday")
    assert await yesterday.ensure(D("0.50")) is None  # and 5 % of the 0.50 left
    tomorrow = timezone.now() + dt.timedelta(days=1)
    monkeypatch.setattr(timezone, "now", lambda: tomorrow)

    today = await hold_for(team, request_id="today")
    assert await today.ensure(D("5.00")) is None
    await usage_flush()

    budget = await fresh(budget)
    assert budget.period_start == period_bounds("daily", tomorrow)[0]
    assert budget.spent_usd == 0
    old, new = sorted(await open_rows(), key=lambda row: row.id)
    assert old.amount_usd == D("0.50")  # only what its request in flight holds
    assert budget.reserved_usd == old.amount_usd + new.amount_usd

    await settle(yesterday, team, "0.30")  # counts in the new period, as it settles there
    budget = await fresh(budget)
    assert budget.spent_usd == D("0.30")
    assert [row.id for row in await open_rows()] == [new.id]
    assert budget.reserved_usd == new.amount_usd


async def test_a_limit_lowered_by_another_process_is_honoured_after_its_next_check(
    team, leases, settings
):
    # Long enough that no check falls between "b" and its ensure on a loaded machine.
    settings.HOT_CHECK_SECONDS = 1.0
    budget = await sync_to_async(make_budget)(team, "100.00")
    first = await hold_for(team, request_id="a")
    await first.ensure(D("1.00"))
    await settle(first, team, "0")
    before_check = await hold_for(team, request_id="b")  # the settings as read before
    # Another process lowers the limit: its commit moves the shared generation, which this
    # process reads at its next check (its own signals do not fire for the update).
    await Budget.objects.filter(pk=budget.pk).aupdate(limit_usd=D("0.50"))
    await sync_to_async(hot._write_generation)()

    assert await before_check.ensure(D("1.00")) is None  # the lease was granted before
    await asyncio.sleep(1.05)
    refused = await (await hold_for(team, request_id="c")).ensure(D("0.10"))
    assert refused is not None
    assert refused.limit_usd == D("0.50")


async def test_a_dead_holder_s_lease_is_released_by_the_sweeper(team, lease_settings):
    budget = await sync_to_async(make_budget)(team, "10.00")

    def process_that_dies() -> None:
        async def serve() -> None:
            serving(True)
            hold = await hold_for(team)
            await hold.ensure(D("1.00"))
            await pg_close()  # the loop ends with its lease and its request in flight

        asyncio.run(serve())

    thread = threading.Thread(target=process_that_dies)
    thread.start()
    thread.join()
    serving(False)

    assert (await fresh(budget)).reserved_usd > D("1.00")
    assert await sync_to_async(budget_reservations_sweep)(older_than=dt.timedelta(minutes=15)) == 0
    assert await sync_to_async(budget_reservations_sweep)(older_than=dt.timedelta(0)) == 1
    assert (await fresh(budget)).reserved_usd == 0


def test_leases_need_the_setting_and_a_serving_loop(settings):
    settings.BUDGET_LEASES = True
    assert not leasing()  # a test, a Celery task, async_to_sync: per-request reservations
    serving(True)
    try:
        assert leasing()
        settings.BUDGET_LEASES = False
        assert not leasing()
    finally:
        serving(False)


# ---------------------------------------------------------------- independent holders

HOLDERS, TASKS = 4, 6


def run_holders(team, worst: Decimal, cost) -> int:
    """HOLDERS event loops, each in its own thread with its own leases, writer and
    connections, run TASKS concurrent request loops each until the budget refuses one;
    the number of admitted requests."""
    admitted: list[int] = []
    errors: list[BaseException] = []

    async def holder(number: int) -> None:
        count = 0

        async def requests(task: int) -> None:
            nonlocal count
            rng = random.Random(number * 100 + task)
            for index in range(10_000):
                hold = await hold_for(team, request_id=f"h{number}t{task}r{index}")
                if await hold.ensure(worst) is not None:
                    await settle(hold, team)
                    return
                count += 1
                await asyncio.sleep(rng.random() / 1000)
                await settle(hold, team, str(cost(rng)))

        try:
            await asyncio.gather(*(requests(task) for task in range(TASKS)))
            budget_leases_return()
            await usage_flush()
        finally:
            await pg_close()
        admitted.append(count)

    def thread_main(number: int) -> None:
        try:
            asyncio.run(holder(number))
        except BaseException as exc:  # re-raised in the test
            errors.append(exc)

    hot_clear()
    serving(True)
    try:
        threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(HOLDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        serving(False)
    assert not errors, errors
    return sum(admitted)


def test_independent_lease_holders_never_pass_the_limit(team, lease_settings):
    budget = make_budget(team, "3.00")
    worst = D("0.0100000000")

    admitted = run_holders(team, worst, cost=lambda rng: worst * D(rng.randint(0, 100)) / 100)

    budget.refresh_from_db()
    ledger = async_to_sync(ledger_total)(team)
    assert admitted > 300  # more than the limit's worth of worst cases: costs are lower
    assert budget.spent_usd == ledger  # the ledger equals the sum of the usage records
    assert budget.spent_usd <= budget.limit_usd
    assert budget.reserved_usd == 0
    assert not BudgetReservation.objects.filter(settled_at=None).exists()
    assert UsageRecord.objects.count() == admitted  # each admitted request charged once
    assert UsageRecord.objects.values("request_id").distinct().count() == admitted


def test_independent_holders_leave_less_than_a_worst_case_each_unused(team, lease_settings):
    """Requests that cost their worst case, until every holder is refused: each holder keeps
    less than one worst case unused (per-request reservations: less than one in all)."""
    budget = make_budget(team, "3.00")
    worst = D("0.0700000000")

    admitted = run_holders(team, worst, cost=lambda rng: worst)

    budget.refresh_from_db()
    assert budget.spent_usd == admitted * worst
    assert budget.spent_usd <= budget.limit_usd
    assert budget.limit_usd - budget.spent_usd < (HOLDERS + 1) * worst
    assert budget.reserved_usd == 0


async def test_requests_arriving_while_a_burst_is_in_flight_are_held_from_memory(team, leases):
    """The spare is twice what the requests in flight hold: with 40 in flight, 40 more that
    arrive at once are all held from memory, in the turn they start in, while the early
    top-up runs. (With a spare of what they hold, half of them waited for a top-up.)"""
    await sync_to_async(make_budget)(team, "1000.00")
    in_flight = [await hold_for(team, request_id=f"flight{i}") for i in range(40)]
    assert await asyncio.gather(*(hold.ensure(D("1.00")) for hold in in_flight)) == [None] * 40

    finished = await turns_held_on(team, "more", 40)

    assert max(finished) - min(finished) <= 1, finished
    await asyncio.gather(*(settle(hold, team, "0.10") for hold in in_flight))
