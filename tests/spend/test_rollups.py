from __future__ import annotations

import dataclasses
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db.models import Sum

from routing.models import Model
from spend.models import DailyRollup, DailySummary, RollupState, UsageRecord
from spend.pricing import cost_usd, price_at
from spend.rollups import SUM_FIELDS, usage_rollup_rebuild, usage_rollup_run
from spend.selectors import UsageFilters, context_load, usage_breakdown

UTC = dt.UTC
DAY1 = dt.datetime(2026, 11, 20, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def ledger(make_usage, team, other_team):
    """Three days of mixed traffic: two teams, prompts, models, tiers, errors, purposes."""
    rows = [
        make_usage(team=team, at=at(20, 1), prompt="triage", latency_ms=120),
        make_usage(team=team, at=at(20, 9), prompt="triage", model="gpt-5.4", tier="flagship"),
        make_usage(team=team, at=at(20, 23, 59), prompt="summary", output_tokens=900),
        make_usage(team=team, at=at(21, 0), prompt="triage", status="error", output_tokens=0),
        make_usage(
            team=team, at=at(21, 12), model="gpt-5.4-nano", tier="nano", purpose="classifier"
        ),
        make_usage(team=other_team, at=at(21, 13), prompt="other", input_tokens=5000),
        make_usage(
            team=other_team, at=at(22, 8), model="gpt-5.5", tier="reasoning", latency_ms=25_000
        ),
        make_usage(team=team, at=at(22, 10), prompt="triage", cached_input_tokens=400),
        make_usage(team=team, at=at(22, 11), prompt="triage", service_tier="batch"),
        make_usage(team=team, at=at(22, 11, 30), status="cancelled", latency_ms=70_000),
    ]
    return rows


def flagship_cost(record: UsageRecord) -> Decimal:
    flagship = Model.objects.get(name="gpt-5.4")
    return cost_usd(
        price=price_at(flagship, record.created_at),
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        cache_write_tokens=record.cache_write_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
        service_tier=record.service_tier,
    )


def test_rollup_totals_equal_the_sum_of_usage_records(ledger, team, other_team):
    usage_rollup_run(now=at(23, 12))

    for t in (team, other_team):
        for day in (20, 21, 22):
            records = [r for r in ledger if r.team_id == t.id and r.created_at.day == day]
            rollups = DailyRollup.objects.filter(team=t, day=dt.date(2026, 11, day))
            sums = rollups.aggregate(
                requests=Sum("requests"),
                errors=Sum("errors"),
                cancelled=Sum("cancelled"),
                cost=Sum("cost_usd"),
                input=Sum("input_tokens"),
                cached=Sum("cached_input_tokens"),
                output=Sum("output_tokens"),
                latency=Sum("latency_ms_sum"),
            )
            assert (sums["requests"] or 0) == len(records)
            assert (sums["errors"] or 0) == sum(r.status == "error" for r in records)
            assert (sums["cancelled"] or 0) == sum(r.status == "cancelled" for r in records)
            assert (sums["cost"] or 0) == sum((r.cost_usd for r in records), Decimal(0))
            assert (sums["input"] or 0) == sum(r.input_tokens for r in records)
            assert (sums["cached"] or 0) == sum(r.cached_input_tokens for r in records)
            assert (sums["output"] or 0) == sum(r.output_tokens for r in records)
            assert (sums["latency"] or 0) == sum(r.latency_ms for r in records)


def test_rollup_rows_are_keyed_by_team_prompt_model_tier_purpose_and_day(ledger, team):
    usage_rollup_run(now=at(23, 12))

    triage_day1 = DailyRollup.objects.get(
        team=team, day=dt.date(2026, 11, 20), prompt__slug="triage", model_name="gpt-5.4-mini"
    )
    assert triage_day1.requests == 1
    assert triage_day1.tier_name == "mini"
    assert triage_day1.lat_lt_200 == 1
    classifier = DailyRollup.objects.get(team=team, purpose="classifier")
    assert classifier.prompt is None
    assert classifier.model_name == "gpt-5.4-nano"
    assert DailyRollup.objects.filter(day=dt.date(2026, 11, 22), team=team).count() == 2


def test_rollup_stores_the_all_flagship_counterfactual(ledger):
    usage_rollup_run(now=at(23, 12))

    expected = sum((flagship_cost(r) for r in ledger), Decimal(0))
    stored = DailyRollup.objects.aggregate(total=Sum("flagship_cost_usd"))["total"]
    assert stored == expected
    flagship_row = DailyRollup.objects.get(model_name="gpt-5.4")
    assert flagship_row.flagship_cost_usd == flagship_row.cost_usd  # flagship saves nothing
    nano_row = DailyRollup.objects.get(model_name="gpt-5.4-nano")
    assert nano_row.flagship_cost_usd > nano_row.cost_usd * 10
    reasoning_row = DailyRollup.objects.get(model_name="gpt-5.5")
    assert reasoning_row.flagship_cost_usd < reasoning_row.cost_usd  # dearer than flagship


def test_counterfactual_applies_long_context_and_service_tier_per_record(make_usage, team):
    records = [
        make_usage(team=team, at=at(20, 1), input_tokens=300_000, output_tokens=1000),
        make_usage(team=team, at=at(20, 2), input_tokens=1000, output_tokens=1000),
        make_usage(team=team, at=at(20, 3), input_tokens=300_000, service_tier="flex"),
    ]
    usage_rollup_run(now=at(23, 12))

    stored = DailyRollup.objects.aggregate(total=Sum("flagship_cost_usd"))["total"]
    assert stored == sum((flagship_cost(r) for r in records), Decimal(0))
    # pricing the summed tokens as one call would wrongly apply long context to all three
    assert stored != cost_usd(
        price=price_at(Model.objects.get(name="gpt-5.4"), at(20, 1)),
        input_tokens=601_000,
        output_tokens=2200,
    )


def test_a_price_change_during_the_day_prices_each_part_at_its_own_price(make_usage, team):
    from routing.models import Price

    flagship = Model.objects.get(name="gpt-5.4")
    Price.objects.create(
        model=flagship,
        effective_from=at(20, 12),
        input_per_mtok=Decimal("5"),
        cached_input_per_mtok=Decimal("0.5"),
        output_per_mtok=Decimal("30"),
    )
    morning = make_usage(team=team, at=at(20, 8))
    evening = make_usage(team=team, at=at(20, 18))
    usage_rollup_run(now=at(23, 12))

    stored = DailyRollup.objects.get().flagship_cost_usd
    assert flagship_cost(evening) == 2 * flagship_cost(morning)
    assert stored == flagship_cost(morning) + flagship_cost(evening)


def test_rollup_is_idempotent_and_moves_the_watermark(ledger):
    first = usage_rollup_run(now=at(23, 12))
    rows = list(DailyRollup.objects.order_by("id").values("day", "cost_usd", "requests"))
    second = usage_rollup_run(now=at(23, 12, 5))

    assert first.rolled_until == at(23, 11, 58)
    assert second.rolled_until == at(23, 12, 3)
    again = list(DailyRollup.objects.order_by("id").values("day", "cost_usd", "requests"))
    assert sorted(map(str, again)) == sorted(map(str, rows))
    assert RollupState.objects.get().rolled_until == at(23, 12, 3)


def test_a_late_record_before_the_watermark_is_counted_by_the_next_run(make_usage, team):
    make_usage(team=team, at=at(22, 10))
    usage_rollup_run(now=at(23, 1))
    late = make_usage(team=team, at=at(22, 23, 0))  # written after the run, dated before it

    usage_rollup_run(now=at(23, 2))

    day = DailyRollup.objects.filter(day=dt.date(2026, 11, 22)).aggregate(n=Sum("requests"))
    assert day["n"] == 2
    assert late.cost_usd > 0


def test_records_inside_the_settling_lag_are_left_to_the_raw_read(make_usage, team):
    make_usage(team=team, at=at(23, 11, 59))
    usage_rollup_run(now=at(23, 12))

    assert not DailyRollup.objects.exists()
    assert RollupState.objects.get().rolled_until is None  # nothing rolled: all read raw
    filters = UsageFilters(
        start_day=dt.date(2026, 11, 23), end_day=dt.date(2026, 11, 23), team_ids=(team.id,)
    )
    totals = usage_breakdown(
        filters=filters, dims=["team_id"], context=context_load(now=at(23, 12))
    )
    assert totals[(team.id,)]["requests"] == 1


def test_dashboard_sums_rollups_and_raw_records_without_double_counting(ledger, team, other_team):
    usage_rollup_run(now=at(22, 9))  # the watermark falls inside day 22
    filters = UsageFilters(
        start_day=dt.date(2026, 11, 20),
        end_day=dt.date(2026, 11, 22),
        team_ids=(team.id, other_team.id),
    )
    context = context_load(now=at(23, 12))
    by_day = usage_breakdown(filters=filters, dims=["day"], context=context)

    for day in (20, 21, 22):
        records = [r for r in ledger if r.created_at.day == day]
        totals = by_day[(dt.date(2026, 11, day),)]
        assert totals["requests"] == len(records)
        assert totals["cost_usd"] == sum((r.cost_usd for r in records), Decimal(0))
        assert totals["flagship_cost_usd"] == sum((flagship_cost(r) for r in records), Decimal(0))
    by_model = usage_breakdown(filters=filters, dims=["model_name"], context=context)
    assert sum(t["requests"] for t in by_model.values()) == len(ledger)


def test_days_are_cut_at_midnight_in_the_configured_time_zone(make_usage, team, settings):
    settings.TIME_ZONE = "America/New_York"
    make_usage(team=team, at=at(21, 3))  # 22:00 on the 20th in New York
    make_usage(team=team, at=at(21, 6))  # 01:00 on the 21st

    usage_rollup_run(now=at(23, 12))

    assert list(DailyRollup.objects.order_by("day").values_list("day", "requests")) == [
        (dt.date(2026, 11, 20), 1),
        (dt.date(2026, 11, 21), 1),
    ]


def test_changing_the_time_zone_rebuilds_the_rollups(make_usage, team, settings):
    make_usage(team=team, at=at(21, 3))
    usage_rollup_run(now=at(23, 12))
    assert DailyRollup.objects.get().day == dt.date(2026, 11, 21)

    settings.TIME_ZONE = "America/New_York"
    usage_rollup_run(now=at(23, 12))

    assert DailyRollup.objects.get().day == dt.date(2026, 11, 20)
    assert RollupState.objects.get().time_zone == "America/New_York"


def test_a_record_imported_days_late_recomputes_its_day(make_usage, team):
    make_usage(team=team, at=at(18, 10))
    usage_rollup_run(now=at(23, 1))
    make_usage(team=team, at=at(18, 11))  # far behind the watermark and the reconcile window

    result = usage_rollup_run(now=at(23, 2))

    assert dt.date(2026, 11, 18) in result.days
    assert DailyRollup.objects.get(day=dt.date(2026, 11, 18)).requests == 2
    assert RollupState.objects.get().last_record_id == UsageRecord.objects.order_by("-id")[0].id


def test_rollup_command_rebuilds_from_the_ledger(make_usage, team):
    from django.core.management import call_command

    make_usage(team=team, at=at(20, 10))
    usage_rollup_run(now=at(23, 12))
    DailyRollup.objects.update(requests=99)  # damaged

    out = io.StringIO()
    call_command("rollup_usage", "--rebuild", stdout=out)

    assert DailyRollup.objects.get().requests == 1
    assert "Rolled up" in out.getvalue()


def test_rebuilding_some_days_keeps_the_watermark(make_usage, team):
    make_usage(team=team, at=at(20, 10))
    make_usage(team=team, at=at(21, 10))
    usage_rollup_run(now=at(23, 12))
    watermark = RollupState.objects.get().rolled_until
    DailyRollup.objects.filter(day=dt.date(2026, 11, 20)).delete()

    usage_rollup_rebuild(days=[dt.date(2026, 11, 20)])

    assert DailyRollup.objects.count() == 2
    assert RollupState.objects.get().rolled_until == watermark


SUMMARY_KEY = ("day", "team_id", "prompt_id", "model_name", "tier_name")


def summed_over_purpose() -> dict[tuple, dict]:
    rows = DailyRollup.objects.values(*SUMMARY_KEY).annotate(**{f: Sum(f) for f in SUM_FIELDS})
    return {tuple(row[k] for k in SUMMARY_KEY): row for row in rows.order_by()}


def summaries() -> dict[tuple, dict]:
    rows = DailySummary.objects.values(*SUMMARY_KEY, *SUM_FIELDS)
    return {tuple(row[k] for k in SUMMARY_KEY): row for row in rows}


def test_summaries_are_the_rollups_summed_over_purpose_after_every_run(ledger, make_usage, team):
    make_usage(team=team, at=at(20, 2), prompt="triage", latency_ms=120, purpose="batch")
    usage_rollup_run(now=at(22, 9))
    make_usage(team=team, at=at(21, 23), prompt="triage", purpose="playground")  # late
    usage_rollup_run(now=at(23, 12))

    expected = summed_over_purpose()
    assert summaries() == expected
    assert DailySummary.objects.count() < DailyRollup.objects.count()
    assert sum(row["requests"] for row in expected.values()) == UsageRecord.objects.count()

    DailySummary.objects.update(requests=99)  # damaged
    usage_rollup_rebuild(days=[dt.date(2026, 11, 20), dt.date(2026, 11, 21)])
    assert DailySummary.objects.filter(requests=99).count() == len(
        [key for key in expected if key[0] == dt.date(2026, 11, 22)]
    )
    usage_rollup_rebuild()
    assert summaries() == expected


def test_the_dashboard_reads_summaries_unless_purpose_matters(ledger, team):
    usage_rollup_run(now=at(23, 12))
    # Tell the tables apart: the per-purpose rows now say something else.
    DailyRollup.objects.update(requests=7)
    filters = UsageFilters(
        start_day=dt.date(2026, 11, 20), end_day=dt.date(2026, 11, 22), team_ids=(team.id,)
    )
    context = context_load(now=at(23, 12))

    everything = usage_breakdown(filters=filters, dims=["team_id"], context=context)
    by_purpose = usage_breakdown(filters=filters, dims=["purpose"], context=context)
    classifier = dataclasses.replace(filters, purpose="classifier")
    only = usage_breakdown(filters=classifier, dims=["team_id"], context=context)

    assert everything[(team.id,)]["requests"] == 8  # team A's records, from the summaries
    assert {key: totals["requests"] for key, totals in by_purpose.items()} == {
        ("gateway",): 7 * DailyRollup.objects.filter(team=team, purpose="gateway").count(),
        ("classifier",): 7,
    }
    assert only[(team.id,)]["requests"] == 7
