"""Pricing arithmetic: which price row is in force, and what a call costs, exactly, in Decimal.

Prices are per 1M tokens and have history (`routing.Price.effective_from`): a call is costed
at the row in force when it ran, so a later price change never rewrites past costs.
The gateway reads prices from the routing snapshot (`ModelInfo.price_at`, hot-cached); the
lookups here go to the database (pages, imports, reports, demo data).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.db.models import Case, IntegerField, Q, QuerySet, Sum, Value, When

from core.money import COST_DIGITS, MILLION, ZERO, MoneySum
from routing.models import Model, Price

if TYPE_CHECKING:
    from spend.models import UsageRecord

COST_QUANTUM = Decimal(1).scaleb(-COST_DIGITS["decimal_places"])  # 0.0000000001
ONE = Decimal("1")

# Multipliers on every component of a call's cost, by the request's `service_tier`.
SERVICE_TIER_MULTIPLIERS: dict[str, Decimal] = {
    "default": ONE,
    "auto": ONE,
    "standard": ONE,
    "batch": Decimal("0.5"),
    "flex": Decimal("0.5"),
    "priority": Decimal("2"),
    "fast": Decimal("2"),
}
SERVICE_TIERS = tuple(SERVICE_TIER_MULTIPLIERS)


class PriceNotFound(LookupError):
    """No price row of the model is in force at the given time."""


def service_tier_multiplier(service_tier: str | None) -> Decimal:
    """The multiplier for a service tier; None or "" mean the default tier."""
    try:
        return SERVICE_TIER_MULTIPLIERS[service_tier or "default"]
    except KeyError:
        raise ValueError(
            f"Unknown service tier {service_tier!r}; expected one of {', '.join(SERVICE_TIERS)}"
        ) from None


# --- which price is in force -------------------------------------------------------------


def _model_id(model: Model | int) -> int:
    return model if isinstance(model, int) else model.pk


def _model_label(model: Model | int) -> str:
    return f"model id {model}" if isinstance(model, int) else f"model {model.name!r}"


def _check_aware(at: dt.datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"price lookups need an aware datetime, got naive {at!r}")


def price_at(model: Model | int, at: dt.datetime) -> Price:
    """The price row in force at `at`: the latest `effective_from <= at`. Raises PriceNotFound."""
    _check_aware(at)
    row = Price.objects.filter(model_id=_model_id(model), effective_from__lte=at).first()
    if row is None:  # Meta.ordering is (model, -effective_from): first() is the latest
        first = Price.objects.filter(model_id=_model_id(model)).order_by("effective_from").first()
        starts = f"; its first price starts {first.effective_from.isoformat()}" if first else ""
        raise PriceNotFound(
            f"No price for {_model_label(model)} in force at {at.isoformat()}{starts}"
        )
    return row


# --- what a call costs -------------------------------------------------------------------


def is_long_context(price: Price, input_tokens: int) -> bool:
    """Long-context pricing applies when the input is strictly above the threshold."""
    threshold = price.long_context_threshold
    return threshold is not None and input_tokens > threshold


def _quantize(amount: Decimal) -> Decimal:
    return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def cost_usd(
    *,
    price: Price,
    input_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    service_tier: str | None = "default",
) -> Decimal:
    """The exact cost of one call in USD, quantized to 10 places (ROUND_HALF_UP).

    Conventions (OpenAI's usage object):
    - `input_tokens` INCLUDES the cached and the cache-write tokens. The uncached input is
      `input - cached - cache_write` and bills at the input price; cached tokens bill at the
      cached-input price; cache-write tokens bill at `cache_write_per_mtok`, or at the input
      price when that is null.
    - `reasoning_tokens` are already INCLUDED in `output_tokens` and bill as output: they
      are validated (<= output) but not added again.
    - Long context: when `input_tokens` is strictly greater than the price's
      `long_context_threshold`, the input, cached and cache-write prices are multiplied by
      `long_context_input_multiplier` and the output price by
      `long_context_output_multiplier` (for the whole call, not just the excess).
    - Service tier: every component is multiplied by SERVICE_TIER_MULTIPLIERS
      (default/auto/standard 1, batch 0.5, flex 0.5, priority 2, fast 2); an unknown tier
      raises ValueError.
    Nothing is rounded before the final quantization.
    """
    counts = {
        "input_tokens": input_tokens,
        "cached_input_tokens": cached_input_tokens,
        "cache_write_tokens": cache_write_tokens,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning_tokens,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative (got {value})")
    uncached = input_tokens - cached_input_tokens - cache_write_tokens
    if uncached < 0:
        raise ValueError(
            f"input_tokens ({input_tokens}) must include cached_input_tokens "
            f"({cached_input_tokens}) and cache_write_tokens ({cache_write_tokens})"
        )
    if reasoning_tokens > output_tokens:
        raise ValueError(
            f"output_tokens ({output_tokens}) must include reasoning_tokens ({reasoning_tokens})"
        )
    return _cost(
        price,
        uncached=uncached,
        cached=cached_input_tokens,
        cache_write=cache_write_tokens,
        output=output_tokens,
        long_context=is_long_context(price, input_tokens),
        service_tier=service_tier,
    )


def _cost(
    price: Price,
    *,
    uncached: int,
    cached: int,
    cache_write: int,
    output: int,
    long_context: bool,
    service_tier: str | None,
) -> Decimal:
    tier = service_tier_multiplier(service_tier)
    input_multiplier = price.long_context_input_multiplier if long_context else ONE
    output_multiplier = price.long_context_output_multiplier if long_context else ONE
    cache_write_price = (
        price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    )
    input_part = (
        uncached * price.input_per_mtok
        + cached * price.cached_input_per_mtok
        + cache_write * cache_write_price
    ) * input_multiplier
    output_part = output * price.output_per_mtok * output_multiplier
    return _quantize((input_part + output_part) * tier / MILLION)


def cost_components(
    *,
    price: Price,
    input_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    service_tier: str | None = "default",
) -> tuple[list[tuple[str, int, Decimal, Decimal, Decimal]], bool, Decimal]:
    """`cost_usd` taken apart for people (the request explorer): one (name, tokens, price per
    1M, multiplier, cost) per component, whether long-context pricing applied, and the
    service-tier multiplier. Reasoning tokens are shown apart from the rest of the output,
    at the output price. The parts are rounded one by one, so their sum may differ from
    `cost_usd` in the tenth decimal place."""
    tier = service_tier_multiplier(service_tier)
    long_context = is_long_context(price, input_tokens)
    input_multiplier = price.long_context_input_multiplier if long_context else ONE
    output_multiplier = price.long_context_output_multiplier if long_context else ONE
    cache_write_price = (
        price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    )
    rows = [
        (
            "input",
            input_tokens - cached_input_tokens - cache_write_tokens,
            price.input_per_mtok,
            input_multiplier,
        ),
        ("cached input", cached_input_tokens, price.cached_input_per_mtok, input_multiplier),
        ("cache write", cache_write_tokens, cache_write_price, input_multiplier),
        ("output", output_tokens - reasoning_tokens, price.output_per_mtok, output_multiplier),
        ("reasoning", reasoning_tokens, price.output_per_mtok, output_multiplier),
    ]
    parts = [
        (
            name,
            tokens,
            per_mtok,
            multiplier * tier,
            _quantize(tokens * per_mtok * multiplier * tier / MILLION),
        )
        for name, tokens, per_mtok, multiplier in rows
        if tokens
    ]
    return parts, long_context, tier


def worst_case_cost_usd(
    *,
    price: Price,
    input_tokens: int,
    max_output_tokens: int,
    service_tier: str | None = "default",
) -> Decimal:
    """The most a call can cost: what a budget reserves before the call.

    Every input token bills as uncached input, or at the cache-write price when that is
    higher (late-2026 models bill cache writes above input, and the provider decides which
    tokens it writes to the cache), and `max_output_tokens` bill as output. Long-context
    and service-tier rules as in `cost_usd`."""
    cache_write = (
        input_tokens
        if price.cache_write_per_mtok is not None
        and price.cache_write_per_mtok > price.input_per_mtok
        else 0
    )
    return cost_usd(
        price=price,
        input_tokens=input_tokens,
        cache_write_tokens=cache_write,
        output_tokens=max_output_tokens,
        service_tier=service_tier,
    )


# --- repricing logged usage ----------------------------------------------------------------


def repriced_cost_by_model(
    usage_qs: QuerySet[UsageRecord], *, at: dt.datetime
) -> dict[str, Decimal]:
    """What the records would cost at the prices in force at `at`, by model name.

    Sums tokens in the database per (model, service tier, long context or not) and costs each
    group once, so it stays fast over millions of rows; the result can differ from a
    per-record sum by the per-record rounding (< 1e-10 USD per record). Records without a
    catalog model, or whose model has no price at `at`, keep their recorded cost.
    """
    _check_aware(at)
    totals: dict[str, Decimal] = {}
    model_ids = {
        row["model_id"]
        for row in usage_qs.order_by().values("model_id").distinct()
        if row["model_id"] is not None
    }
    prices: dict[int, Price] = {}
    for model_id in model_ids:
        try:
            prices[model_id] = price_at(model_id, at)
        except PriceNotFound:
            continue
    repriced = Q(model_id__in=list(prices))
    for model_id, price in prices.items():
        threshold = price.long_context_threshold
        long_context = (
            Case(
                When(input_tokens__gt=threshold, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            )
            if threshold is not None
            else Value(0, output_field=IntegerField())
        )
        groups = (
            usage_qs.filter(model_id=model_id)
            .order_by()
            .annotate(long_context=long_context)
            .values("model__name", "service_tier", "long_context")
            .annotate(
                input_sum=Sum("input_tokens"),
                cached_sum=Sum("cached_input_tokens"),
                write_sum=Sum("cache_write_tokens"),
                output_sum=Sum("output_tokens"),
            )
        )
        for group in groups:
            amount = _group_cost(price, group)
            name = group["model__name"]
            totals[name] = totals.get(name, ZERO) + amount
    kept = (
        usage_qs.exclude(repriced)
        .order_by()
        .values("model_name")
        .annotate(total=MoneySum("cost_usd"))
    )
    for row in kept:
        totals[row["model_name"]] = totals.get(row["model_name"], ZERO) + (row["total"] or ZERO)
    return totals


def _group_cost(price: Price, group: dict) -> Decimal:
    cached = group["cached_sum"] or 0
    cache_write = group["write_sum"] or 0
    return _cost(
        price,
        uncached=(group["input_sum"] or 0) - cached - cache_write,
        cached=cached,
        cache_write=cache_write,
        output=group["output_sum"] or 0,
        long_context=bool(group["long_context"]),
        service_tier=group["service_tier"],
    )
