import core.money
from decimal import Decimal
from django.db import migrations

# Job.cost_usd becomes a MoneyCounterField (items' costs are added to it in SQL): the same
# numeric(20,10) on PostgreSQL (nothing to do); integer units of 1e-10 dollars on SQLite,
# converted while the column still has NUMERIC affinity (see spend.0010).


def _convert(schema_editor, convert) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, cost_usd FROM playground_job")
        for job_id, cost in cursor.fetchall():
            cursor.execute(
                "UPDATE playground_job SET cost_usd = %s WHERE id = %s", [convert(cost), job_id]
            )


def to_units(apps, schema_editor) -> None:
    # A REAL's shortest repr gives back the decimal that was written.
    _convert(schema_editor, lambda cost: core.money.usd_units(Decimal(str(cost))))


def to_dollars(apps, schema_editor) -> None:
    _convert(schema_editor, lambda units: str(core.money.units_usd(int(units))))


class Migration(migrations.Migration):

    dependencies = [
        ('playground', '0004_explorer_links'),
    ]

    operations = [
        migrations.RunPython(to_units, to_dollars),
        migrations.AlterField(
            model_name='job',
            name='cost_usd',
            field=core.money.MoneyCounterField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
    ]
