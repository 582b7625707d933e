"""Daily rollups of the usage ledger, and the sums the dashboard reads from them.

`DailyRollup` rows sum the usage records per local day x team x prompt x model x tier x
purpose, with status counts, token sums, cost, the all-flagship counterfactual and a latency
histogram; `DailySummary` rows are the same sums without purpose, written with them (the
dashboard reads those unless it filters on purpose). `RollupState.rolled_until` is the invariant that makes the dashboard exact: the
rollups hold exactly the records created before it, and the dashboard adds the raw records
from it on. `usage_rollup_run` (Celery beat, every few minutes) recomputes the days from the
watermark's day to now minus a settling lag, one transaction per day, moving the watermark in
the same transaction; it also recomputes the previous day(s) whole, so a record written late
(its `created_at` before the watermark) is counted by the next run at the latest.

Counterfactual: the same tokens priced at the flagship tier's primary model, at the price in
force when the records ran. The other two levers are priced at the records' own model, at
its price in force: `batch_saved_usd` is what the batch and flex tiers saved against the
standard tier, `cache_saved_usd` what cached input saved against the same input uncached. Tokens are summed in the database per (service tier, long context
or not) and each group is priced once, so a rollup stays fast at millions of records; the sum
can differ from a per-record sum by the per-record rounding (< 1e-10 USD per record).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone

from core.money import ZERO, MoneySum
from routing.models import Price, TierModel
from spend.models import (
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    DailyRollup,
    DailySummary,
    RollupState,
    UsageRecord,
)

log = logging.getLogger(__name__)

FLAGSHIP_TIER = "flagship"
# Records younger than this may still be in flight (written after their created_at).
SETTLE_SECONDS = 120
# Whole days before the watermark's day recomputed on every run, for late writers.
RECONCILE_DAYS = 1
ANALYZE_AFTER_ROWS = 20_000

COUNT_FIELDS = (
    "requests",
    "errors",
    "cancelled",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
    *LATENCY_FIELDS,
)
MONEY_FIELDS = ("cost_usd", "flagship_cost_usd", "batch_saved_usd", "cache_saved_usd")
# Service tiers whose discount is the batch/flex lever (priority costs more: no lever).
DISCOUNT_TIERS = ("batch", "flex")
SUM_FIELDS = COUNT_FIELDS + MONEY_FIELDS


def local_tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day_bounds(day: dt.date, tz: dt.tzinfo | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of `day`, local midnight of the next day), as aware datetimes."""
    tz = tz or local_tz()
    start = dt.datetime.combine(day, dt.time.min).replace(tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min).replace(tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_day(at: dt.datetime, tz: dt.tzinfo | None = None) -> dt.date:
    return at.astimezone(tz or local_tz()).date()


# ------------------------------------------------------------------ aggregate expressions


def _bucket_expressions() -> dict[str, Sum]:
    """One SUM(CASE ...) per latency bucket, over raw usage records."""
    expressions = {}
    lower = None
    for name, upper in zip(LATENCY_FIELDS, (*LATENCY_BOUNDS_MS, None), strict=True):
        condition = Q()
        if lower is not None:
            condition &= Q(latency_ms__gte=lower)
        if upper is not None:
            condition &= Q(latency_ms__lt=upper)
        expressions[name] = Sum(
            Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())
        )
        lower = upper
    return expressions


def _status_count(status: str) -> Sum:
    return Sum(
        Case(When(status=status, then=Value(1)), default=Value(0), output_field=IntegerField())
    )


# What a summary table needs; the latency histogram and the rest only where they are shown.
BASIC_FIELDS = (
    "requests",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_usd",
    "flagship_cost_usd",
    "batch_saved_usd",
    "cache_saved_usd",
)
# What pricing a group of raw records at the flagship needs.
PRICING_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


