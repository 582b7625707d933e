from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from spend.rollups import local_day, usage_rollup_run

USAGE = reverse("spend:export-usage")
DAILY = reverse("spend:export-rollups")


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def ledger(make_usage, team, other_team):
    now = timezone.now()
    records = [
        make_usage(team=team, at=now - dt.timedelta(days=2), prompt="triage"),
        make_usage(team=team, at=now - dt.timedelta(days=1), model="gpt-5.4", tier="flagship"),
        make_usage(team=team, at=now - dt.timedelta(days=1), prompt="triage", status="error"),
        make_usage(team=other_team, at=now - dt.timedelta(days=1), prompt="hidden"),
    ]
    usage_rollup_run(now=now - dt.timedelta(hours=3))
    records.append(make_usage(team=team, at=now - dt.timedelta(minutes=1), rule="=HYPERLINK(1)"))
    return records


def test_usage_csv_has_every_record_of_the_users_teams_with_exact_costs(
    client, alice, ledger, team
):
    client.force_login(alice)
    lines = rows(client.get(USAGE, {"range": "7d"}))

    mine = sorted((r for r in ledger if r.team_id == team.id), key=lambda r: r.created_at)
    assert [line["request_id"] for line in lines] == [r.request_id for r in mine]
    assert [Decimal(line["cost_usd"]) for line in lines] == [r.cost_usd for r in mine]
    assert lines[0]["prompt"] == "triage"
    assert lines[0]["team"] == "team-a"
    assert {line["status"] for line in lines} == {"success", "error"}
    assert "hidden" not in {line["prompt"] for line in lines}
    assert lines[-1]["rule"] == "'=HYPERLINK(1)"  # never a live formula in a spreadsheet
    assert dt.datetime.fromisoformat(lines[0]["created_at"]) == mine[0].created_at


def test_usage_csv_applies_the_dashboard_filters(client, alice, ledger):
    client.force_login(alice)
    lines = rows(client.get(USAGE, {"range": "7d", "model": "gpt-5.4"}))
    assert [line["model"] for line in lines] == ["gpt-5.4"]


def test_daily_csv_totals_equal_the_records_rollups_and_todays(client, alice, ledger, team):
    client.force_login(alice)
    lines = rows(client.get(DAILY, {"range": "7d"}))

    mine = [r for r in ledger if r.team_id == team.id]
    assert sum(int(line["requests"]) for line in lines) == len(mine)
    assert sum(Decimal(line["cost_usd"]) for line in lines) == sum(r.cost_usd for r in mine)
    assert sum(int(line["errors"]) for line in lines) == 1
    assert {line["team"] for line in lines} == {"team-a"}
    today = local_day(timezone.now()).isoformat()
    assert today in {line["day"] for line in lines}
    for line in lines:
        saved = Decimal(line["flagship_cost_usd"]) - Decimal(line["cost_usd"])
        assert Decimal(line["savings_usd"]) == saved


def test_exports_check_team_access(client, charlie, ledger, team):
    client.force_login(charlie)
    assert client.get(USAGE, {"team": team.slug}).status_code == 404
    assert client.get(DAILY, {"team": team.slug}).status_code == 404
    assert len(rows(client.get(USAGE, {"range": "7d"}))) == 1


def test_exports_need_a_login_and_valid_filters(client, alice):
    assert client.get(USAGE).status_code == 302
    client.force_login(alice)
    response = client.get(DAILY, {"range": "custom", "start": "2026-02-30"})
    assert response.status_code == 400
