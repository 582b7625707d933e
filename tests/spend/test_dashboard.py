from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import api_key_create
from spend.models import AlertEvent, Budget
from spend.periods import period_start
from spend.rollups import local_day, usage_rollup_run

URL = reverse("spend:dashboard")


def card(html: str, name: str) -> str:
    match = re.search(rf'data-testid="card-{name}">(.*?)</div>', html, re.S)
    assert match, f"no {name} card"
    return match.group(1)


def card_usd(html: str) -> Decimal:
    match = re.search(r'data-testid="card-spend"><span class="money" data-usd="([^"]+)"', html)
    assert match
    return Decimal(match.group(1))


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


@pytest.fixture
def week(make_usage, team, other_team, now):
    """Seven days of usage ending now; the older days rolled up, today partly raw."""
    today = local_day(now)
    records = []
    for back in range(7):
        day_noon = dt.datetime.combine(today - dt.timedelta(days=back), dt.time(12)).replace(
            tzinfo=dt.UTC
        )
        when = min(day_noon, now - dt.timedelta(minutes=30))
        records.append(make_usage(team=team, at=when, prompt="triage", output_tokens=100 + back))
        records.append(
            make_usage(team=team, at=when, model="gpt-5.4", tier="flagship", latency_ms=2500)
        )
        records.append(
            make_usage(team=other_team, at=when, prompt="secret-prompt", input_tokens=9999)
        )
    usage_rollup_run(now=now - dt.timedelta(minutes=20))
    # after the watermark: read from the raw ledger
    records.append(make_usage(team=team, at=now - dt.timedelta(minutes=5), prompt="triage"))
    return records


def finance_user() -> User:
    user = User.objects.create_user("fiona", "fiona@example.com", "pw")
    user.groups.set(Group.objects.filter(name=Role.FINANCE))
    return user


def test_dashboard_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_member_sees_only_their_teams_spend(client, alice, charlie, week, team, other_team):
    client.force_login(alice)
    html = client.get(URL).content.decode()

    mine = [r for r in week if r.team_id == team.id]
    assert card_usd(html) == sum((r.cost_usd for r in mine), Decimal(0))
    assert card(html, "requests").strip() == str(len(mine))
    assert "Team A" in html
    assert "Team B" not in html
    assert "secret-prompt" not in html


def test_teammate_without_edit_rights_sees_the_team_too(client, bob, week, team):
    client.force_login(bob)
    html = client.get(URL).content.decode()
    assert card(html, "requests").strip() == str(sum(r.team_id == team.id for r in week))


def test_outsider_gets_404_for_another_teams_filter(client, charlie, week, team):
    client.force_login(charlie)
    assert client.get(URL, {"team": team.slug}).status_code == 404
    prompt_id = next(
        r.prompt_version.prompt_id for r in week if r.team_id == team.id and r.prompt_version
    )
    assert client.get(URL, {"prompt": prompt_id}).status_code == 404


def test_finance_sees_every_team(client, week, team, other_team):
    client.force_login(finance_user())
    html = client.get(URL).content.decode()
    assert "Team A" in html
    assert "Team B" in html
    assert card_usd(html) == sum((r.cost_usd for r in week), Decimal(0))


def test_filters_narrow_every_figure_and_show_as_chips(client, alice, week, team):
    client.force_login(alice)
    html = client.get(URL, {"model": "gpt-5.4"}).content.decode()

    flagship = [r for r in week if r.model_name == "gpt-5.4"]
    assert card_usd(html) == sum((r.cost_usd for r in flagship), Decimal(0))
    assert "model: gpt-5.4 \u00d7" in html
    assert 'data-model="gpt-5.4-mini"' not in html


def test_seven_single_days_add_up_exactly_to_the_seven_day_total(client, alice, week, now):
    client.force_login(alice)
    seven = card_usd(client.get(URL, {"range": "7d"}).content.decode())
    today = local_day(now)
    days = []
    for back in range(7):
        day = (today - dt.timedelta(days=back)).isoformat()
        html = client.get(URL, {"range": "custom", "start": day, "end": day}).content.decode()
        days.append(card_usd(html))
    assert all(day > 0 for day in days)
    assert sum(days) == seven


def test_month_to_date_starts_on_day_one_in_the_time_zone(client, alice, week, now):
    client.force_login(alice)
    html = client.get(URL, {"range": "mtd"}).content.decode()
    first = local_day(now).replace(day=1)
    assert f'name="start" value="{first.isoformat()}"' in html
    assert "UTC" in re.search(r'data-testid="timezone"[^>]*>(.*?)<', html).group(1)


