"""Reads of the usage ledger: who may see which team, the dashboard's sums, budget status.

The dashboard never scans the whole ledger: every figure is a SUM over rollup rows for the
range (`DailySummary`, or `DailyRollup` when purpose matters) plus the same SUM over the raw
records created after the rollup watermark (a few minutes' worth while Celery beat runs the
rollup). Each breakdown is two queries, whatever
the number of rows; the page needs two breakdowns (day x model for the chart, and team x
prompt x model x tier folded into every table), plus one for a single team's budget burn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

from django.db.models import F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import ApiKey, Role, Team, User
from accounts.selectors import user_has_role, user_teams
from core.money import ZERO
from prompts.models import Prompt
from routing.models import Tier
from spend.models import (
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    AlertEvent,
    Budget,
    DailyRollup,
    DailySummary,
    DailySums,
    UsageRecord,
)
from spend.rollups import (
    BASIC_FIELDS,
    Flagship,
    add_totals,
    day_bounds,
    empty_totals,
    flagship_load,
    local_day,
    local_tz,
    priced_groups,
    rollup_aggregates,
    rollup_watermark,
)

HUNDRED = Decimal(100)

# --------------------------------------------------------------------------- access


def visible_teams(*, user: User) -> QuerySet[Team]:
    """Teams whose usage the user may see: their own; finance and admins see every team."""
    if user_has_role(user=user, role=Role.FINANCE):
        return Team.objects.all()
    return user_teams(user=user)


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class UsageFilters:
    """What the dashboard, the exports and the usage API are asked for: a range of local days
    (inclusive), the teams in scope (already access-checked) and optional dimensions."""

    start_day: dt.date
    end_day: dt.date
    team_ids: tuple[int, ...]
    prompt_id: int | None = None
    model_name: str = ""
    tier_name: str = ""
    purpose: str = ""

    @property
    def start_at(self) -> dt.datetime:
        return day_bounds(self.start_day)[0]

    @property
    def end_at(self) -> dt.datetime:
        return day_bounds(self.end_day)[1]

    def rollups(self, dims: list[str] | tuple[str, ...] = ()) -> QuerySet[DailySums]:
        """Rollup rows of the range: the summaries without purpose unless the filters or the
        grouping `dims` need it."""
        model = DailyRollup if self.purpose or "purpose" in dims else DailySummary
        qs = model.objects.filter(
            day__gte=self.start_day, day__lte=self.end_day, team_id__in=self.team_ids
        )
        if self.prompt_id is not None:
            qs = qs.filter(prompt_id=self.prompt_id)
        if self.model_name:
            qs = qs.filter(model_name=self.model_name)
        if self.tier_name:
            qs = qs.filter(tier_name=self.tier_name)
        if self.purpose:  # then `model` is DailyRollup, which has the column
            qs = qs.filter(purpose=self.purpose)  # type: ignore[misc]
        return qs.order_by()

    def records(self) -> QuerySet[UsageRecord]:
        """Raw records in the range (rolled up or not), with the same filters; refusals are
        not usage (the request explorer lists them)."""
        qs = UsageRecord.objects.filter(
            created_at__gte=self.start_at, created_at__lt=self.end_at, team_id__in=self.team_ids
        ).exclude(status=UsageRecord.Status.REFUSED)
        if self.prompt_id is not None:
            qs = qs.filter(prompt_version__prompt_id=self.prompt_id)
        if self.model_name:
            qs = qs.filter(model_name=self.model_name)
        if self.tier_name:
            qs = qs.filter(tier_name=self.tier_name)
        if self.purpose:
            qs = qs.filter(purpose=self.purpose)
        return qs


# --------------------------------------------------------------------------- sums


@dataclass
class Context:
    """What every breakdown of one page shares: the watermark and the flagship prices."""

    watermark: dt.datetime | None
    flagship: Flagship
    now: dt.datetime


def context_load(*, now: dt.datetime | None = None) -> Context:
    return Context(
        watermark=rollup_watermark(), flagship=flagship_load(), now=now or timezone.now()
    )


def usage_breakdown(
    *,
    filters: UsageFilters,
    dims: list[str],
    context: Context,
    fields: tuple[str, ...] | None = None,
) -> dict[tuple, dict]:
    """Totals by `dims` (any of day, team_id, prompt_id, model_name, tier_name, purpose):
    rollups for the range plus raw records from the watermark on. Two queries (one more per
    flagship price change inside the raw span, which is minutes long). `fields` limits the
    sums to those a table shows (the others stay zero)."""
    results: dict[tuple, dict] = {}
    if not filters.team_ids:
        return results
    watermark = context.watermark
    if watermark is not None:
        for row in filters.rollups(dims).values(*dims).annotate(**rollup_aggregates(fields)):
            results[tuple(row[d] for d in dims)] = add_totals(empty_totals(), row, fields)
    raw_start = filters.start_at if watermark is None else max(filters.start_at, watermark)
    raw_end = filters.end_at
    if raw_start < raw_end:
        records = filters.records().annotate(prompt_id=F("prompt_version__prompt_id"))
        if "day" in dims:
            records = records.annotate(day=TruncDate("created_at", tzinfo=local_tz()))
        raw = priced_groups(records, dims, flagship=context.flagship, start=raw_start, end=raw_end)
        for key, totals in raw.items():
            add_totals(results.setdefault(key, empty_totals()), totals, fields)
    return results


def latency_percentile(totals: dict, q: float) -> int | None:
    """The q-quantile of latency from the histogram, interpolated inside its bucket (ms)."""
    count = sum(totals[name] for name in LATENCY_FIELDS)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    lower = 0
    for name, upper in zip(LATENCY_FIELDS, (*LATENCY_BOUNDS_MS, None), strict=True):
        in_bucket = totals[name]
        if in_bucket and seen + in_bucket >= rank:
            if upper is None:
                return lower
            return round(lower + (upper - lower) * (rank - seen) / in_bucket)
        seen += in_bucket
        lower = upper or lower
    return lower


@dataclass
class Figures:
    """Derived figures of one set of totals, for a card or a table row."""

    key: object
    label: str
    totals: dict
    slug: str = ""
    budget: BudgetStatus | None = None

    @property
    def spend(self) -> Decimal:
        return self.totals["cost_usd"]

    @property
    def flagship_cost(self) -> Decimal:
        return self.totals["flagship_cost_usd"]

    @property
    def savings(self) -> Decimal:
        return self.flagship_cost - self.spend

    @property
    def savings_pct(self) -> Decimal | None:
        if not self.flagship_cost:
            return None
        return (self.savings * HUNDRED / self.flagship_cost).quantize(Decimal("0.1"))

    @property
    def routing_saved(self) -> Decimal:
        """Against the same tokens on the flagship (same service tier, same caching)."""
        return self.savings

    @property
    def batch_saved(self) -> Decimal:
        """Batch and flex against the same model's standard tier."""
        return self.totals["batch_saved_usd"]

    @property
    def cache_saved(self) -> Decimal:
        """Cached input against the same input uncached, at the same model and tier."""
        return self.totals["cache_saved_usd"]

    @property
    def saved_total(self) -> Decimal:
        return self.routing_saved + self.batch_saved + self.cache_saved

    @property
    def cached_input_tokens(self) -> int:
        return self.totals["cached_input_tokens"]

    @property
    def cached_share_pct(self) -> Decimal | None:
        """Cached input tokens as a share of all input tokens (%)."""
        if not self.input_tokens:
            return None
        share = Decimal(self.cached_input_tokens) * HUNDRED / self.input_tokens
        return share.quantize(Decimal("0.1"))

    @property
    def requests(self) -> int:
        return self.totals["requests"]

    @property
    def errors(self) -> int:
        return self.totals["errors"]

    @property
    def error_pct(self) -> Decimal | None:
        if not self.requests:
            return None
        return (Decimal(self.errors) * HUNDRED / self.requests).quantize(Decimal("0.01"))

    @property
    def avg_latency_ms(self) -> int | None:
        if not self.requests:
            return None
        return round(self.totals["latency_ms_sum"] / self.requests)

    @property
    def p50_latency_ms(self) -> int | None:
        return latency_percentile(self.totals, 0.50)

    @property
    def p95_latency_ms(self) -> int | None:
        return latency_percentile(self.totals, 0.95)

    @property
    def p99_latency_ms(self) -> int | None:
        return latency_percentile(self.totals, 0.99)

    @property
    def avg_ttft_ms(self) -> int | None:
        if not self.totals["ttft_count"]:
            return None
        return round(self.totals["ttft_ms_sum"] / self.totals["ttft_count"])

    @property
    def input_tokens(self) -> int:
        return self.totals["input_tokens"]

    @property
    def output_tokens(self) -> int:
        return self.totals["output_tokens"]

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _rows(breakdown: dict[tuple, dict], labels: dict) -> list[Figures]:
    rows = [
        Figures(key=key[0], label=labels.get(key[0], str(key[0] or "—")), totals=totals)
        for key, totals in breakdown.items()
    ]
    rows.sort(key=lambda row: (-row.spend, -row.requests, row.label))
    return rows


