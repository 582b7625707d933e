"""Savings split by lever (routing, batch/flex, cache) against hand-computed Decimal figures,
from raw records and from rollups alike, on the usage page and in /api/v1/usage/summary.

Seed prices per 1M tokens (input / cached / output): gpt-5.4-nano 0.20 / 0.02 / 1.25,
gpt-5.4-mini 0.75 / 0.075 / 4.50, gpt-5.4 (the flagship) 2.50 / 0.25 / 15.00; gpt-6.1-terra
1.00 / 0.05 / 5.00 with cache writes at 1.25. Batch and flex are 0.5x, priority 2x.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from spend.rollups import local_day, usage_rollup_run
from spend.selectors import UsageFilters, dashboard_build, savings_summary_build

D = Decimal


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


@pytest.fixture
def levers(make_usage, team, other_team, now):
    at = now - dt.timedelta(hours=1)
    # mini, batch: 6000 uncached + 4000 cached in, 2000 out
    #   paid      (6000*0.75 + 4000*0.075 + 2000*4.50) * 0.5 / 1e6 = 0.0069
    #   standard  twice that                                      = 0.0138  → batch 0.0069
    #   uncached  (10000*0.75 + 2000*4.50) * 0.5 / 1e6           = 0.00825 → cache 0.00135
    #   flagship  (6000*2.50 + 4000*0.25 + 2000*15) * 0.5 / 1e6  = 0.023   → routing 0.0161
    make_usage(
        team=team,
        at=at,
        prompt="triage",
        service_tier="batch",
        purpose="batch",
        input_tokens=10_000,
        cached_input_tokens=4000,
        output_tokens=2000,
    )
    # mini, flex: (2000*0.75 + 1000*4.50) * 0.5 / 1e6 = 0.003 → batch/flex 0.003
    #   flagship (2000*2.50 + 1000*15) * 0.5 / 1e6 = 0.01 → routing 0.007
    make_usage(
        team=team,
        at=at,
        prompt="summary",
        service_tier="flex",
        input_tokens=2000,
        output_tokens=1000,
    )
    # the flagship itself, default tier: 2000 uncached + 6000 cached in, 500 out
    #   paid     (2000*2.50 + 6000*0.25 + 500*15) / 1e6 = 0.014
    #   uncached (8000*2.50 + 500*15) / 1e6             = 0.0275 → cache 0.0135; routing 0
    make_usage(
        team=team,
        at=at,
        prompt="triage",
        model="gpt-5.4",
        tier="flagship",
        input_tokens=8000,
        cached_input_tokens=6000,
        output_tokens=500,
    )
    # nano, priority: (1000*0.20 + 100*1.25) * 2 / 1e6 = 0.00065; priority is no lever
    #   flagship (1000*2.50 + 100*15) * 2 / 1e6 = 0.008 → routing 0.00735
    make_usage(
        team=team,
        at=at,
        model="gpt-5.4-nano",
        tier="nano",
        service_tier="priority",
        input_tokens=1000,
        output_tokens=100,
    )
    # another team's cached batch: never in team A's figures
    make_usage(
        team=other_team,
        at=at,
        prompt="triage",
        service_tier="batch",
        input_tokens=50_000,
        cached_input_tokens=40_000,
    )


EXPECTED = {
    "spend": D("0.02455"),
    "routing": D("0.03045"),
    "batch": D("0.0099"),
    "cache": D("0.01485"),
    "total": D("0.0552"),
}


def _filters(team, now) -> UsageFilters:
    """Every record above (at most an hour old), even just after midnight."""
    start = local_day(now - dt.timedelta(hours=2))
    return UsageFilters(start_day=start, end_day=local_day(now), team_ids=(team.id,))


def _split(figures) -> dict[str, Decimal]:
    return {
        "spend": figures.spend,
        "routing": figures.routing_saved,
        "batch": figures.batch_saved,
        "cache": figures.cache_saved,
        "total": figures.saved_total,
    }


@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rollups"])
def test_each_lever_is_priced_exactly_from_the_records(levers, team, now, rolled_up):
    if rolled_up:
        usage_rollup_run(now=now + dt.timedelta(minutes=5))
    board = dashboard_build(filters=_filters(team, now), teams=[team], now=now)
    assert _split(board.total) == EXPECTED
    assert board.total.cached_input_tokens == 10_000
    assert board.total.cached_share_pct == D("47.6")  # 10000 of 21000


@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rollups"])
def test_cache_savings_and_share_per_prompt_and_model(levers, team, now, rolled_up):
    if rolled_up:
        usage_rollup_run(now=now + dt.timedelta(minutes=5))
    board = dashboard_build(filters=_filters(team, now), teams=[team], now=now)
    rows = {row.label: (row.cached_share_pct, row.cache_saved) for row in board.caching}
    assert rows == {
        "team-a/triage · gpt-5.4": (D("75.0"), D("0.0135")),
        "team-a/triage · gpt-5.4-mini": (D("40.0"), D("0.00135")),
        "team-a/summary · gpt-5.4-mini": (D("0.0"), D("0")),
        "(no prompt) · gpt-5.4-nano": (D("0.0"), D("0")),
    }
    assert [row.label for row in board.caching][:2] == [
        "team-a/triage · gpt-5.4",
        "team-a/triage · gpt-5.4-mini",
    ]


def test_a_cache_write_premium_counts_against_the_cache(make_usage, team, now):
    # terra: 4000 uncached, 2000 cached, 4000 written
    #   paid     (4000*1.00 + 2000*0.05 + 4000*1.25) / 1e6 = 0.0091
    #   uncached 10000*1.00 / 1e6                           = 0.01 → cache 0.0009
    make_usage(
        team=team,
        at=now - dt.timedelta(minutes=10),
        model="gpt-6.1-terra",
        input_tokens=10_000,
        cached_input_tokens=2000,
        cache_write_tokens=4000,
        output_tokens=0,
    )
    summary = savings_summary_build(filters=_filters(team, now))
    assert summary.total.spend == D("0.0091")
    assert summary.total.cache_saved == D("0.0009")
    assert summary.total.batch_saved == D("0")


def test_long_context_levers_use_the_long_context_price(make_usage, team, now):
    # mini batch above 272K input: input prices x2, output x1.5
    #   paid     ((200000*0.75 + 100000*0.075)*2 + 1000*4.50*1.5) * 0.5 / 1e6 = 0.160875
    #   standard twice that                                      → batch 0.160875
    #   uncached (300000*0.75*2 + 1000*4.50*1.5) * 0.5 / 1e6 = 0.228375 → cache 0.0675
    make_usage(
        team=team,
        at=now - dt.timedelta(minutes=10),
        service_tier="batch",
        input_tokens=300_000,
        cached_input_tokens=100_000,
        output_tokens=1000,
    )
    summary = savings_summary_build(filters=_filters(team, now))
    assert summary.total.spend == D("0.160875")
    assert summary.total.batch_saved == D("0.160875")
    assert summary.total.cache_saved == D("0.0675")


def test_the_usage_page_shows_the_split(client, alice, levers):
    client.force_login(alice)
    html = client.get(reverse("spend:dashboard")).content.decode()
    for name, amount in (
        ("routing", "0.03045"),
        ("batch", "0.0099"),
        ("cache", "0.01485"),
        ("total", "0.0552"),
    ):
        match = re.search(
            rf'data-testid="saved-{name}"><span class="money" data-usd="([^"]+)"', html
        )
        assert match, name
        assert D(match.group(1)) == D(amount), name
    assert "47.6% of input was cached" in html
    assert 'data-testid="caching-table"' in html
    assert "team-b" not in html


def _summary(client: APIClient, **params) -> dict:
    response = client.get("/api/v1/usage/summary", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_summary_api_splits_saved_by_lever(levers, api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    body = _summary(client)
    assert body["teams"] == ["team-a"]
    total = body["total"]
    assert D(total["cost_usd"]) == EXPECTED["spend"]
    assert {k: D(v) for k, v in total["saved"].items()} == {
        "routing_usd": EXPECTED["routing"],
        "batch_flex_usd": EXPECTED["batch"],
        "cache_usd": EXPECTED["cache"],
        "total_usd": EXPECTED["total"],
    }
    assert total["cached_input_share_pct"] == "47.6"
    rows = {(r["prompt"], r["model"]): r for r in body["by_prompt_model"]}
    assert set(rows) == {
        ("triage", "gpt-5.4-mini"),
        ("triage", "gpt-5.4"),
        ("summary", "gpt-5.4-mini"),
        (None, "gpt-5.4-nano"),
    }
    triage_mini = rows[("triage", "gpt-5.4-mini")]
    assert triage_mini["prompt_team"] == "team-a"
    assert rows[(None, "gpt-5.4-nano")]["prompt_team"] is None
    assert D(triage_mini["saved"]["batch_flex_usd"]) == D("0.0069")
    assert D(triage_mini["saved"]["cache_usd"]) == D("0.00135")
    assert D(triage_mini["saved"]["routing_usd"]) == D("0.0161")


def test_the_summary_api_keeps_teams_apart(levers, api_key, charlie):
    client = APIClient()
    client.force_authenticate(charlie)
    body = _summary(client)
    assert body["teams"] == ["team-b"]
    assert D(body["total"]["saved"]["cache_usd"]) > 0
    assert client.get("/api/v1/usage/summary", {"team": "team-a"}).status_code == 404
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert keyed.get("/api/v1/usage/summary", {"team": "team-b"}).status_code == 404


def test_the_summary_api_rejects_a_reversed_range(api_key, db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = client.get("/api/v1/usage/summary", {"since": "2026-11-10", "until": "2026-11-01"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["until"]


def test_the_schema_declares_the_split(client, db):
    schema = client.get("/api/schema/?format=json").json()
    saved = schema["components"]["schemas"]["Saved"]["properties"]
    assert set(saved) == {"routing_usd", "batch_flex_usd", "cache_usd", "total_usd"}
    assert "/api/v1/usage/summary" in schema["paths"]


@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rollups"])
def test_each_record_is_priced_at_the_price_in_force_when_it_ran(make_usage, team, now, rolled_up):
    from routing.models import Model, Price

    mini = Model.objects.get(name="gpt-5.4-mini")
    change = now - dt.timedelta(minutes=30)
    # from `change` on, mini costs twice as much: 1.50 / 0.15 / 9.00
    Price.objects.create(
        model=mini,
        effective_from=change,
        input_per_mtok=D("1.50"),
        cached_input_per_mtok=D("0.15"),
        output_per_mtok=D("9.00"),
    )
    for minutes in (40, 20):  # one record under each price
        make_usage(
            team=team,
            at=now - dt.timedelta(minutes=minutes),
            service_tier="batch",
            input_tokens=10_000,
            cached_input_tokens=4000,
            output_tokens=2000,
        )
    if rolled_up:
        usage_rollup_run(now=now + dt.timedelta(minutes=5))
    summary = savings_summary_build(filters=_filters(team, now))
    # old price: paid 0.0069, batch 0.0069, cache 0.00135 (as above); new price: each doubled
    assert summary.total.spend == D("0.0207")
    assert summary.total.batch_saved == D("0.0207")
    assert summary.total.cache_saved == D("0.00405")


@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rollups"])
def test_the_daily_csv_has_a_column_per_lever(client, alice, levers, now, rolled_up):
    if rolled_up:
        usage_rollup_run(now=now + dt.timedelta(minutes=5))
    client.force_login(alice)
    response = client.get(reverse("spend:export-rollups"), {"range": "7d"})
    lines = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    totals = {
        lever: sum(D(line[column]) for line in lines)
        for lever, column in (
            ("spend", "cost_usd"),
            ("routing", "savings_usd"),
            ("batch", "batch_saved_usd"),
            ("cache", "cache_saved_usd"),
        )
    }
    assert totals == {name: EXPECTED[name] for name in totals}


def test_a_team_row_saved_counts_every_lever(client, alice, levers):
    client.force_login(alice)
    html = client.get(reverse("spend:dashboard")).content.decode()
    row = re.search(r'<tr class="clickable" data-team="team-a">.*?</tr>', html, re.S).group(0)
    cell = re.search(
        r'data-testid="row-saved" title="([^"]+)"><span class="money" data-usd="([^"]+)"', row
    )
    assert D(cell.group(2)) == EXPECTED["total"]
    assert cell.group(1) == "routing $0.03045 · batch/flex $0.0099 · cache $0.01485"