def record_aggregates(fields: Iterable[str] | None = None) -> dict:
    """Aggregates over UsageRecord rows, named like DailyRollup's columns (all, or `fields`
    plus what flagship pricing needs); the counterfactual is priced per group in Python."""
    expressions = _record_expressions()
    if fields is None:
        return expressions
    wanted = set(fields) | set(PRICING_FIELDS)
    return {name: expr for name, expr in expressions.items() if name in wanted}


def _record_expressions() -> dict:
    return {
        "requests": Count("id"),
        "errors": _status_count(UsageRecord.Status.ERROR),
        "cancelled": _status_count(UsageRecord.Status.CANCELLED),
        "input_tokens": Sum("input_tokens"),
        "cached_input_tokens": Sum("cached_input_tokens"),
        "cache_write_tokens": Sum("cache_write_tokens"),
        "output_tokens": Sum("output_tokens"),
        "reasoning_tokens": Sum("reasoning_tokens"),
        "cost_usd": MoneySum("cost_usd"),
        "latency_ms_sum": Sum("latency_ms"),
        "ttft_ms_sum": Sum("ttft_ms"),
        "ttft_count": Count("ttft_ms"),
        **_bucket_expressions(),
    }


def rollup_aggregates(fields: Iterable[str] | None = None) -> dict:
    """The same sums over DailyRollup rows (all, or `fields`). Counts are cast back to bigint:
    PostgreSQL sums a bigint column as numeric, which is slow to fetch and convert."""
    return {
        name: MoneySum(name) if name in MONEY_FIELDS else Cast(Sum(name), BigIntegerField())
        for name in (SUM_FIELDS if fields is None else fields)
    }


def empty_totals() -> dict:
    return {**dict.fromkeys(COUNT_FIELDS, 0), **dict.fromkeys(MONEY_FIELDS, ZERO)}


def add_totals(into: dict, row: dict, fields: Iterable[str] | None = None) -> dict:
    for name in SUM_FIELDS if fields is None else fields:
        value = row.get(name)
        if value:
            into[name] += value
    return into


# ------------------------------------------------------------------ the counterfactual


def _in_force(prices: Iterable[Price], at: dt.datetime) -> Price | None:
    current = None
    for price in prices:  # oldest first
        if price.effective_from <= at:
            current = price
    return current


