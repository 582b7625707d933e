"""Money is Decimal end to end. These field settings are shared by every money column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypedDict

from django.db import models


class Digits(TypedDict):
    max_digits: int
    decimal_places: int


# Costs of a single call can be a few millionths of a dollar: keep 10 places.
COST_DIGITS: Digits = {"max_digits": 20, "decimal_places": 10}
# Prices are quoted per 1M tokens, at most to the cent fraction.
PRICE_DIGITS: Digits = {"max_digits": 14, "decimal_places": 6}

ZERO = Decimal("0")
MILLION = Decimal("1000000")


def cost_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(default=ZERO, **COST_DIGITS, **kwargs)


def price_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(**PRICE_DIGITS, **kwargs)


# The largest budget limit: what COST_DIGITS holds (10 digits before the point), rounded down.
MAX_LIMIT_USD = Decimal("1000000000")


def usd_limit_problem(value: Decimal) -> str | None:
    """Why `value` cannot be a budget limit in USD (not a finite number, negative, or beyond
    what the ledger's columns hold), or None when it can."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return "Enter a finite number of dollars."
    if value < 0:
        return "The limit must not be negative."
    if value > MAX_LIMIT_USD:
        return f"The limit must be at most {MAX_LIMIT_USD} USD."
    return None
