"""The home page's overview: per team, month-to-date spend against its budget and the savings,
today's error rate and p95 latency; the latest failed requests; models near their shutdown
date; approvals waiting. Every figure comes from the dashboard's rollup sums (a fixed number
of queries whatever the ledger's size) or from a short keyset page of the explorer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from accounts.models import Team, User
from prompts.models import ApprovalRequest
from routing.selectors import ShutdownNotice, models_near_shutdown
from spend.explorer import RequestFilters, RequestRow, Status, request_page
from spend.rollups import empty_totals, local_day
from spend.selectors import (
    BudgetStatus,
    Figures,
    UsageFilters,
    budget_statuses,
    context_load,
    usage_breakdown,
    visible_teams,
)

FAILURES_SHOWN = 8
FAILURE_WINDOW = dt.timedelta(days=7)


@dataclass
class TeamOverview:
    team: Team
    month: Figures
    today: Figures
    budget: BudgetStatus | None


@dataclass
class Overview:
    teams: list[TeamOverview]
    failures: list[RequestRow]
    shutdowns: list[ShutdownNotice]
    approvals: list[ApprovalRequest]
    month_start: dt.date
    today: dt.date


def overview_build(*, user: User, now: dt.datetime | None = None) -> Overview:
    now = now or timezone.now()
    teams = list(visible_teams(user=user))
    team_ids = tuple(t.id for t in teams)
    today = local_day(now)
    month_start = today.replace(day=1)
    context = context_load(now=now)
    month = usage_breakdown(
        filters=UsageFilters(start_day=month_start, end_day=today, team_ids=team_ids),
        dims=["team_id"],
        context=context,
    )
    day = usage_breakdown(
        filters=UsageFilters(start_day=today, end_day=today, team_ids=team_ids),
        dims=["team_id"],
        context=context,
    )
    budgets = {
        s.budget.team_id: s
        for s in budget_statuses(team_ids=team_ids, now=now)
        if s.budget.api_key_id is None
    }
    rows = []
    for team in teams:
        month_totals = month.get((team.id,)) or empty_totals()
        day_totals = day.get((team.id,)) or empty_totals()
        rows.append(
            TeamOverview(
                team=team,
                month=Figures(key=team.id, label=team.name, totals=month_totals),
                today=Figures(key=team.id, label=team.name, totals=day_totals),
                budget=budgets.get(team.id),
            )
        )
    rows.sort(key=lambda row: row.month.spend, reverse=True)
    failures = request_page(
        filters=RequestFilters(team_ids=team_ids, since=now - FAILURE_WINDOW, status=Status.ERROR),
        size=FAILURES_SHOWN,
    ).rows
    approvals = list(
        ApprovalRequest.objects.filter(
            status=ApprovalRequest.Status.PENDING, version__prompt__team_id__in=team_ids
        )
        .select_related("version__prompt__team", "requested_by")
        .order_by("-created_at")[:10]
    )
    return Overview(
        teams=rows,
        failures=failures,
        shutdowns=models_near_shutdown(in_use_only=True),
        approvals=approvals,
        month_start=month_start,
        today=today,
    )
