from django.db import migrations, models


def forget_readable_responses(apps, schema_editor):
    """Stored responses were kept in clear; they expire within a day, so forget them now."""
    apps.get_model("core", "IdempotencyRecord").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0003_hot_generation")]

    operations = [
        migrations.RunPython(forget_readable_responses, migrations.RunPython.noop),
        migrations.RemoveField(model_name="idempotencyrecord", name="response_body"),
        migrations.RemoveField(model_name="idempotencyrecord", name="response_headers"),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="sealed_response",
            field=models.TextField(blank=True),
        ),
    ]
