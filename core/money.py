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