@dataclass(frozen=True)
class Flagship:
    """The flagship tier's primary model and its price rows, oldest first; and every model's
    price rows (`catalog`, by model id), for the levers priced at the records' own model."""

    model_id: int | None
    model_name: str
    prices: tuple[Price, ...]
    catalog: dict[int, tuple[Price, ...]] = field(default_factory=dict)

    def price_at(self, at: dt.datetime) -> Price | None:
        return _in_force(self.prices, at)

    def model_price_at(self, model_id: int | None, at: dt.datetime) -> Price | None:
        return _in_force(self.catalog.get(model_id, ()), at) if model_id is not None else None

    def segments(
        self, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) cut where a new price of any model takes effect, so each part has one
        price per model."""
        changes = {p.effective_from for p in self.prices}
        changes.update(p.effective_from for rows in self.catalog.values() for p in rows)
        cuts = sorted(moment for moment in changes if start < moment < end)
        bounds = [start, *cuts, end]
        return list(itertools.pairwise(bounds))


def flagship_load() -> Flagship:
    primary = (
        TierModel.objects.filter(tier__name=FLAGSHIP_TIER)
        .select_related("model")
        .order_by("position")
        .first()
    )
    catalog: dict[int, list[Price]] = {}
    for row in Price.objects.order_by("effective_from"):  # a small table: tens of rows
        catalog.setdefault(row.model_id, []).append(row)
    frozen = {model_id: tuple(rows) for model_id, rows in catalog.items()}
    if primary is None:
        return Flagship(model_id=None, model_name="", prices=(), catalog=frozen)
    prices = frozen.get(primary.model_id, ())
    return Flagship(
        model_id=primary.model_id, model_name=primary.model.name, prices=prices, catalog=frozen
    )


def long_context_flag(price: Price | None) -> Case | Value:
    threshold = price.long_context_threshold if price else None
    if threshold is None:
        return Value(0, output_field=IntegerField())
    return Case(
        When(input_tokens__gt=threshold, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


def own_long_context_flag(flagship: Flagship, at: dt.datetime) -> Case | Value:
    """1 for a record above its own model's long-context threshold (the price in force at
    `at`), else 0."""
    whens = []
    for model_id in flagship.catalog:
        price = flagship.model_price_at(model_id, at)
        if price is not None and price.long_context_threshold is not None:
            whens.append(
                When(model_id=model_id, input_tokens__gt=price.long_context_threshold, then=1)
            )
    if not whens:
        return Value(0, output_field=IntegerField())
    return Case(*whens, default=Value(0), output_field=IntegerField())


def group_levers(price: Price | None, group: dict) -> tuple[Decimal, Decimal]:
    """What a group of records at one model price saved by the batch/flex tier (against the
    standard tier) and by cached input (against the same input uncached), exactly, from its
    token sums. `group["long_context"]` is the flag for this `price`."""
    if price is None:
        return ZERO, ZERO
    paid = group_flagship_cost(price, group)
    batch = ZERO
    if group.get("service_tier") in DISCOUNT_TIERS:
        batch = group_flagship_cost(price, {**group, "service_tier": "default"}) - paid
    cache = ZERO
    if group.get("cached_input_tokens") or group.get("cache_write_tokens"):
        uncached = {**group, "cached_input_tokens": 0, "cache_write_tokens": 0}
        cache = group_flagship_cost(price, uncached) - paid
    return batch, cache


def group_flagship_cost(price: Price | None, group: dict) -> Decimal:
    """What a group's summed tokens cost at `price`; the group's own cost without a price.

    `group` has the token sums, `service_tier` and `long_context` (1 when every record in it
    was above the price's long-context threshold). The long-context multipliers are applied
    to the price itself so that pricing the sums cannot trip the threshold a second time.
    (Any price will do: the what-if replay prices groups at the models it routes them to.)"""
    from spend.pricing import SERVICE_TIER_MULTIPLIERS, cost_usd

    if price is None:
        return group.get("cost_usd") or ZERO
    flat = copy.copy(price)
    flat.long_context_threshold = None
    if group.get("long_context"):
        into, out = price.long_context_input_multiplier, price.long_context_output_multiplier
        flat.input_per_mtok = price.input_per_mtok * into
        flat.cached_input_per_mtok = price.cached_input_per_mtok * into
        if price.cache_write_per_mtok is not None:
            flat.cache_write_per_mtok = price.cache_write_per_mtok * into
        flat.output_per_mtok = price.output_per_mtok * out
    input_tokens = group.get("input_tokens") or 0
    cached = min(group.get("cached_input_tokens") or 0, input_tokens)
    cache_write = min(group.get("cache_write_tokens") or 0, input_tokens - cached)
    service_tier = group.get("service_tier") or "default"
    if service_tier not in SERVICE_TIER_MULTIPLIERS:
        service_tier = "default"
    return cost_usd(
        price=flat,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=cache_write,
        output_tokens=group.get("output_tokens") or 0,
        service_tier=service_tier,
    )


def priced_groups(
    records: QuerySet[UsageRecord],
    names: list[str],
    *,
    flagship: Flagship,
    start: dt.datetime,
    end: dt.datetime,
    fields: Iterable[str] | None = None,
) -> dict[tuple, dict]:
    """Sum `records` in [start, end) by the values `names`, with the flagship counterfactual
    and the batch/flex and cache levers; one query per span of unchanged prices (prices
    change a few times a year). `fields` limits the sums."""
    results: dict[tuple, dict] = {}
    for seg_start, seg_end in flagship.segments(start, end):
        price = flagship.price_at(seg_start)
        rows = (
            records.filter(created_at__gte=seg_start, created_at__lt=seg_end)
            .order_by()
            .annotate(
                long_context=long_context_flag(price),
                own_long_context=own_long_context_flag(flagship, seg_start),
            )
            .values(*names, "model_id", "service_tier", "long_context", "own_long_context")
            .annotate(**record_aggregates(fields))
        )
        for row in rows:
            key = tuple(row[name] for name in names)
            totals = results.get(key)
            if totals is None:
                totals = results[key] = empty_totals()
            add_totals(totals, row)
            totals["flagship_cost_usd"] += group_flagship_cost(price, row)
            own = {**row, "long_context": row["own_long_context"]}
            batch, cache = group_levers(flagship.model_price_at(row["model_id"], seg_start), own)
            totals["batch_saved_usd"] += batch
            totals["cache_saved_usd"] += cache
    return results


# ------------------------------------------------------------------ the rollup task

ROLLUP_KEY = ["team_id", "prompt_id", "model_name", "tier_name", "purpose"]


def records_with_prompt() -> QuerySet[UsageRecord]:
    """Usage records with `prompt_id` (through their prompt version), as rollups key them.
    Refusals are left out: they are neither spend nor upstream requests."""
    return UsageRecord.objects.exclude(status=UsageRecord.Status.REFUSED).annotate(
        prompt_id=F("prompt_version__prompt_id")
    )


def usage_rollup_day(
    *, day: dt.date, until: dt.datetime, flagship: Flagship | None = None
) -> list[DailyRollup]:
    """The rollup rows of one local day, from the records created before `until`."""
    flagship = flagship or flagship_load()
    start, end = day_bounds(day)
    end = min(end, until)
    if end <= start:
        return []
    groups = priced_groups(
        records_with_prompt(),
        ROLLUP_KEY,
        flagship=flagship,
        start=start,
        end=end,
    )
    rows = []
    for key, totals in groups.items():
        team_id, prompt_id, model_name, tier_name, purpose = key
        rows.append(
            DailyRollup(
                day=day,
                team_id=team_id,
                prompt_id=prompt_id,
                model_name=model_name,
                tier_name=tier_name,
                purpose=purpose,
                **totals,
            )
        )
    return rows


def _summaries(day: dt.date, rows: list[DailyRollup]) -> list[DailySummary]:
    """The day's rollup rows summed over purpose."""
    folded: dict[tuple, dict] = {}
    for row in rows:
        key = (row.team_id, row.prompt_id, row.model_name, row.tier_name)
        totals = folded.get(key)
        if totals is None:
            totals = folded[key] = empty_totals()
        for name in SUM_FIELDS:
            totals[name] += getattr(row, name)
    return [
        DailySummary(
            day=day,
            team_id=team_id,
            prompt_id=prompt_id,
            model_name=model_name,
            tier_name=tier_name,
            **totals,
        )
        for (team_id, prompt_id, model_name, tier_name), totals in folded.items()
    ]


def _day_replace(day: dt.date, rows: list[DailyRollup]) -> None:
    """Replace a day's rollup rows and their summaries (in the caller's transaction)."""
    DailyRollup.objects.filter(day=day).delete()
    DailyRollup.objects.bulk_create(rows, batch_size=1000)
    DailySummary.objects.filter(day=day).delete()
    DailySummary.objects.bulk_create(_summaries(day, rows), batch_size=1000)


def _rollups_clear() -> None:
    DailyRollup.objects.all().delete()
    DailySummary.objects.all().delete()


@dataclass
class RollupResult:
    days: list[dt.date]
    rows: int
    rolled_until: dt.datetime | None


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _state_locked() -> RollupState:
    state, _ = RollupState.objects.select_for_update().get_or_create(name="usage")
    return state


def usage_rollup_run(
    *,
    now: dt.datetime | None = None,
    settle_seconds: int = SETTLE_SECONDS,
    reconcile_days: int = RECONCILE_DAYS,
) -> RollupResult:
    """Bring the rollups up to `now - settle_seconds`; one transaction per day.

    Recomputes the watermark's day and the ones after it, the `reconcile_days` before it, and
    any older day that received a record since the last run (a late writer or an import).
    Runs may overlap (beat plus a manual run): each day's transaction locks the state row,
    and a run that finds the watermark already past its own cut-off stops there, so the
    watermark never moves back over rows a newer run wrote.
    """
    now = now or timezone.now()
    until = now - dt.timedelta(seconds=settle_seconds)
    tz = local_tz()
    with transaction.atomic():
        state = _state_locked()
        if state.time_zone and state.time_zone != settings.TIME_ZONE:
            # Days were cut in another zone: they do not line up with today's days.
            _rollups_clear()
            state.rolled_until, state.last_record_id = None, 0
        state.time_zone = settings.TIME_ZONE
        state.save()
        watermark, last_id = state.rolled_until, state.last_record_id
    max_id = UsageRecord.objects.aggregate(max_id=Max("id"))["max_id"] or 0
    days: set[dt.date] = set()
    if watermark is None:
        first_record = UsageRecord.objects.order_by("created_at").values("created_at").first()
        if first_record is None or first_record["created_at"] >= until:
            return RollupResult(days=[], rows=0, rolled_until=watermark)
        first_day = local_day(first_record["created_at"], tz)
    else:
        first_day = local_day(watermark, tz) - dt.timedelta(days=reconcile_days)
        late = UsageRecord.objects.filter(
            id__gt=last_id, id__lte=max_id, created_at__lt=day_bounds(first_day, tz)[0]
        ).datetimes("created_at", "day", tzinfo=tz)
        days.update(moment.date() for moment in late)
    days.update(_days(first_day, local_day(until, tz)))
    flagship = flagship_load()
    done: list[dt.date] = []
    written = 0
    for day in sorted(days):
        _start, end = day_bounds(day, tz)
        covered_until = min(end, until)
        with transaction.atomic():
            state = _state_locked()
            if state.rolled_until is not None and state.rolled_until > until:
                log.info("rollup: a newer run is ahead (%s); stopping", state.rolled_until)
                break
            rows = usage_rollup_day(day=day, until=covered_until, flagship=flagship)
            _day_replace(day, rows)
            if state.rolled_until is None or covered_until >= state.rolled_until:
                state.rolled_until = covered_until
                state.save(update_fields=["rolled_until", "updated_at"])
        done.append(day)
        written += len(rows)
    else:
        RollupState.objects.filter(name="usage", last_record_id__lt=max_id).update(
            last_record_id=max_id
        )
    if written > ANALYZE_AFTER_ROWS and connection.vendor == "postgresql":
        # A backfill replaces most of the table: fresh statistics keep the dashboard's
        # aggregates on hash plans instead of sorts spilling to disk.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {DailyRollup._meta.db_table}")
            cursor.execute(f"ANALYZE {DailySummary._meta.db_table}")
    return RollupResult(days=done, rows=written, rolled_until=rollup_watermark())


def rollup_watermark() -> dt.datetime | None:
    """Records created at or after this instant are not in the rollups yet."""
    return (
        RollupState.objects.filter(name="usage", time_zone=settings.TIME_ZONE)
        .values_list("rolled_until", flat=True)
        .first()
    )


def usage_rollup_rebuild(*, days: Iterable[dt.date] | None = None) -> RollupResult:
    """Drop the rollups (all, or some days) and compute them again (after a data fix)."""
    with transaction.atomic():
        state = _state_locked()
        if days is None:
            _rollups_clear()
            state.rolled_until, state.last_record_id = None, 0
            state.save(update_fields=["rolled_until", "last_record_id", "updated_at"])
    if days is None:
        return usage_rollup_run()
    flagship = flagship_load()
    done, written = [], 0
    for day in sorted(days):
        with transaction.atomic():
            state = _state_locked()
            if state.rolled_until is None:
                break
            _start, end = day_bounds(day)
            rows = usage_rollup_day(day=day, until=min(end, state.rolled_until), flagship=flagship)
            _day_replace(day, rows)
        done.append(day)
        written += len(rows)
    return RollupResult(days=done, rows=written, rolled_until=rollup_watermark())
