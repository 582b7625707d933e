from decimal import Decimal
from django.db import migrations, models


def rollups_reset(apps, schema_editor):
    # Rows rolled up before these columns hold zero for both levers: drop them and move the
    # watermark back, so the next rollup run (Celery beat) recomputes every day from the
    # ledger. Until then the dashboard reads the raw records, exactly.
    apps.get_model("spend", "DailyRollup").objects.all().delete()
    apps.get_model("spend", "DailySummary").objects.all().delete()
    apps.get_model("spend", "RollupState").objects.update(rolled_until=None, last_record_id=0)


class Migration(migrations.Migration):

    dependencies = [
        ('spend', '0008_explorer_metadata_sorts'),
    ]

    operations = [
        migrations.AddField(
            model_name='dailyrollup',
            name='batch_saved_usd',
            field=models.DecimalField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='cache_saved_usd',
            field=models.DecimalField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.AddField(
            model_name='dailysummary',
            name='batch_saved_usd',
            field=models.DecimalField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.AddField(
            model_name='dailysummary',
            name='cache_saved_usd',
            field=models.DecimalField(decimal_places=10, default=Decimal('0'), max_digits=20),
        ),
        migrations.RunPython(rollups_reset, migrations.RunPython.noop),
    ]
