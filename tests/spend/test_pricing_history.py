"""Prices with history: the row in force, repricing logged usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from routing.models import Model, Price
from routing.seed import seed_catalog
from spend.models import UsageRecord
from spend.pricing import (
    PriceNotFound,
    cost_usd,
    price_at,
    repriced_cost_by_model,
)

D = Decimal
UTC = dt.UTC
MID_MARCH = dt.datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def seeded(db) -> None:
    seed_catalog(simulator_url="http://127.0.0.1:9/v1")


def _march_price(model: Model) -> Price:
    """gpt-5.4 goes up mid-March: 3.00 in / 0.30 cached / 18.00 out."""
    return Price.objects.create(
        model=model,
        effective_from=MID_MARCH,
        input_per_mtok=D("3.00"),
        cached_input_per_mtok=D("0.30"),
        output_per_mtok=D("18.00"),
        long_context_threshold=272_000,
        long_context_input_multiplier=D("2"),
        long_context_output_multiplier=D("1.5"),
    )


def _usage(team, model: Model, at: dt.datetime, **tokens) -> UsageRecord:
    """A usage record costed the way the gateway does: at the price in force when it ran."""
    price = price_at(model, at)
    return UsageRecord.objects.create(
        created_at=at,
        request_id=f"req-{at:%d%H%M}",
        team=team,
        model=model,
        model_name=model.name,
        cost_usd=cost_usd(price=price, **tokens),
        **tokens,
    )


def test_the_row_in_force_is_the_latest_that_started_at_or_before_the_time(seeded):
    model = Model.objects.get(name="gpt-5.4")
    new = _march_price(model)
    assert price_at(model, MID_MARCH - dt.timedelta(microseconds=1)).input_per_mtok == D("2.50")
    assert price_at(model, MID_MARCH) == new
    assert price_at(model, dt.datetime(2027, 1, 1, tzinfo=UTC)) == new


def test_a_time_before_the_first_price_is_a_clear_error(seeded):
    model = Model.objects.get(name="gpt-5.4")
    with pytest.raises(PriceNotFound, match=r"No price for model 'gpt-5\.4' in force at 2025"):
        price_at(model, dt.datetime(2025, 12, 31, tzinfo=UTC))


def test_a_naive_time_is_rejected(seeded):
    model = Model.objects.get(name="gpt-5.4")
    with pytest.raises(ValueError, match="aware datetime"):
        price_at(model, dt.datetime(2026, 3, 1))


def test_the_lookup_sees_a_new_price_as_soon_as_it_is_saved(seeded):
    model = Model.objects.get(name="gpt-5.4")
    later = dt.datetime(2026, 4, 1, tzinfo=UTC)
    assert price_at(model, later).input_per_mtok == D("2.50")
    _march_price(model)
    assert price_at(model, later).input_per_mtok == D("3.00")


def test_the_lookup_forgets_a_deleted_price(seeded):
    model = Model.objects.get(name="gpt-5.4")
    later = dt.datetime(2026, 4, 1, tzinfo=UTC)
    new = _march_price(model)
    assert price_at(model, later) == new
    new.delete()
    assert price_at(model, later).input_per_mtok == D("2.50")


def test_a_mid_month_price_change_leaves_earlier_costs_as_they_were(seeded, team):
    model = Model.objects.get(name="gpt-5.4")
    tokens = {"input_tokens": 10_000, "cached_input_tokens": 2000, "output_tokens": 1000}
    # before: 8000 * 2.50 + 2000 * 0.25 + 1000 * 15.00 = 20 000 + 500 + 15 000 = 35 500
    before = _usage(team, model, dt.datetime(2026, 3, 10, tzinfo=UTC), **tokens)
    assert before.cost_usd == D("0.0355")

    _march_price(model)
    # after: 8000 * 3.00 + 2000 * 0.30 + 1000 * 18.00 = 24 000 + 600 + 18 000 = 42 600
    after = _usage(team, model, dt.datetime(2026, 3, 20, tzinfo=UTC), **tokens)
    assert after.cost_usd == D("0.0426")

    before.refresh_from_db()
    assert before.cost_usd == D("0.0355")
    # recosting the early record at the price in force when it ran gives the same figure
    assert cost_usd(price=price_at(model, before.created_at), **tokens) == D("0.0355")


def test_repriced_cost_shows_a_past_month_at_todays_prices(seeded, team):
    model = Model.objects.get(name="gpt-5.4")
    nano = Model.objects.get(name="gpt-5.4-nano")
    tokens = {"input_tokens": 10_000, "cached_input_tokens": 2000, "output_tokens": 1000}
    _usage(team, model, dt.datetime(2026, 3, 1, tzinfo=UTC), **tokens)
    _usage(team, model, dt.datetime(2026, 3, 2, tzinfo=UTC), **tokens)
    # nano: 1000 * 0.20 + 100 * 1.25 = 200 + 125 = 325 → 0.000325
    _usage(team, nano, dt.datetime(2026, 3, 3, tzinfo=UTC), input_tokens=1000, output_tokens=100)
    _march_price(model)
    march = UsageRecord.objects.filter(team=team)
    at_old = dt.datetime(2026, 3, 1, tzinfo=UTC)
    at_new = dt.datetime(2026, 4, 1, tzinfo=UTC)

    assert sum(repriced_cost_by_model(march, at=at_old).values()) == D("0.0355") * 2 + D("0.000325")
    assert sum(repriced_cost_by_model(march, at=at_new).values()) == D("0.0426") * 2 + D("0.000325")
    assert repriced_cost_by_model(march, at=at_new) == {
        "gpt-5.4": D("0.0852"),
        "gpt-5.4-nano": D("0.000325"),
    }


def test_repriced_cost_applies_service_tier_and_long_context_per_record(seeded, team):
    model = Model.objects.get(name="gpt-5.4")
    at = dt.datetime(2026, 2, 1, tzinfo=UTC)
    # batch: 1000 * 2.50 * 0.5 = 1250 → 0.00125
    UsageRecord.objects.create(
        created_at=at,
        request_id="a",
        team=team,
        model=model,
        model_name=model.name,
        service_tier="batch",
        input_tokens=1000,
    )
    # long context: 300 000 * 2.50 * 2 = 1 500 000 → 1.5
    UsageRecord.objects.create(
        created_at=at,
        request_id="b",
        team=team,
        model=model,
        model_name=model.name,
        input_tokens=300_000,
    )
    # under the threshold: 272 000 * 2.50 = 680 000 → 0.68
    UsageRecord.objects.create(
        created_at=at,
        request_id="c",
        team=team,
        model=model,
        model_name=model.name,
        input_tokens=272_000,
    )
    assert sum(repriced_cost_by_model(UsageRecord.objects.all(), at=at).values()) == D(
        "0.00125"
    ) + D("1.5") + D("0.68")


def test_records_without_a_catalog_model_keep_their_recorded_cost(seeded, team):
    at = dt.datetime(2026, 2, 1, tzinfo=UTC)
    UsageRecord.objects.create(
        created_at=at,
        request_id="x",
        team=team,
        model=None,
        model_name="retired-model",
        input_tokens=5,
        cost_usd=D("0.42"),
    )
    assert repriced_cost_by_model(UsageRecord.objects.all(), at=at) == {"retired-model": D("0.42")}
