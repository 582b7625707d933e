from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('prompts', '0002_label_previous_version_approval_constraints'),
    ]

    operations = [
        migrations.AddField(
            model_name='prompt',
            name='cache_key',
            field=models.CharField(blank=True, help_text='prompt_cache_key for every version; blank: one per version, derived.', max_length=64),
        ),
    ]
