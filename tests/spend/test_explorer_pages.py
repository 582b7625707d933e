"""The request explorer's pages, "open in playground", and the home page's overview, for a
teammate (bob), an outsider (charlie) and finance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import Role, User
from spend.budgets import budget_set

NOW = dt.datetime.now(dt.UTC)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def logged(make_usage, team, other_team):
    team.store_content = True
    team.save()
    return {
        "ok": make_usage(
            team=team,
            at=NOW - dt.timedelta(minutes=5),
            request_id="req_ok",
            request_body={
                "instructions": "Answer briefly.",
                "input": [{"role": "user", "content": "Where is my parcel?"}],
            },
            response_body={"output_text": "On its way."},
        ),
        "failed": make_usage(
            team=team,
            at=NOW - dt.timedelta(minutes=3),
            request_id="req_failed",
            status="error",
            error_code="timeout",
            error_message="no answer within 30 s",
            cost=Decimal(0),
        ),
        "other": make_usage(team=other_team, at=NOW, request_id="req_b_secret"),
    }


def test_the_list_shows_the_teams_requests_and_keeps_the_filters(logged, bob):
    response = logged_in(bob).get("/requests/", {"status": "error", "range": "24h"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-request="req_failed"' in html
    assert 'data-request="req_ok"' not in html
    assert "req_b_secret" not in html
    assert '<option value="error" selected>' in html


def test_the_drawer_has_its_own_url_with_the_timeline_and_content(logged, bob):
    response = logged_in(bob).get("/requests/req_ok/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="timeline"' in html
    assert "Where is my parcel?" in html
    assert "/playground/?team=team-a&amp;request=req_ok" in html


def test_the_drawer_alone_comes_back_to_htmx(logged, bob):
    response = logged_in(bob).get("/requests/req_failed/", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith("<aside")
    assert "no answer within 30 s" in html


def test_an_outsider_gets_404_for_another_teams_request(logged, charlie):
    client = logged_in(charlie)

    assert client.get("/requests/req_ok/").status_code == 404
    assert "req_ok" not in client.get("/requests/").content.decode()
    assert client.get("/requests/", {"team": "team-a"}).status_code == 404


def test_signed_out_visitors_are_sent_to_log_in(logged):
    assert Client().get("/requests/").status_code == 302


def test_open_in_playground_fills_a_comparison_with_the_input_and_other_tiers(logged, bob, catalog):
    response = logged_in(bob).get("/playground/", {"team": "team-a", "request": "req_ok"})

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="replay-notice"' in html
    assert "Where is my parcel?</textarea>" in html
    assert "Answer briefly.</textarea>" in html
    targets = [c["spec"].target for c in response.context["columns"]]
    assert targets == ["model:gpt-5.4-mini", "tier:nano", "tier:flagship", "tier:reasoning"]


def test_open_in_playground_ignores_another_teams_request(logged, charlie, catalog):
    response = logged_in(charlie).get("/playground/", {"team": "team-b", "request": "req_ok"})

    assert response.status_code == 200
    assert response.context["replay"] is None


def test_the_home_page_is_an_overview_of_the_users_teams(logged, bob, team):
    budget_set(team=team, limit_usd=Decimal("50"))

    response = logged_in(bob).get("/")

    html = response.content.decode()
    assert response.status_code == 200
    rows = {row.team.slug: row for row in response.context["overview"].teams}
    assert list(rows) == ["team-a"]
    assert rows["team-a"].today.requests == 2
    assert rows["team-a"].today.errors == 1
    assert rows["team-a"].month.spend == logged["ok"].cost_usd
    assert rows["team-a"].budget.limit == Decimal("50")
    assert [r.request_id for r in response.context["overview"].failures] == ["req_failed"]
    assert 'href="/requests/req_failed/"' in html


def test_finance_sees_every_team_on_the_overview(logged):
    finance = User.objects.create_user("fiona", "f@example.com", "pw")
    finance.groups.set([Group.objects.get_or_create(name=Role.FINANCE)[0]])

    response = logged_in(finance).get("/")

    assert {row.team.slug for row in response.context["overview"].teams} >= {"team-a", "team-b"}
