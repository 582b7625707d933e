"""Money is Decimal end to end. These field settings are shared by every money column."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
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


class MoneyTotalField(models.DecimalField):
    """What `MoneySum` answers: a Decimal, quantized to the column's places on every backend."""

    def get_internal_type(self) -> str:
        # Not "DecimalField": SQLite's converter for that reads the value as a 15-digit float.
        return "MoneyTotalField"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        if value is None:
            return None
        exact = value if isinstance(value, Decimal) else Decimal(str(value))
        return exact.quantize(Decimal(1).scaleb(-self.decimal_places))


class MoneySum(models.Sum):
    """SUM of a cost column, exact on every backend: PostgreSQL sums numeric exactly; SQLite
    sums in binary floating point, so there it is `money_sum`, a Decimal sum in Python
    (`sqlite_money_sum`)."""

    def __init__(self, *expressions: Any, **extra: Any) -> None:
        extra.setdefault("output_field", MoneyTotalField(**COST_DIGITS))
        super().__init__(*expressions, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="money_sum", **extra)


class _ExactSum:
    """SQLite aggregate: each value as the decimal it was written as (a REAL keeps 15
    significant digits, and its shortest repr gives them back), summed as Decimal."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.total = (self.total or ZERO) + Decimal(str(value))

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


def sqlite_money_sum(*, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: registers `money_sum` on each new SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("money_sum", 1, _ExactSum)


def cost_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(default=ZERO, **COST_DIGITS, **kwargs)


def price_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(**PRICE_DIGITS, **kwargs)


# The largest budget limit: $100M, so that a budget's counters (spent + reserved, at most
# about the limit) stay far inside SQLite's 64-bit integer units (2^63 x 1e-10 = $922M).
MAX_LIMIT_USD = Decimal("100000000")


def usd_limit_problem(value: Decimal) -> str | None:
    """Why `value` cannot be a budget limit in USD (not a finite number, negative, or beyond
    what the ledger's columns hold), or None when it can."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return "Enter a finite number of dollars."
    if value < 0:
        return "The limit must not be negative."
    if value > MAX_LIMIT_USD:
        return f"The limit must be at most {usd(MAX_LIMIT_USD)} (the largest budget limit)."
    return None


# --- printing money: every page, message, alert and command goes through these ----------------

CENT = Decimal("0.01")


def decimal_text(value: Decimal, min_places: int = 0) -> str:
    """Every significant digit, never an exponent (`Decimal("1E-11")` → "0.00000000001"),
    and at least `min_places` decimals: 4.5 → "4.50" with two."""
    text = format(Decimal(value).normalize(), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(min_places, "0")
    return f"{whole}.{fraction}" if fraction else whole


def usd(value: Decimal | None) -> str:
    """Money to read: $1,234.57 from a dollar up; below, four significant digits ($0.58,
    $0.0123, $0.000045: one call can cost a few millionths). "—" for None."""
    if value is None:
        return "—"
    amount = Decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1 or amount == 0:
        return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    places = 3 - amount.adjusted()  # adjusted(): the leading digit's exponent (-2 for 0.0123)
    shown = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{sign}${decimal_text(shown, 2)}"


def usd_exact(value: Decimal | None) -> str:
    """Money to the last digit the ledger holds ($0.0000123, $4.50), for prices and tooltips."""
    if value is None:
        return "—"
    amount = Decimal(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}${decimal_text(abs(amount), 2)}"
