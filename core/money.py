"""Money is Decimal end to end. These field settings are shared by every money column."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypedDict

from django.db import DataError, models
from django.db.models import F, Value
from django.db.models.expressions import CombinedExpression


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


# Budget counters on SQLite: integer units of 1e-10 dollars (COST_DIGITS' last place).
UNITS_PER_USD = 10 ** COST_DIGITS["decimal_places"]
_PLACES = Decimal(1).scaleb(-COST_DIGITS["decimal_places"])
_MAX_UNITS = 2**63 - 1  # SQLite's INTEGER: about $922M in units


def usd_units(value: Decimal) -> int:
    """Dollars as integer units of 1e-10, rounded half away from zero as PostgreSQL rounds
    into numeric(20,10); DataError beyond SQLite's 64-bit integers (never wrapped)."""
    scaled = Decimal(value).scaleb(COST_DIGITS["decimal_places"])
    # Checked before rounding: quantizing past the context's 28 digits would raise
    # InvalidOperation, not the DataError the usage writer parks a ledger for; and within
    # the bound (an integer) the rounded value stays within it.
    if not scaled.is_finite() or abs(scaled) > _MAX_UNITS:
        raise DataError(f"{value} USD is beyond what a budget counter holds on SQLite.")
    return int(scaled.quantize(1, ROUND_HALF_UP))


def units_usd(units: int) -> Decimal:
    return Decimal(units).scaleb(-COST_DIGITS["decimal_places"]).quantize(_PLACES)


class MoneyCounterField(models.DecimalField):
    """Money that SQL adds to, subtracts from and compares (budget counters and limits),
    exact on every backend. PostgreSQL: numeric(20,10), as any cost column. SQLite, whose
    decimals are binary floating point (drifting at the 10th place past about $100,000): an
    INTEGER of 1e-10 dollar units (`usd_units`), checked to stay one, so that an overflow
    (SQLite turns an integer sum past 64 bits into a REAL) fails instead of drifting. Raw
    statements pass amounts through `usd_units` on SQLite (spend.budget_sql); ORM updates
    use `counter_add`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", COST_DIGITS["max_digits"])
        kwargs.setdefault("decimal_places", COST_DIGITS["decimal_places"])
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        # Not "DecimalField": SQLite's converter for that reads the value as a 15-digit float.
        return "MoneyCounterField"

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "sqlite":
            return "integer"
        return connection.data_types["DecimalField"] % self.db_type_parameters(connection)

    def db_check(self, connection: Any) -> str | None:
        if connection.vendor == "sqlite":
            column = connection.ops.quote_name(self.column)
            return f"typeof({column}) IN ('integer', 'null')"
        return None

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if connection.vendor != "sqlite":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        return usd_units(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        if value is None or connection.vendor != "sqlite":
            return value
        return units_usd(int(value))


def counter_add(name: str, amount: Decimal) -> CombinedExpression:
    """`F(name) + amount` for a `MoneyCounterField` column, with the amount in the column's
    units on every backend: exact, with no ROUND."""
    counter = MoneyCounterField()
    return CombinedExpression(
        F(name), "+", Value(amount, output_field=counter), output_field=counter
    )


class MoneySum(models.Sum):
    """SUM of a cost column, exact on every backend: PostgreSQL sums numeric exactly; SQLite
    sums in binary floating point, so there it is `money_sum`, a Decimal sum in Python
    (`sqlite_money_sum`), or, over a `MoneyCounterField`, SQLite's integer SUM of units
    (exact, and an error on overflow)."""

    def __init__(self, *expressions: Any, **extra: Any) -> None:
        extra.setdefault("output_field", MoneyTotalField(**COST_DIGITS))
        super().__init__(*expressions, **extra)

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        resolved = super().resolve_expression(*args, **kwargs)
        if resolved._of_counters():
            resolved.output_field = MoneyCounterField()
        return resolved

    def _of_counters(self) -> bool:
        source = self.get_source_expressions()[0]
        return isinstance(getattr(source, "output_field", None), MoneyCounterField)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        if self._of_counters():
            return super().as_sql(compiler, connection, **extra)
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