def _sum(rows: list[Figures]) -> dict:
    total = empty_totals()
    for row in rows:
        add_totals(total, row.totals)
    return total


# --------------------------------------------------------------------------- budgets


@dataclass
class BudgetStatus:
    """A budget's current period: effective spend (a row whose period is over counts as zero
    until the gateway rolls it), reset date, burn projection and alert state."""

    budget: Budget
    period_start: dt.datetime
    period_end: dt.datetime | None
    spent: Decimal
    reserved: Decimal
    projected: Decimal | None
    scope: str = "team"

    @property
    def limit(self) -> Decimal:
        return self.budget.limit_usd

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.reserved, ZERO)

    @property
    def used_pct(self) -> Decimal:
        if not self.limit:
            return HUNDRED
        return (self.spent * HUNDRED / self.limit).quantize(Decimal("0.1"))

    @property
    def bar_pct(self) -> Decimal:
        return min(self.used_pct, HUNDRED)

    @property
    def soft_pct(self) -> Decimal:
        return (self.budget.soft_threshold * HUNDRED).quantize(Decimal("0.1"))

    @property
    def state(self) -> str:
        """ok, warning (soft threshold reached) or limit (hard limit reached)."""
        if self.spent >= self.limit:
            return "limit"
        if self.spent >= self.limit * self.budget.soft_threshold:
            return "warning"
        return "ok"

    @property
    def limit_label(self) -> str:
        """What happens at the limit, as the dashboard badge says it."""
        return "blocked" if self.budget.action == Budget.Action.BLOCK else "downgraded"

    @property
    def projected_over(self) -> bool:
        return self.projected is not None and self.projected > self.limit


