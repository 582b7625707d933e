"""The budget counter statements, per database vendor (spend.budgets runs them).

PostgreSQL adds numeric(20,10) exactly; its statements are the ones budgets.py has always
run, unchanged to the byte (tests/spend/test_money_counters.py pins their hashes). SQLite
stores the counters, the limit and the reservation amounts as integer units of 1e-10 dollars
(`core.money.MoneyCounterField`), and its statements add and compare units: every parameter
that is money is passed as units (`core.money.usd_units`), every result read back with
`core.money.units_usd`, and no ROUND is needed. A sum past SQLite's 64-bit integers turns
into a REAL, which the columns' check refuses (an IntegrityError, never a wrapped value).

Literal table names (checked against the models at import) keep the statements static.
Parameters are only used in arithmetic: SQLite compares a number with a text parameter as
text.
"""

from __future__ import annotations

from dataclasses import dataclass

from spend.models import Budget, BudgetReservation

assert Budget._meta.db_table == "spend_budget"
assert BudgetReservation._meta.db_table == "spend_budgetreservation"

# A lease's share of the headroom is `fraction` of it, rounded half up to the last place.
# SQLite gets the fraction in parts per million (`FRACTION_SCALE`), PostgreSQL as a decimal
# of as many places, so both compute the same exact product and round it the same way.
FRACTION_SCALE = 1_000_000


@dataclass(frozen=True, slots=True)
class BudgetStatements:
    """One vendor's statements. PostgreSQL's top-up is `topup`, one round trip; SQLite's is
    its steps (`renew_open_reservation` to `grow_reservation`, spend.budgets._top_up). Both
    run the rest: giving back a hold, and settling (the usage writer's `budget_settle`; on
    PostgreSQL in the web server, spend.usage_sql's batch does it)."""

    topup: str
    renew_open_reservation: str
    grant: str
    state: str
    reserve: str
    new_reservation: str
    grow_reservation: str
    unreserve_budget: str
    unreserve_reservation: str
    close_reservation: str
    shrink_reservation: str
    settle: str


