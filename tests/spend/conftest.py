"""Usage records and rollups for the spend tests: a seeded price catalog (no upstream needed)
and a factory that writes records at chosen times, costed with the real pricing code."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest

from accounts.models import Team
from prompts.models import Prompt, PromptVersion
from routing.models import Model
from spend.models import UsageRecord
from spend.pricing import cost_usd, price_at

_ids = itertools.count(1)


@pytest.fixture
def prices(db) -> None:
    """The demo catalog and prices (DESIGN.md), with an upstream nobody calls."""
    from routing.seed import seed_catalog

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")


def prompt_for(team: Team, slug: str) -> PromptVersion:
    prompt, _ = Prompt.objects.get_or_create(team=team, slug=slug, defaults={"name": slug})
    version = prompt.versions.first()
    if version is None:
        version = PromptVersion.objects.create(prompt=prompt, number=1, user_template="{{ x }}")
    return version


@pytest.fixture
def make_usage(prices) -> Callable[..., UsageRecord]:
    """Write one usage record; its cost is the real price of its tokens unless given."""

    def make(
        *,
        team: Team,
        at: dt.datetime,
        model: str = "gpt-5.4-mini",
        tier: str = "mini",
        prompt: str | None = None,
        input_tokens: int = 1000,
        cached_input_tokens: int = 0,
        output_tokens: int = 200,
        reasoning_tokens: int = 0,
        latency_ms: int = 800,
        status: str = UsageRecord.Status.SUCCESS,
        purpose: str = "gateway",
        service_tier: str = "default",
        cost: Decimal | None = None,
        api_key=None,
        **extra,
    ) -> UsageRecord:
        catalog_model = Model.objects.filter(name=model).first()
        if cost is None:
            cost = (
                cost_usd(
                    price=price_at(catalog_model, at),
                    input_tokens=input_tokens,
                    cached_input_tokens=cached_input_tokens,
                    output_tokens=output_tokens,
                    reasoning_tokens=reasoning_tokens,
                    service_tier=service_tier,
                )
                if catalog_model
                else Decimal("0")
            )
        return UsageRecord.objects.create(
            created_at=at,
            request_id=f"req_{next(_ids)}",
            team=team,
            api_key=api_key,
            prompt_version=prompt_for(team, prompt) if prompt else None,
            purpose=purpose,
            model=catalog_model,
            model_name=model,
            tier_name=tier,
            service_tier=service_tier,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
            status=status,
            **extra,
        )

    return make
