import core.money
from decimal import Decimal
from django.db import migrations

# Budget counters become MoneyCounterField: on PostgreSQL the same numeric(20,10) (nothing to
# do); on SQLite integer units of 1e-10 dollars. The values are converted while the columns
# still have NUMERIC affinity (an INTEGER stored there stays one), so the table rebuilt by the
# AlterFields copies units into columns checked to hold integers; going back, the rebuilt
# NUMERIC columns get the units and turn them back into dollars.
COLUMNS = {
    "spend_budget": ("limit_usd", "spent_usd", "reserved_usd"),
    "spend_budgetreservation": ("amount_usd",),
}


def _convert(schema_editor, convert) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, columns in COLUMNS.items():
            cursor.execute(f"SELECT id, {', '.join(columns)} FROM {table}")
            for row_id, *values in cursor.fetchall():
                new = [None if v is None else convert(column, v) for column, v in zip(columns, values)]
                assignments = ", ".join(f"{column} = %s" for column in columns)
                cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*new, row_id])


def _to_units(column: str, value) -> int:
    # A REAL holds at most 15-17 significant digits; its shortest repr gives back the decimal
    # that was written (as core.money's money_sum reads it). A limit above the new ceiling
    # (earlier versions allowed $1B) becomes the ceiling: it would not fit in units.
    dollars = Decimal(str(value))
    if column == "limit_usd":
        dollars = min(dollars, core.money.MAX_LIMIT_USD)
    return core.money.usd_units(dollars)


def _to_dollars(column: str, value) -> str:
    return str(core.money.units_usd(int(value)))


def to_units(apps, schema_editor) -> None:
    _convert(schema_editor, _to_units)


def to_dollars(apps, schema_editor) -> None:
    _convert(schema_editor, _to_dollars)


class Migration(migrations.Migration):

    dependencies = [
        ('spend', '0009_lever_savings'),
    ]

    operations = [
        migrations.RunPython(to_units, to_dollars),
        migrations.AlterField(
            model_name='budget',
            name='limit_usd',
            field=core.money.MoneyCounterField(decimal_places=10, max_digits=20),
        ),
        migrations.AlterField(
            model_name='budget',
            name='reserved_usd',
            field=core.money.MoneyCounterField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.AlterField(
            model_name='budget',
            name='spent_usd',
            field=core.money.MoneyCounterField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.AlterField(
            model_name='budgetreservation',
            name='amount_usd',
            field=core.money.MoneyCounterField(decimal_places=10, max_digits=20),
        ),
    ]
