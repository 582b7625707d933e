from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from prompts.models import Prompt
from prompts.portable import write_path
from prompts.services import prompts_export


class Command(BaseCommand):
    help = (
        "Export prompts (all versions and labels) to a YAML/JSON file, or to a directory "
        "with one file per prompt (<team>/<slug>.yaml)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .yaml/.yml/.json file, or a directory")
        parser.add_argument("--team", help="only this team's prompts (slug)")
        parser.add_argument("--format", choices=["yaml", "json"], help="for a directory")

    def handle(self, *args, path: str, team: str | None, format: str | None, **options):
        prompts = Prompt.objects.all()
        if team:
            prompts = prompts.filter(team__slug=team)
            if not prompts.exists():
                raise CommandError(f"Team {team!r} has no prompts (or does not exist).")
        document = prompts_export(prompts=prompts)
        written = write_path(document, Path(path), format)
        self.stdout.write(
            f"Exported {len(document['prompts'])} prompts to "
            f"{written[0] if len(written) == 1 else path}."
        )
