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
    help = "Load demo data (idempotent): catalog, tiers, default policy, demo team, prompts, admin."

    def handle(self, *args, **options):
        with transaction.atomic():
            seed_catalog(simulator_url=settings.SIMULATOR_URL)
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
        Membership.objects.create(user=admin, team=team)
        return admin, password