def budget_status(budget: Budget, *, now: dt.datetime | None = None) -> BudgetStatus:
    from spend.periods import period_bounds

    now = now or timezone.now()
    start, end = period_bounds(budget.period, now)
    spent = budget.spent_usd if budget.period_start >= start else ZERO
    projected = None
    if end is not None:
        elapsed = max((now - start).total_seconds(), 3600.0)
        length = (end - start).total_seconds()
        projected = (spent * Decimal(length) / Decimal(elapsed)).quantize(Decimal("0.01"))
        projected = max(projected, spent)
    return BudgetStatus(
        budget=budget,
        period_start=start,
        period_end=end,
        spent=spent,
        reserved=budget.reserved_usd,
        projected=projected,
        scope="key" if budget.api_key_id else "team",
    )


def budget_statuses(
    *, team_ids: list[int] | tuple[int, ...], now: dt.datetime | None = None
) -> list[BudgetStatus]:
    """Every budget (team and key) of the teams, one query."""
    budgets = Budget.objects.filter(team_id__in=team_ids).select_related("team", "api_key")
    return [budget_status(b, now=now) for b in budgets.order_by("team__name", "id")]


@dataclass
class KeyBudget:
    """A key and the budget that limits it: its own, else its team's (never 'unlimited'
    while the team has one)."""

    api_key: ApiKey
    status: BudgetStatus | None
    shared: bool


# --------------------------------------------------------------------------- the page


@dataclass
class Dashboard:
    filters: UsageFilters
    time_zone: str
    watermark: dt.datetime | None
    total: Figures
    days: list[dict]
    chart: dict
    teams: list[Figures]
    prompts: list[Figures]
    models: list[Figures]
    tiers: list[Figures]
    caching: list[Figures]
    budgets: dict[int, BudgetStatus]
    key_budgets: list[KeyBudget]
    alerts: list[AlertEvent]
    burn: dict | None
    flagship_model: str
    tier_names: list[str] = field(default_factory=list)

    @property
    def models_in_range(self) -> list[str]:
        return sorted(str(row.key) for row in self.models)


