from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from routing.services import price_sheet_export


class Command(BaseCommand):
    help = "Export the catalog and every price row as a sheet (YAML, or JSON for a .json path)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="file to write; '-' writes YAML to stdout")

    def handle(self, *args, path: str, **options):
        if path == "-":
            self.stdout.write(price_sheet_export(filename="prices.yaml"), ending="")
            return
        Path(path).write_text(price_sheet_export(filename=path), encoding="utf-8")
        self.stdout.write(f"Wrote {path}")
