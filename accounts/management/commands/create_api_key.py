from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create a team API key and print it, alone, on the last line of stdout."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, team: str, name: str, **options):
        try:
            team_obj = Team.objects.get(slug=team)
        except Team.DoesNotExist:
            raise CommandError(f"No team with slug {team!r}.") from None
        api_key, raw_key = api_key_create(team=team_obj, name=name)
        self.stderr.write(
            f"Created key {api_key.prefix}… for team {team_obj.slug}; it is shown once."
        )
        self.stdout.write(raw_key)