def dashboard_build(
    *, filters: UsageFilters, teams: list[Team], now: dt.datetime | None = None
) -> Dashboard:
    """Everything the dashboard shows, in a fixed number of queries."""
    context = context_load(now=now)
    team_names = {team.id: team.name for team in teams}

    # Two scans of the range, however many tables: one by day x model (the chart), one by
    # team x prompt x model x tier (a few thousand groups at most) folded here into the tables.
    by_day_model = usage_breakdown(
        filters=filters, dims=["day", "model_name"], context=context, fields=DAILY_FIELDS
    )
    combined = usage_breakdown(filters=filters, dims=COMBINED_DIMS, context=context)
    by_team = _fold(combined, COMBINED_DIMS.index("team_id"), BASIC_FIELDS)
    by_prompt = _fold(combined, COMBINED_DIMS.index("prompt_id"), BASIC_FIELDS)
    by_model = _fold(combined, COMBINED_DIMS.index("model_name"))  # every sum: cards, latency
    by_tier = _fold(combined, COMBINED_DIMS.index("tier_name"), BASIC_FIELDS)
    by_prompt_model = _fold_pair(
        combined, COMBINED_DIMS.index("prompt_id"), COMBINED_DIMS.index("model_name")
    )

    prompt_ids = [key[0] for key in by_prompt if key[0] is not None]
    prompts = Prompt.objects.filter(id__in=prompt_ids).select_related("team")
    prompt_labels: dict[int | None, str] = {p.id: f"{p.team.slug}/{p.slug}" for p in prompts}
    prompt_labels[None] = "(no prompt)"

    model_rows = _rows(by_model, {})
    total = Figures(key=None, label="Total", totals=_sum(model_rows))

    team_rows = _rows(by_team, team_names)
    seen = {row.key for row in team_rows}
    team_rows += [
        Figures(key=team.id, label=team.name, totals=empty_totals())
        for team in teams
        if team.id not in seen and team.id in filters.team_ids
    ]

    days, chart = _daily(filters, by_day_model, model_rows)

    statuses = budget_statuses(team_ids=filters.team_ids, now=context.now)
    team_budgets = {s.budget.team_id: s for s in statuses if s.scope == "team"}
    key_budgets = _key_budgets(filters, statuses)
    slugs = {team.id: team.slug for team in teams}
    for row in team_rows:
        team_id = row.key if isinstance(row.key, int) else None
        row.slug = slugs.get(team_id, "") if team_id is not None else ""
        row.budget = team_budgets.get(team_id) if team_id is not None else None

    # the teams' budget alerts, and upstream error spikes (site-wide, no team data in them)
    alerts = list(
        AlertEvent.objects.filter(Q(team_id__in=filters.team_ids) | Q(team__isnull=True))
        .select_related("team")
        .order_by("-created_at", "-id")[:10]
    )
    burn = None
    if len(filters.team_ids) == 1 and filters.team_ids[0] in team_budgets:
        burn = _burn(team_budgets[filters.team_ids[0]], context)

    return Dashboard(
        filters=filters,
        time_zone=str(local_tz()),
        watermark=context.watermark,
        total=total,
        days=days,
        chart=chart,
        teams=team_rows,
        prompts=_rows(by_prompt, prompt_labels),
        models=model_rows,
        tiers=_rows(by_tier, {"": "(none)"}),
        caching=_caching_rows(by_prompt_model, prompt_labels),
        budgets=team_budgets,
        key_budgets=key_budgets,
        alerts=alerts,
        burn=burn,
        flagship_model=context.flagship.model_name,
        tier_names=list(Tier.objects.order_by("rank").values_list("name", flat=True)),
    )


COMBINED_DIMS = ["team_id", "prompt_id", "model_name", "tier_name"]
DAILY_FIELDS = ("requests", "input_tokens", "output_tokens", "cost_usd")


def _fold(
    combined: dict[tuple, dict], index: int, fields: tuple[str, ...] | None = None
) -> dict[tuple, dict]:
    """Re-key totals by one of their dimensions, summing `fields` (or every sum)."""
    folded: dict[tuple, dict] = {}
    for key, totals in combined.items():
        into = folded.get((key[index],))
        if into is None:
            into = folded[(key[index],)] = empty_totals()
        add_totals(into, totals, fields)
    return folded


@dataclass
class SavingsSummary:
    """The range's totals and lever split, and one row per prompt x model (for the API)."""

    filters: UsageFilters
    total: Figures
    rows: list[Figures]
    flagship_model: str


def savings_summary_build(*, filters: UsageFilters) -> SavingsSummary:
    """Spend and what each lever saved over the range, in total and per prompt x model;
    two queries plus the labels."""
    context = context_load()
    by_pair = usage_breakdown(
        filters=filters, dims=["prompt_id", "model_name"], context=context, fields=BASIC_FIELDS
    )
    prompt_ids = [key[0] for key in by_pair if key[0] is not None]
    prompts = Prompt.objects.filter(id__in=prompt_ids).values_list("id", "slug", "team__slug")
    labels = {prompt_id: (slug, team) for prompt_id, slug, team in prompts}
    rows = [
        # label: the prompt's slug, slug: its team's (a finance view spans teams)
        Figures(key=pair, label=labels.get(pair[0], ("", ""))[0], totals=totals)
        for pair, totals in by_pair.items()
    ]
    for row in rows:
        row.slug = labels.get(cast(tuple, row.key)[0], ("", ""))[1]
    rows.sort(key=lambda row: (-row.spend, row.label, str(cast(tuple, row.key)[1])))
    return SavingsSummary(
        filters=filters,
        total=Figures(key=None, label="Total", totals=_sum(rows)),
        rows=rows,
        flagship_model=context.flagship.model_name,
    )


