from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from routing.pricesheet import PriceSheetError
from routing.services import PriceImportResult, price_sheet_import


def print_result(command: BaseCommand, result: PriceImportResult, *, verbosity: int = 1) -> None:
    write = command.stdout.write
    for warning in result.warnings:
        write(command.style.WARNING(f"warning: {warning}"))
    if result.skipped:
        write(f"skipped {len(result.skipped)} entries (use -v 2 to list them)")
        if verbosity > 1:
            for line in result.skipped:
                write(f"  skipped {line}")
    for change in result.changes:
        write(f"{change.action:13} {change.model}: {change.summary}")
    counts = ", ".join(f"{count} {action}" for action, count in sorted(result.counts.items()))
    if not result.changes:
        write("No changes: the catalog already matches the sheet.")
    elif result.applied:
        write(command.style.SUCCESS(f"Applied: {counts}."))
    else:
        write(f"Dry run, nothing applied: {counts}.")


class Command(BaseCommand):
    help = (
        "Import model prices from a price sheet: our YAML/JSON format or LiteLLM's price map. "
        "Nothing is applied if the sheet has any error."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="show the changes only")
        parser.add_argument(
            "--effective-from",
            help="ISO date/time for rows without one (default: now), e.g. 2026-12-01T00:00:00Z",
        )
        parser.add_argument(
            "--create-models",
            action="store_true",
            default=None,
            help="also add models the catalog lacks (default for our format; off for LiteLLM)",
        )

    def handle(self, *args, path: str, dry_run: bool, effective_from, create_models, **options):
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        start = None
        if effective_from:
            start = parse_datetime(effective_from)
            if start is None:
                raise CommandError(f"--effective-from: not a date/time: {effective_from!r}")
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
        try:
            result = price_sheet_import(
                text=text,
                filename=file.name,
                dry_run=dry_run,
                effective_from=start,
                create_models=create_models,
            )
        except PriceSheetError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        print_result(self, result, verbosity=options["verbosity"])
