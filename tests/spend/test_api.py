from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from accounts.keys import api_key_resolve_sync
from accounts.models import Membership, Role, User
from spend.models import Budget
from spend.periods import period_start

NOW = dt.datetime.now(dt.UTC)


def at(hours_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours_ago)


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def user_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def ledger(make_usage, team, other_team):
    return {
        "a1": make_usage(team=team, at=at(50), prompt="triage", model="gpt-5.4-mini"),
        "a2": make_usage(team=team, at=at(30), prompt="triage", model="gpt-5.4", tier="flagship"),
        "a3": make_usage(
            team=team, at=at(20), purpose="classifier", model="gpt-5.4-nano", tier="nano"
        ),
        "a4": make_usage(team=team, at=at(10), prompt="summary", status="error"),
        "a5": make_usage(team=team, at=at(1), prompt="triage", service_tier="batch"),
        "b1": make_usage(team=other_team, at=at(5), prompt="triage"),
        "b2": make_usage(team=other_team, at=at(2), prompt="secret"),
    }


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["request_id"] for row in response.json()["results"]]


def test_a_key_lists_only_its_teams_usage_newest_first(ledger, api_key):
    response = key_client(api_key).get("/api/v1/usage")
    expected = [ledger[k].request_id for k in ("a5", "a4", "a3", "a2", "a1")]
    assert ids(response) == expected
    first = response.json()["results"][0]
    assert first["team"] == "team-a"
    assert first["prompt"] == "triage"
    assert first["prompt_version"] == 1
    assert first["cost_usd"] == str(ledger["a5"].cost_usd.quantize(Decimal("1e-10")))
    assert isinstance(first["cost_usd"], str)
    assert first["service_tier"] == "batch"
    assert "request_body" not in first


def test_another_teams_key_sees_none_of_it(ledger, other_api_key):
    listed = ids(key_client(other_api_key).get("/api/v1/usage"))
    assert listed == [ledger["b2"].request_id, ledger["b1"].request_id]
    assert key_client(other_api_key).get("/api/v1/usage", {"team": "team-a"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "gpt-5.4"}, ["a2"]),
        ({"tier": "nano"}, ["a3"]),
        ({"purpose": "classifier"}, ["a3"]),
        ({"status": "error"}, ["a4"]),
        ({"prompt": "triage"}, ["a5", "a2", "a1"]),
        ({"since": (NOW - dt.timedelta(hours=25)).isoformat()}, ["a5", "a4", "a3"]),
        (
            {
                "since": (NOW - dt.timedelta(hours=40)).isoformat(),
                "until": (NOW - dt.timedelta(hours=15)).isoformat(),
            },
            ["a3", "a2"],
        ),
    ],
)
def test_usage_filters(ledger, api_key, params, expected):
    listed = ids(key_client(api_key).get("/api/v1/usage", params))
    assert listed == [ledger[k].request_id for k in expected]


def test_filter_by_request_id_finds_one_record(ledger, api_key):
    wanted = ledger["a3"].request_id
    assert ids(key_client(api_key).get("/api/v1/usage", {"request_id": wanted})) == [wanted]


def test_cursor_pages_walk_every_record_once(ledger, api_key):
    client = key_client(api_key)
    seen, url, pages = [], "/api/v1/usage?page_size=2", 0
    while url:
        body = client.get(url).json()
        seen += [row["request_id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 3
    assert sorted(seen) == sorted(ledger[k].request_id for k in ledger if k.startswith("a"))


def test_bad_filters_get_a_400_in_the_api_error_shape(api_key):
    response = key_client(api_key).get("/api/v1/usage", {"since": "last tuesday"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "since" in error["details"]
    assert key_client(api_key).get("/api/v1/usage", {"purpose": "nope"}).status_code == 400


def test_no_credentials_get_401(db):
    assert APIClient().get("/api/v1/usage").status_code == 401
    assert APIClient().get("/api/v1/budget").status_code == 401
    assert key_client("sb_" + "x" * 40).get("/api/v1/usage").status_code == 401


def test_session_users_see_their_teams_and_finance_sees_all(ledger, alice, bob, charlie):
    assert len(ids(user_client(alice).get("/api/v1/usage"))) == 5
    assert len(ids(user_client(bob).get("/api/v1/usage"))) == 5
    assert ids(user_client(charlie).get("/api/v1/usage")) == [
        ledger["b2"].request_id,
        ledger["b1"].request_id,
    ]
    assert user_client(charlie).get("/api/v1/usage", {"team": "team-a"}).status_code == 404

    finance = User.objects.create_user("fiona", "f@example.com", "pw")
    finance.groups.set(Group.objects.filter(name=Role.FINANCE))
    assert len(ids(user_client(finance).get("/api/v1/usage"))) == 7
    assert len(ids(user_client(finance).get("/api/v1/usage", {"team": "team-b"}))) == 2


@pytest.fixture
def team_budget(team) -> Budget:
    return Budget.objects.create(
        team=team,
        limit_usd=Decimal("50"),
        spent_usd=Decimal("42"),
        reserved_usd=Decimal("1.5"),
        period_start=period_start("monthly", NOW),
    )


def test_a_key_reads_its_teams_budget(team_budget, api_key):
    body = key_client(api_key).get("/api/v1/budget").json()

    assert body["team"] == "team-a"
    assert body["budget"]["limit_usd"] == "50.0000000000"
    assert body["budget"]["spent_usd"] == "42.0000000000"
    assert body["budget"]["remaining_usd"] == "6.5000000000"
    assert body["budget"]["used_pct"] == "84.0"
    assert body["budget"]["state"] == "warning"
    assert body["budget"]["period"] == "monthly"
    assert body["budget"]["period_end"] is not None
    assert body["key_budget"] is None
    assert body["limiting"]["scope"] == "team"  # under a team budget: the team's limit


def test_a_key_with_its_own_budget_sees_both_and_the_tighter_one(team_budget, api_key, team):
    key = api_key_resolve_sync(api_key)
    Budget.objects.create(
        team=team,
        api_key=key,
        limit_usd=Decimal("5"),
        spent_usd=Decimal("1"),
        period="daily",
        period_start=period_start("daily", NOW),
    )
    body = key_client(api_key).get("/api/v1/budget").json()
    assert body["key_budget"]["limit_usd"] == "5.0000000000"
    assert body["key_budget"]["api_key"] == key.prefix
    assert body["limiting"]["scope"] == "key"


def test_a_team_without_a_budget_says_so(other_api_key):
    body = key_client(other_api_key).get("/api/v1/budget").json()
    assert body == {"team": "team-b", "budget": None, "key_budget": None, "limiting": None}


def test_budget_isolation_for_keys_and_users(
    team_budget, other_api_key, alice, charlie, other_team
):
    assert key_client(other_api_key).get("/api/v1/budget", {"team": "team-a"}).status_code == 404
    assert user_client(charlie).get("/api/v1/budget", {"team": "team-a"}).status_code == 404
    assert user_client(alice).get("/api/v1/budget").json()["budget"]["limit_usd"] == "50.0000000000"

    Membership.objects.create(user=alice, team=other_team)
    response = user_client(alice).get("/api/v1/budget")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"teams": ["team-a", "team-b"]}
    assert user_client(alice).get("/api/v1/budget", {"team": "team-a"}).status_code == 200