def _fold_pair(combined: dict[tuple, dict], first: int, second: int) -> dict[tuple, dict]:
    """Re-key totals by two of their dimensions, summing the summary fields."""
    folded: dict[tuple, dict] = {}
    for key, totals in combined.items():
        pair = (key[first], key[second])
        into = folded.get(pair)
        if into is None:
            into = folded[pair] = empty_totals()
        add_totals(into, totals, BASIC_FIELDS)
    return folded


def _caching_rows(by_pair: dict[tuple, dict], prompt_labels: dict) -> list[Figures]:
    """One row per prompt x model that read any input: its cached-input share and what the
    cache saved; the largest savings first."""
    rows = [
        Figures(
            key=pair,
            label=f"{prompt_labels.get(pair[0], str(pair[0]))} · {pair[1]}",
            totals=totals,
        )
        for pair, totals in by_pair.items()
        if totals["input_tokens"]
    ]
    rows.sort(key=lambda row: (-row.cache_saved, -row.cached_input_tokens, row.label))
    return rows


def _daily(
    filters: UsageFilters, by_day_model: dict[tuple, dict], model_rows: list[Figures]
) -> tuple[list[dict], dict]:
    """One entry per day of the range (zero days included) and the stacked chart's data."""
    models = [str(row.key) for row in model_rows]
    days = []
    day = filters.start_day
    while day <= filters.end_day:
        days.append(day)
        day += dt.timedelta(days=1)
    per_day = {d: empty_totals() for d in days}
    for (day, _model), totals in by_day_model.items():
        add_totals(per_day.setdefault(day, empty_totals()), totals, DAILY_FIELDS)
    day_rows = [
        {"day": d, "figures": Figures(key=d, label=d.isoformat(), totals=per_day[d])} for d in days
    ]
    datasets = []
    for model in models:
        cost, requests, tokens = [], [], []
        for d in days:
            found = by_day_model.get((d, model))
            cost.append(str(found["cost_usd"]) if found else "0")
            requests.append(found["requests"] if found else 0)
            tokens.append(found["input_tokens"] + found["output_tokens"] if found else 0)
        datasets.append({"label": model, "cost": cost, "requests": requests, "tokens": tokens})
    chart = {"labels": [d.isoformat() for d in days], "datasets": datasets}
    return day_rows, chart


def _key_budgets(filters: UsageFilters, statuses: list[BudgetStatus]) -> list[KeyBudget]:
    team_status = {s.budget.team_id: s for s in statuses if s.scope == "team"}
    key_status = {s.budget.api_key_id: s for s in statuses if s.scope == "key"}
    keys = ApiKey.objects.filter(team_id__in=filters.team_ids, revoked_at=None).select_related(
        "team"
    )[:50]
    result = []
    for key in keys:
        own = key_status.get(key.id)
        result.append(
            KeyBudget(
                api_key=key,
                status=own or team_status.get(key.team_id),
                shared=own is None,
            )
        )
    return result


def _burn(status: BudgetStatus, context: Context) -> dict:
    """Cumulative spend per day of the team's current period, with the linear projection to
    the period's end and the limit."""
    start_day = local_day(status.period_start)
    today = local_day(context.now)
    end_day = local_day(status.period_end - dt.timedelta(seconds=1)) if status.period_end else today
    filters = UsageFilters(start_day=start_day, end_day=today, team_ids=(status.budget.team_id,))
    by_day = usage_breakdown(filters=filters, dims=["day"], context=context, fields=("cost_usd",))
    labels: list[str] = []
    actual: list[str | None] = []
    projection: list[str | None] = []
    running = ZERO
    day = start_day
    while day <= end_day:
        labels.append(day.isoformat())
        if day <= today:
            running += by_day.get((day,), {}).get("cost_usd", ZERO)
            actual.append(str(running))
        else:
            actual.append(None)
        day += dt.timedelta(days=1)
    if status.projected is not None and status.period_end is not None:
        # straight line from today's actual to the projected spend at the period's end
        days_left = (end_day - today).days
        step = (status.projected - running) / days_left if days_left > 0 else ZERO
        for label in labels:
            day = dt.date.fromisoformat(label)
            if day < today:
                projection.append(None)
            else:
                projection.append(
                    str((running + step * (day - today).days).quantize(Decimal("0.0001")))
                )
    return {
        "labels": labels,
        "actual": actual,
        "projection": projection,
        "limit": str(status.limit),
        "team": status.budget.team.name,
    }