def _statements(exact: bool) -> BudgetStatements:
    """Every statement for one vendor: `exact` (SQLite's integer units) needs no ROUND."""

    def rounded(expression: str) -> str:
        return expression if exact else f"ROUND({expression}, 10)"

    # The period rolls over inside the statements: a row whose period_start is before the
    # current period's start counts its spend as zero and moves period_start (idempotent at
    # the boundary).
    spent = "(CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END)"
    roll_over = (
        f"spent_usd = {spent}, "
        "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END"
    )
    # What a top-up grants: the shortfall `need`, plus a share of the headroom left after it
    # (`fraction`, at most `cap`): a lease grows less the closer the budget is to its limit,
    # and never past it (fraction ≤ 0.5 keeps the rounded share within the headroom).
    # `credit`: what this process's settlements not yet written will take off spent +
    # reserved (the unused part of finished requests' holds, less their spend): the headroom
    # is exact before the usage writer catches up.
    left = rounded(f"limit_usd - {spent} - reserved_usd - %(need)s + %(credit)s")
    if exact:
        # left x fraction / 1e6, rounded half up (left ≥ 0: only rows with headroom grant),
        # in two parts so that no product passes 64 bits ("%%": the modulo, escaped).
        scale = FRACTION_SCALE
        share = (
            f"(({left}) / {scale} * %(fraction)s "
            f"+ ((({left}) %% {scale}) * %(fraction)s + {scale // 2}) / {scale})"
        )
    else:
        share = f"ROUND({left} * %(fraction)s, 10)"
    grant = f"(%(need)s + CASE WHEN {share} - %(cap)s < 0 THEN {share} ELSE %(cap)s + 0 END)"

    return BudgetStatements(
        # PostgreSQL, one round trip: lock the lease's row (it must still be open: the sweeper
        # may have released it) and the budget row, which must have room for `need`; move the
        # budget's reserved up by the grant, and create or grow the reservation row by the
        # same amount. The locked budget row is re-read after any concurrent update, so the
        # grant is computed from the amounts it is added to.
        topup=(
            "WITH lk AS (SELECT id FROM spend_budgetreservation "  # noqa: S608 - constant fragments
            "WHERE id = %(rid)s AND settled_at IS NULL FOR UPDATE), "
            f"cur AS (SELECT id, {grant} AS granted FROM spend_budget "
            f"WHERE id = %(id)s AND {left} >= 0 "
            "AND (%(rid)s::bigint IS NULL OR EXISTS (SELECT 1 FROM lk)) FOR UPDATE), "
            f"b AS (UPDATE spend_budget AS t SET {roll_over}, "
            "reserved_usd = t.reserved_usd + cur.granted, updated_at = %(now)s "
            "FROM cur WHERE t.id = cur.id "
            "RETURNING t.id, t.limit_usd, t.spent_usd, t.reserved_usd, cur.granted), "
            "new AS (INSERT INTO spend_budgetreservation "
            "(budget_id, request_id, amount_usd, created_at) "
            "SELECT b.id, %(request_id)s, b.granted, %(now)s FROM b "
            "WHERE %(rid)s::bigint IS NULL RETURNING id), "
            "grow AS (UPDATE spend_budgetreservation "
            "SET amount_usd = amount_usd + (SELECT granted FROM b), created_at = %(now)s "
            "WHERE id = %(rid)s AND EXISTS (SELECT 1 FROM b) RETURNING id) "
            "SELECT b.limit_usd, b.spent_usd, b.reserved_usd, b.granted, "
            "COALESCE((SELECT id FROM new), (SELECT id FROM grow)) FROM b "
            # refused: the budget as it is, to tell a full budget from one held by requests
            f"UNION ALL SELECT limit_usd, {spent}, reserved_usd, NULL, NULL FROM spend_budget "
            "WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM b)"
        ),
        # SQLite: the same steps as separate statements inside one IMMEDIATE transaction,
        # which holds the database's write lock from its first statement.
        renew_open_reservation=(
            "UPDATE spend_budgetreservation SET created_at = %(now)s "
            "WHERE id = %(rid)s AND settled_at IS NULL"
        ),
        grant=f"SELECT {grant} FROM spend_budget WHERE id = %(id)s AND {left} >= 0",  # noqa: S608
        state=f"SELECT limit_usd, {spent}, reserved_usd FROM spend_budget WHERE id = %(id)s",  # noqa: S608
        reserve=(
            f"UPDATE spend_budget SET {roll_over}, "  # noqa: S608 - constant fragments
            f"reserved_usd = {rounded('reserved_usd + %(amount)s')}, updated_at = %(now)s "
            "WHERE id = %(id)s RETURNING limit_usd, spent_usd, reserved_usd"
        ),
        new_reservation=(
            "INSERT INTO spend_budgetreservation (budget_id, request_id, amount_usd, created_at) "
            "VALUES (%(id)s, %(request_id)s, %(amount)s, %(now)s) RETURNING id"
        ),
        grow_reservation=(
            "UPDATE spend_budgetreservation "  # noqa: S608 - constant fragments
            f"SET amount_usd = {rounded('amount_usd + %(amount)s')} WHERE id = %(rid)s"
        ),
        unreserve_budget=(
            "UPDATE spend_budget "  # noqa: S608 - constant fragments
            f"SET reserved_usd = {rounded('reserved_usd - %(amount)s')} WHERE id = %(id)s"
        ),
        unreserve_reservation=(
            "UPDATE spend_budgetreservation "  # noqa: S608 - constant fragments
            f"SET amount_usd = {rounded('amount_usd - %(amount)s')} WHERE id = %(rid)s"
        ),
        # Settling (the usage writer). A row the sweeper already closed releases nothing.
        close_reservation=(
            "UPDATE spend_budgetreservation SET settled_at = %(now)s "
            "WHERE id = %(rid)s AND settled_at IS NULL RETURNING amount_usd"
        ),
        shrink_reservation=(
            "UPDATE spend_budgetreservation "  # noqa: S608 - constant fragments
            f"SET amount_usd = {rounded('amount_usd - %(release)s')}, "
            "created_at = %(now)s WHERE id = %(rid)s AND settled_at IS NULL"
        ),
        settle=(
            "UPDATE spend_budget SET "  # noqa: S608 - constant fragments
            f"spent_usd = {rounded(f'{spent} + %(amount)s')}, "
            "period_start = CASE WHEN period_start < %(start)s THEN %(start)s "
            "ELSE period_start END, "
            f"reserved_usd = {rounded('reserved_usd - %(released)s')}, updated_at = %(now)s "
            "WHERE id = %(id)s"
        ),
    )


POSTGRESQL = _statements(exact=False)
SQLITE = _statements(exact=True)


def budget_statements(vendor: str) -> BudgetStatements:
    """The statements for `connection.vendor`."""
    return SQLITE if vendor == "sqlite" else POSTGRESQL
