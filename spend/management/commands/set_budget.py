"""`set_budget --team <slug> --limit <usd> [--period monthly] [--action block|downgrade]
[--downgrade-to <tier>] [--soft-threshold 0.8]`: create or change a team's budget."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from core.money import usd_exact
from spend.budgets import budget_set
from spend.models import Budget


class Command(BaseCommand):
    help = "Create or change a team's budget."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", required=True, help="Team slug.")
        parser.add_argument("--limit", required=True, help="Limit in USD, e.g. 250 or 12.50.")
        parser.add_argument("--period", default=None, choices=Budget.Period.values)
        parser.add_argument("--action", default=None, choices=Budget.Action.values)
        parser.add_argument("--downgrade-to", default=None, help="Tier name for `downgrade`.")
        parser.add_argument("--soft-threshold", default=None, help="Fraction, e.g. 0.8.")

    def handle(self, *args, **options) -> None:
        from accounts.models import Team
        from core.errors import AppError

        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"No team with slug {options['team']!r}.")
        try:
            limit = Decimal(options["limit"])
            soft = Decimal(options["soft_threshold"]) if options["soft_threshold"] else None
        except (InvalidOperation, ValueError):
            raise CommandError("--limit and --soft-threshold must be numbers.") from None
        try:
            budget = budget_set(
                team=team,
                limit_usd=limit,
                period=options["period"],
                action=options["action"],
                downgrade_tier=options["downgrade_to"],
                soft_threshold=soft,
            )
        except AppError as exc:
            raise CommandError(exc.message) from None
        tier = f" to {budget.downgrade_tier.name}" if budget.downgrade_tier else ""
        self.stdout.write(
            f"Budget for {team.slug}: {usd_exact(budget.limit_usd)} {budget.period}, "
            f"action {budget.action}{tier}; spent {usd_exact(budget.spent_usd)} this period."
        )
