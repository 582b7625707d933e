"""Budget leases across real server processes: three uvicorn servers on one database, each
with its own leases on the team's budget, under simultaneous requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest

from routing.models import Provider
from spend.budgets import budget_set
from spend.models import Budget, BudgetReservation, UsageRecord
from tests.conftest import serve_site, stop, wait_for_budgets
from tests.gateway.conftest import wait_for
from tests.gateway.test_budgets_live import (
    HELLO,
    _fire,
    explain_worst_case,
    hanging_tier,
    usage_total,
)

pytestmark = pytest.mark.django_db(transaction=True)

SERVERS = 3


@pytest.fixture
def sites(gateway_env, catalog, prompts, simulator_url, monkeypatch) -> Iterator[list[str]]:
    monkeypatch.setenv("BUDGET_LEASES", "True")
    monkeypatch.setenv("BUDGET_LEASE_FRACTION", "0.05")
    monkeypatch.setenv("BUDGET_LEASE_IDLE_SECONDS", "0.5")
    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    started = []
    try:
        for _ in range(SERVERS):
            started.append(serve_site(simulator_url))
        yield [url for url, _process in started]
    finally:
        for _url, process in started:
            stop(process)


def fire_at_all(urls: list[str], key: str, each: int, body: dict) -> list[int]:
    async def everywhere() -> list[int]:
        answers = await asyncio.gather(*(_fire(url, key, each, body) for url in urls))
        return [status for statuses in answers for status in statuses]

    return asyncio.run(everywhere())


def test_three_servers_never_take_spend_past_the_limit(team, sites, api_key):
    body = {"model": "tier:mini", "messages": HELLO, "max_tokens": 400}
    worst = explain_worst_case(sites[0], api_key, body)
    budget = budget_set(team=team, limit_usd=worst * 30 + worst / 2)
    wait_for_budgets()

    statuses = fire_at_all(sites, api_key, 60, body)

    assert set(statuses) <= {200, 402}
    admitted = statuses.count(200)
    # A server refuses only when the requests in flight everywhere, plus what the other
    # servers keep unused (each at most 5 % of the headroom), leave no room for one more.
    assert admitted >= 30 - 1 - (SERVERS - 1) * 2
    assert wait_for(
        lambda: (
            Budget.objects.filter(pk=budget.pk, reserved_usd=0).exists()
            and UsageRecord.objects.exclude(status="refused").count() >= admitted
        )
    )  # every lease was returned once idle
    budget.refresh_from_db()
    assert budget.spent_usd == usage_total(team)  # the ledger equals the sum of the records
    assert budget.spent_usd <= budget.limit_usd
    upstream = UsageRecord.objects.exclude(status="refused")  # a 402 is a refusal record
    assert upstream.count() == admitted
    assert upstream.values("request_id").distinct().count() == admitted
    assert wait_for(
        lambda: UsageRecord.objects.filter(status="refused").count() == statuses.count(402)
    )
    assert not BudgetReservation.objects.filter(settled_at=None).exists()
    leases = set(BudgetReservation.objects.values_list("request_id", flat=True))
    assert len(leases) <= SERVERS  # one lease row at a time per server process
    assert all(name.startswith("lease:") for name in leases)


def test_three_servers_refuse_near_the_limit_by_less_than_a_worst_case(team, sites, api_key):
    """Eighteen requests that hold their worst case for two seconds against a budget that
    fits nine and a half: per-request reservations would admit nine; leases admit nine, or
    eight when the others' unused spare (5 % of the headroom each) is what is missing."""
    hanging_tier(timeout="1")
    body = {"model": "tier:hangs", "messages": HELLO, "max_tokens": 100}
    worst = explain_worst_case(sites[0], api_key, body)
    budget = budget_set(team=team, limit_usd=worst * 9 + worst / 2)
    wait_for_budgets()

    statuses = fire_at_all(sites, api_key, 6, body)

    admitted = statuses.count(504)  # the admitted ones time out upstream
    assert statuses.count(402) == 18 - admitted
    assert 8 <= admitted <= 9
    assert wait_for(lambda: Budget.objects.filter(pk=budget.pk, reserved_usd=0).exists())
    budget.refresh_from_db()
    assert budget.spent_usd == Decimal(0)
