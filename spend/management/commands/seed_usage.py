from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Team
from core.money import usd
from spend.demo import usage_demo_create
from spend.rollups import usage_rollup_run
from spend.selectors import budget_statuses


class Command(BaseCommand):
    help = "Write synthetic usage for a team (demo data for the dashboard), then roll it up."

    def add_arguments(self, parser):
        parser.add_argument("--team", default="demo")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--per-day", type=int, default=80)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, team, days, per_day, seed, **options):
        found = Team.objects.filter(slug=team).first()
        if found is None:
            raise CommandError(f"No team {team!r} (run seed_demo first).")
        count = usage_demo_create(
            team=found, days=days, per_day=per_day, end=timezone.now(), seed=seed
        )
        result = usage_rollup_run()
        self.stdout.write(
            f"Wrote {count} usage records for {team}; rolled up {len(result.days)} days."
        )
        for status in budget_statuses(team_ids=[found.id]):
            owner = status.budget.owner
            self.stdout.write(
                f"Charged to the {owner} budget: {usd(status.spent)} of {usd(status.limit)} "
                f"({status.used_pct}%) this {status.budget.period} period."
            )
            if status.state == "limit":
                self.stdout.write(
                    self.style.WARNING(
                        f"The {owner} budget is at its limit: requests will be "
                        f"{status.limit_label}. Raise it with `manage.py set_budget`."
                    )
                )
