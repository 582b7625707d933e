"""Budget counters are exact on every backend: many costs of ten decimal places added to a
budget past a million dollars give the Decimal sum to the last place, on SQLite (integer
units of 1e-10 dollars) as on PostgreSQL (numeric), and every reserve, release and settle
round trip leaves nothing reserved."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from dataclasses import asdict
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import DataError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.services import api_key_create
from core.hot import hot_clear
from core.money import MAX_LIMIT_USD, units_usd, usd_units
from spend import budget_sql
from spend.budgets import (
    Settlement,
    budget_charge,
    budget_leases_return,
    budget_reservations_sweep,
    budget_settle,
    budgets_for,
)
from spend.models import Budget, BudgetReservation, UsageRecord
from spend.pg import pg_close, serving
from spend.usage import Ledger, usage_flush
from spend.usage_sql import ledgers_write
from tests.spend.conftest import fresh, hold_for, make_budget, settle, usage

D = Decimal

pytestmark = pytest.mark.django_db(transaction=True)

# Past a million dollars, with all ten places: 17 significant digits, more than a float holds.
START = D("1234567.1234567891")
# Costs of one call: ten decimal places, none a binary fraction.
COSTS = [D("0.0000123457") * k + D("0.0000000003") for k in range(1, 201)]


def _budget_info(team):
    hot_clear()
    return async_to_sync(budgets_for)(team_id=team.id, api_key_id=None)[0]


def test_a_big_budget_keeps_its_spend_to_the_last_place(team):
    budget = make_budget(team, "50000000", spent_usd=START, reserved_usd=D("0.0000000001"))
    budget.refresh_from_db()
    assert budget.spent_usd == START
    assert budget.reserved_usd == D("0.0000000001")


def test_settling_many_small_costs_past_a_million_is_exact(team):
    budget = make_budget(team, "50000000", spent_usd=START)
    info = _budget_info(team)

    for cost in COSTS:
        with transaction.atomic():
            budget_settle(settlements=[Settlement(info, None, spend=cost)])

    budget.refresh_from_db()
    assert budget.spent_usd == START + sum(COSTS)
    assert str(budget.spent_usd) == str(START + sum(COSTS))  # the same places on both


def test_charging_many_small_costs_past_a_million_is_exact(team):
    budget = make_budget(team, "50000000", spent_usd=START)

    for cost in COSTS:
        budget_charge(budget_id=budget.id, amount_usd=cost)

    budget.refresh_from_db()
    assert budget.spent_usd == START + sum(COSTS)


def test_the_sweeper_releases_big_reservations_exactly(team):
    big = D("3000000.0000000007")
    budget = make_budget(team, "50000000", reserved_usd=big + D("0.0000000001"))
    BudgetReservation.objects.create(budget=budget, request_id="old", amount_usd=big)

    assert budget_reservations_sweep(older_than=dt.timedelta(0)) == 1

    budget.refresh_from_db()
    assert budget.reserved_usd == D("0.0000000001")


@pytest.fixture(params=[False, True], ids=["per-request", "leases"])
async def serving_db(request, settings) -> AsyncIterator[bool]:
    """The server's hot path (PostgreSQL: native async connections and the batch writer),
    with per-request reservations or leases."""
    settings.BUDGET_LEASES = request.param
    settings.BUDGET_LEASE_FRACTION = 0.05
    settings.BUDGET_LEASE_REQUESTS = 7
    hot_clear()
    serving(True)
    yield request.param
    serving(False)
    await pg_close()


async def test_reserve_release_settle_round_trips_leave_nothing_reserved(team, serving_db):
    budget = await sync_to_async(make_budget)(team, "50000000", spent_usd=START)

    for i, cost in enumerate(COSTS[:40]):
        hold = await hold_for(team, request_id=f"r{i}")
        assert await hold.ensure(cost * 3 + D("0.0000000007")) is None
        await settle(hold, team, str(cost))
    budget_leases_return()
    await usage_flush()

    budget = await fresh(budget)
    assert budget.spent_usd == START + sum(COSTS[:40])
    assert budget.reserved_usd == 0
    assert await BudgetReservation.objects.filter(settled_at=None).acount() == 0


def test_a_counter_is_stored_as_integer_units_on_sqlite(team):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL keeps numeric(20,10)")
    budget = make_budget(team, "50000000", spent_usd=START)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT spent_usd, typeof(spent_usd) FROM spend_budget WHERE id = %s", [budget.id]
        )
        assert cursor.fetchone() == (12345671234567891, "integer")
    assert Budget.objects.get(pk=budget.pk).spent_usd == START


async def test_a_lease_share_is_rounded_half_up_to_the_last_place_on_both(team, settings):
    """Half a unit of share rounds up on SQLite (integer units) as on PostgreSQL (ROUND)."""
    settings.BUDGET_LEASES = True
    settings.BUDGET_LEASE_FRACTION = 0.5
    settings.BUDGET_LEASE_REQUESTS = 1000
    hot_clear()
    serving(True)
    try:
        budget = await sync_to_async(make_budget)(team, "100.0000000003")
        hold = await hold_for(team)
        assert await hold.ensure(D("1.00")) is None
        # 1.00 + ROUND(99.0000000003 x 0.5, 10) = 1.00 + 49.5000000002
        assert (await fresh(budget)).reserved_usd == D("50.5000000002")
        await settle(hold, team, "0.0000000001")
        budget_leases_return()
        await usage_flush()
        budget = await fresh(budget)
        assert (budget.spent_usd, budget.reserved_usd) == (D("0.0000000001"), 0)
    finally:
        serving(False)
        await pg_close()


def test_a_counter_past_what_sqlite_holds_is_an_error_not_a_wrapped_value(team):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's numeric(20,10) holds it")
    budget = make_budget(team, "100000000", spent_usd=D("900000000"))
    with pytest.raises(DataError, match="beyond what a budget counter holds"):
        Budget.objects.filter(pk=budget.pk).update(spent_usd=D("950000000"))
    with pytest.raises(IntegrityError):  # the sum passes 64 bits: SQLite makes it a REAL
        budget_charge(budget_id=budget.id, amount_usd=D("50000000"))
    budget.refresh_from_db()
    assert budget.spent_usd == D("900000000")


@pytest.mark.parametrize("usd", ["922337203.6854775808", "1e30", "-1e30", "NaN", "Infinity"])
def test_an_amount_beyond_64_bit_units_is_a_data_error(usd):
    with pytest.raises(DataError, match="beyond what a budget counter holds"):
        usd_units(D(usd))


def test_units_round_half_away_from_zero_as_postgresql_does():
    assert usd_units(D("922337203.6854775807")) == 2**63 - 1
    assert [usd_units(D(v)) for v in ("0.00000000005", "-0.00000000005", "1.23")] == [
        1,
        -1,
        12300000000,
    ]
    assert units_usd(12345671234567891) == START


def test_the_usage_writer_parks_a_ledger_whose_settlement_overflows(team):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's numeric(20,10) holds it")
    budget = make_budget(team, "100000000", spent_usd=D("900000000"))
    info = _budget_info(team)
    good, bad = Ledger(), Ledger()
    good.records = [usage(team, "good", "0.25")]
    good.settlements = [Settlement(info, None, spend=D("0.25"))]
    bad.records = [usage(team, "bad", "50000000")]
    bad.settlements = [Settlement(info, None, spend=D("50000000"))]
    parked: list[Ledger] = []

    async def write() -> None:
        await ledgers_write([good, bad], set(), lambda ledger, exc: parked.append(ledger))

    asyncio.run(write())

    assert parked == [bad]
    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["good"]
    budget.refresh_from_db()
    assert budget.spent_usd == D("900000000.25")


# The PostgreSQL statements as spend/budgets.py ran them before the counters (sha256 of the
# text): PostgreSQL runs exactly what it ran, only SQLite's statements changed.
PG_STATEMENT_HASHES = {
    "topup": "6fcfa67f33cb0124e1705acafcb7aab97bca302b79d82a7666b8381a3bd69ef4",
    "renew_open_reservation": "540442737c2e140fa56976adfcd26749033bfe7bb089c84c81411f8b248ca923",
    "unreserve_budget": "afc4385b9dde8787deb8374173b28e5bcdc6b71a72f75d9aa6ea376c9462fa4b",
    "unreserve_reservation": "6997ea283c27f464986fd12a3594d7456cb78293d484bf90ae3c2a24bc425fd9",
    "close_reservation": "20663caa36fa8b14593466b9b87b64eb5d097229b3e19665ee611429503d8a7b",
    "shrink_reservation": "80cd49ecaa6b34682d333e33af40cd0c9424d4dee00fd936701798892ac7ca05",
    "settle": "a5e9c84fa0c38c59c84be2115bbe631113e5a9348a672897509477874220f184",
    "grant": "c5f4a5c15d852a87c6faef0b29c9db15c1595a60d4d1e9beff02c652f5c6431c",
    "state": "f77b611adf4579d8967c3ed0876c1958b905c9e12d5f771cc266a05d7cef7085",
    "reserve": "19d81228c6852f0f03c62b90154b009c9be5501a5c8e171c71c0c5d23e1332c5",
    "new_reservation": "95e83709d454ac78eca3209b484d9e41f2a5ece84eca3851395bee0f73e4f377",
    "grow_reservation": "00f1ca38a8554d51fb151b60af231cd0b74af66220aca71cf47f1d132f9a11c7",
}


def test_postgresql_runs_the_statements_it_always_ran():
    statements = asdict(budget_sql._statements(exact=False))
    hashes = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in statements.items()}
    assert hashes == PG_STATEMENT_HASHES
    assert statements["topup"] == budget_sql.POSTGRESQL.topup
    assert budget_sql.budget_statements("postgresql").settle == statements["settle"]
    assert "ROUND" not in budget_sql.budget_statements("sqlite").settle


def test_the_migration_converts_existing_counters_exactly_both_ways(team):
    """Values written before 0010 (REAL on SQLite, at most 15 significant digits) come back
    to the last place as units, and as the same decimals when migrated back; a limit above
    the new ceiling becomes the ceiling on SQLite (its units would not fit)."""
    before = [("spend", "0009_lever_savings")]
    after = [("spend", "0010_budget_counters")]
    sqlite = connection.vendor == "sqlite"
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        OldBudget = old.get_model("spend", "Budget")
        OldReservation = old.get_model("spend", "BudgetReservation")
        figures = {
            "limit_usd": D("123456.789"),
            "spent_usd": D("98765.4321098765"),
            "reserved_usd": D("0.0000000001"),
        }
        first = OldBudget.objects.create(
            team_id=team.id, period="monthly", period_start=timezone.now(), **figures
        )
        legacy = OldBudget.objects.create(
            team_id=team.id,
            api_key_id=async_to_sync(_key)(team),
            period="total",
            period_start=timezone.now(),
            limit_usd=D("500000000"),
            spent_usd=D("12.5"),
        )
        OldReservation.objects.create(
            budget_id=first.pk, request_id="r", amount_usd=D("12345.6789012345")
        )

        executor = MigrationExecutor(connection)
        executor.migrate(after)

        budget = Budget.objects.get(pk=first.pk)
        assert {name: getattr(budget, name) for name in figures} == figures
        assert BudgetReservation.objects.get().amount_usd == D("12345.6789012345")
        converted = Budget.objects.get(pk=legacy.pk)
        assert converted.limit_usd == (MAX_LIMIT_USD if sqlite else D("500000000"))
        assert converted.spent_usd == D("12.5")
        if sqlite:
            with connection.cursor() as cursor:
                cursor.execute("SELECT spent_usd FROM spend_budget WHERE id = %s", [first.pk])
                assert cursor.fetchone() == (987654321098765,)

        executor = MigrationExecutor(connection)
        executor.migrate(before)

        back = OldBudget.objects.get(pk=first.pk)
        assert {name: getattr(back, name) for name in figures} == figures
        assert OldReservation.objects.get().amount_usd == D("12345.6789012345")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


async def _key(team) -> int:
    key, _ = await sync_to_async(api_key_create)(team=team, name="legacy")
    return key.id