def test_htmx_request_gets_only_the_dashboard_partial(client, alice, week):
    client.force_login(alice)
    response = client.get(URL, {"range": "30d"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="dashboard"')
    assert "<html" not in html


def test_bad_range_is_a_400_with_the_reason(client, alice):
    client.force_login(alice)
    response = client.get(URL, {"range": "custom", "start": "2026-11-20", "end": "2026-11-01"})
    assert response.status_code == 400
    assert "before the start date" in response.content.decode()
    assert client.get(URL, {"range": "fortnight"}).status_code == 400


def test_page_makes_a_fixed_number_of_queries(
    client, alice, week, budget, make_usage, team, now, django_assert_max_num_queries
):
    client.force_login(alice)
    client.get(URL)  # warm the per-process price cache
    with CaptureQueriesContext(connection) as small:
        client.get(URL, {"range": "30d"})
    for i in range(30):
        make_usage(
            team=team, at=now - dt.timedelta(minutes=3), prompt=f"p{i}", model="gpt-5.4-nano"
        )
        make_usage(team=team, at=now - dt.timedelta(days=3), prompt=f"p{i}", model="gpt-6-luna")
        api_key_create(team=team, name=f"key{i}")
    usage_rollup_run(now=now - dt.timedelta(minutes=10))
    with django_assert_max_num_queries(26), CaptureQueriesContext(connection) as large:
        html = client.get(URL, {"range": "30d"}).content.decode()
    assert "team-a/p0" in html
    assert "gpt-6-luna" in html
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.fixture
def budget(team, now):
    return Budget.objects.create(
        team=team, limit_usd=Decimal("10"), period_start=period_start("monthly", now)
    )


def test_team_row_shows_budget_progress_period_and_reset(client, alice, budget, week, now):
    budget.spent_usd = Decimal("4.5")
    budget.save()
    client.force_login(alice)
    html = client.get(URL).content.decode()

    row = re.search(r'data-team="team-a".*?</tr>', html, re.S).group(0)
    assert 'data-testid="budget-pct">45.0%' in row
    assert "Monthly" in row
    assert "resets" in row
    assert "budget-badge" not in row


def test_soft_threshold_shows_a_warning_badge_and_the_limit_shows_blocked(
    client, alice, budget, week
):
    client.force_login(alice)
    budget.spent_usd = Decimal("8.5")
    budget.save()
    row = re.search(r'data-team="team-a".*?</tr>', client.get(URL).content.decode(), re.S).group(0)
    assert re.search(r'badge warn" data-testid="budget-badge">≥ 80%', row)

    budget.spent_usd = Decimal("10")
    budget.save()
    row = re.search(r'data-team="team-a".*?</tr>', client.get(URL).content.decode(), re.S).group(0)
    assert re.search(r'badge bad" data-testid="budget-badge">blocked', row)


def test_a_budget_of_a_past_period_counts_as_unspent(client, alice, budget, now):
    budget.spent_usd = Decimal("9.9")
    budget.period_start = period_start("monthly", now) - dt.timedelta(days=40)
    budget.save()
    client.force_login(alice)
    html = client.get(URL).content.decode()
    assert 'data-testid="budget-pct">0.0%' in html


def test_a_key_under_a_team_budget_shows_the_teams_limit(client, alice, budget, team):
    api_key_create(team=team, name="service-a")
    client.force_login(alice)
    html = client.get(URL).content.decode()
    keys = re.search(r'data-testid="keys-table".*?</table>', html, re.S).group(0)
    assert "service-a" in keys
    assert "$10.00" in keys
    assert "team budget (shared)" in keys
    assert "Unlimited" not in keys


def test_alert_entries_are_listed_for_the_users_teams_only(client, alice, budget, other_team, now):
    AlertEvent.objects.create(
        threshold="soft", team=budget.team, budget=budget, period_start=now, message="A at 80%"
    )
    AlertEvent.objects.create(
        threshold="soft", team=other_team, period_start=now, subject="x", message="B at 80%"
    )
    client.force_login(alice)
    html = client.get(URL).content.decode()
    assert "A at 80%" in html
    assert "B at 80%" not in html


def test_a_key_with_its_own_budget_at_its_limit_shows_blocked(client, alice, budget, team, now):
    key, _raw = api_key_create(team=team, name="batch-jobs")
    Budget.objects.create(
        team=team,
        api_key=key,
        limit_usd=Decimal("2"),
        spent_usd=Decimal("2"),
        period="daily",
        period_start=period_start("daily", now),
    )
    client.force_login(alice)
    keys = re.search(
        r'data-testid="keys-table".*?</table>', client.get(URL).content.decode(), re.S
    ).group(0)
    row = re.search(r"batch-jobs.*?</tr>", keys, re.S).group(0)
    assert "own budget" in row
    assert "$2.00" in row
    assert "blocked" in row


def test_a_user_without_teams_sees_an_empty_dashboard(client, week):
    loner = User.objects.create_user("loner", "l@example.com", "pw")
    client.force_login(loner)
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert card_usd(html) == 0
    assert "Team A" not in html
