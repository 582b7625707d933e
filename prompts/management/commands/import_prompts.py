from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from core.errors import ValidationFailed
from prompts.portable import read_path
from prompts.services import prompts_import


class Command(BaseCommand):
    help = (
        "Import prompts from a YAML/JSON file or a directory of them, all or nothing. "
        "Identical versions are left alone, new ones created, labels moved to match."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .yaml/.yml/.json file, or a directory")
        parser.add_argument("--team", help="import every prompt into this team (slug)")

    def handle(self, *args, path: str, team: str | None, **options):
        target = None
        if team:
            target = Team.objects.filter(slug=team).first()
            if target is None:
                raise CommandError(f"No team {team!r}.")
        try:
            result = prompts_import(document=read_path(Path(path)), actor=None, team=target)
        except ValidationFailed as exc:
            lines = [exc.message]
            if isinstance(exc.details, dict):
                lines += [f"  {where}: {message}" for where, message in exc.details.items()]
            raise CommandError("\n".join(lines)) from None
        self.stdout.write(f"Imported: {result.summary()}.")
