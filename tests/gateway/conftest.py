"""Gateway fixtures: the seeded catalog and demo prompts in team A, the site under uvicorn
with the simulator as its upstream, and helpers to read what the gateway recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from django.core.cache import cache
from django.db.models import Sum

from accounts.models import Team
from prompts.seed import seed_prompts
from routing.models import Model, Price, Provider, Tier, TierModel
from spend.models import Budget, BudgetReservation, UsageRecord


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast retries for the server under test (read from the environment by config/settings)."""
    monkeypatch.setenv("GATEWAY_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("GATEWAY_RETRY_AFTER_MAX_SECONDS", "0")


@pytest.fixture
def prompts(catalog: None, team: Team) -> None:
    """DESIGN.md's four sample prompts, published, in team A."""
    seed_prompts(team=team, author=None)


@pytest.fixture
def site(gateway_env: None, catalog: None, prompts: None, live_site: str) -> str:
    return live_site


@pytest.fixture
def sdk(site: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0, timeout=20)


@pytest.fixture
def async_sdk(site: str, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0, timeout=30)


def usage_for(request_id: str, count: int = 1, timeout: float = 10) -> list[UsageRecord]:
    """The request's usage records, once `count` of them are written (the writer is async)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(UsageRecord.objects.filter(request_id=request_id).order_by("attempt"))
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.02)


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def add_model(
    name: str,
    tier: str | None = None,
    *,
    position: int | None = None,
    timeout: str | None = None,
    like: str = "gpt-5.4-mini",
    **capabilities: bool,
) -> Model:
    """A catalog model (e.g. `gpt-5.4-mini@429`, which the simulator fails on purpose)."""
    template = Model.objects.get(name=like)
    model = Model.objects.create(
        provider=Provider.objects.get(name="openai"),
        name=name,
        tier=Tier.objects.get(name=tier) if tier else template.tier,
        timeout_seconds=Decimal(timeout) if timeout else None,
        supports_tool_search=capabilities.get("tool_search", template.supports_tool_search),
        supports_computer_use=capabilities.get("computer_use", template.supports_computer_use),
    )
    for price in Price.objects.filter(model=template):
        price.pk = None
        price.model = model
        price.save()
    if tier is not None:
        tier_obj = Tier.objects.get(name=tier)
        if position is not None:
            for member in TierModel.objects.filter(tier=tier_obj, position__gte=position).order_by(
                "-position"
            ):
                member.position += 1
                member.save()
        TierModel.objects.create(
            tier=tier_obj,
            model=model,
            position=position
            if position is not None
            else TierModel.objects.filter(tier=tier_obj).count(),
        )
    return model


@pytest.fixture
def killable_site(
    gateway_env: None, catalog: None, prompts: None, transactional_db, simulator_url: str
):
    """Like `live_site`, but yields (url, process) so that a test can kill the server."""
    from tests.conftest import serve_site, stop

    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    url, process = serve_site(simulator_url)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            stop(process)


def team_ledger(team) -> tuple[Decimal, Decimal, Decimal]:
    """(budget spent, budget reserved for requests, sum of the team's usage costs) once the
    writer is done. A server's budget lease keeps its unused part reserved until it is
    returned: that part is not a request's and is left out."""

    def state():
        budget = Budget.objects.get(team=team, api_key=None)
        leased = BudgetReservation.objects.filter(
            budget=budget, request_id__startswith="lease:", settled_at__isnull=True
        ).aggregate(s=Sum("amount_usd"))["s"]
        total = UsageRecord.objects.filter(team=team).aggregate(s=Sum("cost_usd"))["s"]
        return budget.spent_usd, budget.reserved_usd - (leased or 0), total or Decimal(0)

    deadline = time.monotonic() + 10
    while True:
        spent, reserved, total = state()
        if (spent == total and reserved == 0) or time.monotonic() > deadline:
            return spent, reserved, total
        time.sleep(0.05)
