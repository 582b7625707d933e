"""The request explorer's API: one row per request, every filter, keyset pages that hold
still under inserts, isolation between teams, and content shown only where it is kept."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.keys import api_key_resolve_sync
from accounts.models import Role, User
from spend.models import DailyRollup, UsageRecord
from spend.rollups import usage_rollup_run
from tests.spend.test_api import key_client, user_client

NOW = dt.datetime.now(dt.UTC)
FALLBACK_REASON = "Routine tasks to mini; gpt-5.4-mini failed (server_error)"
ESCALATED_REASON = "tier mini; escalated to flagship: gpt-5.4-mini invalid JSON"


def at(minutes_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def ids(response) -> list[str]:
    return [row["request_id"] for row in rows(response)]


@pytest.fixture
def requests(make_usage, team, other_team, api_key):
    key = api_key_resolve_sync(api_key)
    fell_back = [
        make_usage(
            team=team,
            at=at(50),
            request_id="req_fallback",
            status="error",
            error_code="server_error",
            error_message="upstream 500",
            output_tokens=0,
            input_tokens=0,
            cost=Decimal(0),
            attempt=1,
            rule="Routine tasks to mini",
        ),
        make_usage(
            team=team,
            at=at(49),
            request_id="req_fallback",
            model="gpt-6.1-terra",
            attempt=2,
            rule="Routine tasks to mini",
            route_reason=FALLBACK_REASON,
            latency_ms=2500,
            api_key=key,
        ),
    ]
    escalated = [
        make_usage(
            team=team,
            at=at(40),
            request_id="req_escalated",
            status="error",
            error_code="failed_check",
            error_message="invalid JSON",
            attempt=1,
            prompt="triage",
        ),
        make_usage(
            team=team,
            at=at(39),
            request_id="req_escalated",
            model="gpt-5.4",
            tier="flagship",
            attempt=2,
            prompt="triage",
            route_reason=ESCALATED_REASON,
        ),
    ]
    return {
        "fallback": fell_back,
        "escalated": escalated,
        "plain": make_usage(team=team, at=at(30), request_id="req_plain", prompt="triage"),
        "nano": make_usage(
            team=team, at=at(20), request_id="req_nano", model="gpt-5.4-nano", tier="nano"
        ),
        "failed": make_usage(
            team=team,
            at=at(10),
            request_id="req_failed",
            status="error",
            error_code="timeout",
            cost=Decimal(0),
            output_tokens=0,
        ),
        "refused": make_usage(
            team=team,
            at=at(5),
            request_id="req_refused",
            status="refused",
            error_code="budget_exceeded",
            error_message="The team budget (monthly, $1) cannot cover this request",
            cost=Decimal(0),
            input_tokens=0,
            output_tokens=0,
            latency_ms=0,
        ),
        "shadow": make_usage(team=team, at=at(3), request_id="req_shadow", purpose="shadow"),
        "old": make_usage(team=team, at=NOW - dt.timedelta(days=20), request_id="req_old"),
        "other": make_usage(team=other_team, at=at(1), request_id="req_other_team"),
    }


RECENT = [
    "req_shadow",
    "req_refused",
    "req_failed",
    "req_nano",
    "req_plain",
    "req_escalated",
    "req_fallback",
]


def test_the_list_has_one_row_per_request_newest_first(requests, alice):
    listed = rows(user_client(alice).get("/api/v1/requests"))

    assert [row["request_id"] for row in listed] == RECENT
    fallback = listed[-1]
    assert fallback["attempts"] == 2
    assert fallback["fell_back"] is True
    assert fallback["model"] == "gpt-6.1-terra"
    assert fallback["status"] == "success"
    assert Decimal(fallback["cost_usd"]) == sum(r.cost_usd for r in requests["fallback"])
    assert listed[-2]["escalated"] is True
    assert listed[-2]["requested_tier"] == "mini"
    assert listed[-2]["tier"] == "flagship"


def test_the_range_all_reaches_older_requests(requests, alice):
    assert ids(user_client(alice).get("/api/v1/requests", {"range": "all"}))[-1] == "req_old"
    assert "req_old" not in ids(user_client(alice).get("/api/v1/requests", {"range": "24h"}))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "error"}, ["req_failed"]),
        ({"status": "failed_check"}, []),
        ({"status": "refused"}, ["req_refused"]),
        ({"status": "success", "model": "gpt-5.4-nano"}, ["req_nano"]),
        ({"tier": "flagship"}, ["req_escalated"]),
        ({"purpose": "shadow"}, ["req_shadow"]),
        ({"route": "fell_back"}, ["req_fallback"]),
        ({"route": "escalated"}, ["req_escalated"]),
        ({"rule": "Routine tasks to mini"}, ["req_fallback"]),
        ({"prompt": "triage"}, ["req_plain", "req_escalated"]),
        ({"prompt": "triage", "version": 1}, ["req_plain", "req_escalated"]),
        ({"min_latency": 2000}, ["req_fallback"]),
        ({"q": "req_na"}, ["req_nano"]),
        (
            {"range": "custom", "since": at(35).isoformat(), "until": at(15).isoformat()},
            ["req_nano", "req_plain"],
        ),
    ],
)
def test_each_filter_narrows_the_list(requests, alice, params, expected):
    assert ids(user_client(alice).get("/api/v1/requests", params)) == expected


def test_the_key_and_min_cost_filters(requests, alice, api_key):
    key = api_key_resolve_sync(api_key)
    client = user_client(alice)

    assert ids(client.get("/api/v1/requests", {"key": key.prefix})) == ["req_fallback"]
    threshold = requests["escalated"][1].cost_usd
    expensive = ids(client.get("/api/v1/requests", {"min_cost": str(threshold)}))
    assert expensive == ["req_escalated"]


def test_pages_hold_still_while_new_requests_arrive(requests, alice, make_usage, team):
    client = user_client(alice)
    first = client.get("/api/v1/requests", {"page_size": 3}).json()
    assert [r["request_id"] for r in first["results"]] == RECENT[:3]

    for minute in range(4):  # newer requests land on page one, not on the pages after it
        make_usage(team=team, at=at(0.5 - minute / 10), request_id=f"req_new_{minute}")
    seen = [r["request_id"] for r in first["results"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get("/api/v1/requests", {"page_size": 3, "cursor": cursor}).json()
        seen += [r["request_id"] for r in page["results"]]
        cursor = page["next_cursor"]

    assert seen == RECENT


@pytest.mark.parametrize("sort", ["cost", "latency"])
def test_sorted_pages_list_every_request_once(requests, alice, sort):
    client = user_client(alice)
    seen, cursor = [], None
    while True:
        params = {"page_size": 2, "sort": sort, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/requests", params).json()
        seen += page["results"]
        cursor = page["next_cursor"]
        if not cursor:
            break

    # sorted by the request's last record (its answer): by that record's cost or latency
    last = {
        r.request_id: r
        for r in UsageRecord.objects.filter(request_id__in=RECENT).order_by("attempt")
    }
    column = "cost_usd" if sort == "cost" else "latency_ms"
    expected = sorted(RECENT, key=lambda rid: (getattr(last[rid], column), last[rid].id))
    assert [r["request_id"] for r in seen] == expected[::-1]


def test_a_cursor_of_another_sort_or_garbage_is_a_400(requests, alice):
    client = user_client(alice)
    cursor = client.get("/api/v1/requests", {"page_size": 2}).json()["next_cursor"]

    wrong_sort = client.get("/api/v1/requests", {"cursor": cursor, "sort": "cost"})
    garbage = client.get("/api/v1/requests", {"cursor": "not-a-cursor"})
    bad_filter = client.get("/api/v1/requests", {"min_latency": "-3", "status": "nope"})

    assert wrong_sort.status_code == garbage.status_code == bad_filter.status_code == 400
    assert garbage.json()["error"]["code"] == "bad_request"
    assert set(bad_filter.json()["error"]["details"]) == {"min_latency", "status"}


# --------------------------------------------------------------------------- isolation


def test_people_see_their_teams_requests_only(requests, alice, bob, charlie):
    assert ids(user_client(bob).get("/api/v1/requests")) == RECENT
    assert ids(user_client(charlie).get("/api/v1/requests")) == ["req_other_team"]
    assert user_client(charlie).get("/api/v1/requests", {"team": "team-a"}).status_code == 404


def test_a_key_sees_its_own_team_only(requests, api_key, other_api_key):
    assert ids(key_client(api_key).get("/api/v1/requests")) == RECENT
    assert ids(key_client(other_api_key).get("/api/v1/requests")) == ["req_other_team"]
    assert key_client(other_api_key).get("/api/v1/requests/req_plain").status_code == 404


def test_another_teams_request_is_a_404_like_a_missing_one(requests, charlie):
    client = user_client(charlie)
    hidden = client.get("/api/v1/requests/req_plain")
    missing = client.get("/api/v1/requests/req_nowhere")

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"


def test_nobody_signed_in_gets_401(requests):
    assert APIClient().get("/api/v1/requests").status_code in (401, 403)


# --------------------------------------------------------------------------- the detail


def test_the_detail_has_every_attempt_and_why_the_first_was_dropped(requests, alice):
    detail = user_client(alice).get("/api/v1/requests/req_fallback").json()

    assert [(a["model"], a["status"]) for a in detail["timeline"]] == [
        ("gpt-5.4-mini", "error"),
        ("gpt-6.1-terra", "success"),
    ]
    assert detail["route"]["reason"] == FALLBACK_REASON
    assert detail["route"]["dropped"] == ["gpt-5.4-mini (mini): server_error"]
    assert detail["headers"]["x-switchboard-model"] == "gpt-6.1-terra"
    assert detail["headers"]["x-request-id"] == "req_fallback"


def test_the_detail_breaks_the_cost_into_components_at_the_price_of_the_day(
    make_usage, team, alice
):
    make_usage(
        team=team,
        at=at(1),
        request_id="req_parts",
        model="gpt-5.4",
        tier="flagship",
        input_tokens=10_000,
        cached_input_tokens=4_000,
        output_tokens=3_000,
        reasoning_tokens=1_000,
        service_tier="batch",
    )
    attempt = user_client(alice).get("/api/v1/requests/req_parts").json()["timeline"][0]

    parts = {p["name"]: p for p in attempt["cost_parts"]}
    assert {n: p["tokens"] for n, p in parts.items()} == {
        "input": 6_000,
        "cached input": 4_000,
        "output": 2_000,
        "reasoning": 1_000,
    }
    assert Decimal(parts["input"]["price_per_mtok"]) == Decimal("2.5")
    assert Decimal(parts["cached input"]["price_per_mtok"]) == Decimal("0.25")
    assert Decimal(parts["output"]["multiplier"]) == Decimal("0.5")
    assert sum(Decimal(p["cost_usd"]) for p in parts.values()) == Decimal(attempt["cost_usd"])
    assert attempt["price"]["effective_from"]


def test_a_refused_request_says_why_and_has_no_upstream_attempt(requests, alice):
    detail = user_client(alice).get("/api/v1/requests/req_refused").json()

    assert detail["status"] == "refused"
    assert detail["error_code"] == "budget_exceeded"
    assert [a["kind"] for a in detail["timeline"]] == ["refusal"]
    assert detail["timeline"][0]["cost_parts"] == []
    assert "x-switchboard-model" not in detail["headers"]


BODY = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Where is my parcel?"}],
    "metadata": {"customer": "c-42"},
}


def test_content_is_shown_where_the_team_keeps_it(make_usage, team, alice):
    team.store_content = True
    team.save()
    make_usage(
        team=team,
        at=at(1),
        request_id="req_stored",
        request_body=BODY,
        response_body={"output_text": "On its way."},
    )
    detail = user_client(alice).get("/api/v1/requests/req_stored").json()

    assert detail["content"] == {
        "stored": True,
        "reason": None,
        "request": BODY,
        "response": {"output_text": "On its way."},
    }
    assert detail["metadata"] == {"customer": "c-42"}


def test_content_not_stored_says_it_is_a_team_setting(requests, alice):
    content = user_client(alice).get("/api/v1/requests/req_plain").json()["content"]

    assert content == {
        "stored": False,
        "reason": "not stored (team setting)",
        "request": None,
        "response": None,
    }


def test_content_past_the_retention_period_says_it_was_purged(make_usage, team, alice):
    team.store_content, team.retention_days = True, 7
    team.save()
    make_usage(team=team, at=NOW - dt.timedelta(days=9), request_id="req_purged")

    content = user_client(alice).get("/api/v1/requests/req_purged").json()["content"]

    assert content["stored"] is False
    assert content["reason"] == "purged (kept 7 days: team setting)"


def test_finance_sees_every_teams_costs_but_not_their_content(make_usage, team, other_team):
    team.store_content = True
    team.save()
    make_usage(team=team, at=at(1), request_id="req_stored", request_body=BODY)
    finance = User.objects.create_user("fiona", "f@example.com", "pw")
    finance.groups.set([Group.objects.get_or_create(name=Role.FINANCE)[0]])

    detail = user_client(finance).get("/api/v1/requests/req_stored").json()

    assert detail["cost_usd"]
    assert detail["content"]["request"] is None
    assert "costs, not content" in detail["content"]["reason"]


def test_refusals_are_not_counted_as_usage_in_the_rollups(requests, team):
    usage_rollup_run()

    rolled = DailyRollup.objects.filter(team=team).aggregate(n=Sum("requests"))["n"]
    assert rolled == UsageRecord.objects.filter(team=team).exclude(status="refused").count()
    assert not DailyRollup.objects.filter(model_name="", team=team).exists()
