from django.core.management.base import BaseCommand

from spend.rollups import usage_rollup_rebuild, usage_rollup_run


class Command(BaseCommand):
    help = "Bring the daily usage rollups up to date (what Celery beat runs), or rebuild them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild", action="store_true", help="drop every rollup and recompute from the ledger"
        )

    def handle(self, *args, rebuild: bool, **options):
        result = usage_rollup_rebuild() if rebuild else usage_rollup_run()
        until = result.rolled_until.isoformat() if result.rolled_until else "nothing yet"
        self.stdout.write(
            f"Rolled up {len(result.days)} days ({result.rows} rows); rollups cover records "
            f"before {until}."
        )
