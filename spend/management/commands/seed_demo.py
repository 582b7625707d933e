import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Role, Team, User
from prompts.seed import seed_prompts
from routing.seed import seed_catalog
from spend.models import Budget


class Command(BaseCommand):
    help = (
        "Load demo data: catalog, tiers, default policy, demo team, prompts, admin. Creates what "
        "is missing and changes nothing an operator changed (only the simulator's address "
        "follows --simulator-url while the provider still points at a local simulator)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--simulator-url",
            default=None,
            help="The simulator's base URL (default: the SIMULATOR_URL setting).",
        )

    def handle(self, *args, simulator_url=None, **options):
        with transaction.atomic():
            seed_catalog(simulator_url=simulator_url or settings.SIMULATOR_URL)
            team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo team"})
            admin, password = self._admin_user(team)
            seed_prompts(team=team, author=admin)
            Budget.objects.get_or_create(
                team=team,
                api_key=None,
                defaults={
                    "limit_usd": Decimal("100"),
                    "period_start": timezone.now().replace(
                        day=1, hour=0, minute=0, second=0, microsecond=0
                    ),
                },
            )
        if password:
            self.stdout.write(
                f"Created admin user: username 'admin', password '{password}' (shown once)."
            )
        else:
            self.stdout.write("Demo data is up to date; the admin user already exists.")

    def _admin_user(self, team: Team) -> tuple[User, str | None]:
        admin = User.objects.filter(username="admin").first()
        if admin:
            return admin, None
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", "admin@example.com", password)
        admin.groups.set(Group.objects.filter(name__in=Role.values))
        Membership.objects.create(user=admin, team=team, role=Membership.TeamRole.ADMIN)
        return admin, password
