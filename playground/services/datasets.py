"""Datasets: store an uploaded file's rows and report rows that a prompt version cannot render."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import Team, User
from core.errors import InvalidVariables, PayloadTooLarge, ValidationFailed
from playground import datasets
from playground.models import Dataset, DatasetRow
from playground.services.variables import invalid_variables_text, variables_check
from prompts.models import PromptVersion

BULK_BATCH = 500


@transaction.atomic
def dataset_create(
    *, team: Team, user: User | None, filename: str, data: bytes, name: str = ""
) -> Dataset:
    """Parse and store an uploaded dataset. Any bad line rejects the whole file: 422 with
    every error and its line number (nothing is stored); 413 over the size limit."""
    limit = settings.PLAYGROUND_DATASET_MAX_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is {len(data):,} bytes; the limit is {limit:,} bytes.")
    parsed = datasets.parse_dataset(filename, data, max_rows=settings.PLAYGROUND_DATASET_MAX_ROWS)
    if not parsed.ok:
        raise ValidationFailed(
            f"The file has {len(parsed.errors)} problem{'s' if len(parsed.errors) > 1 else ''}.",
            details=[{"line": e.line, "message": e.message} for e in parsed.errors],
        )
    dataset = Dataset.objects.create(
        team=team,
        created_by=user,
        name=(name or filename)[:200],
        format=parsed.format,
        columns=parsed.columns,
        row_count=len(parsed.rows),
        size_bytes=len(data),
    )
    DatasetRow.objects.bulk_create(
        (
            DatasetRow(dataset=dataset, index=index, line_number=line, values=values)
            for index, (line, values) in enumerate(parsed.rows)
        ),
        batch_size=BULK_BATCH,
    )
    return dataset


def dataset_row_errors(
    *, dataset: Dataset, version: PromptVersion, mapping: dict[str, str], limit: int = 50
) -> list[datasets.RowError]:
    """Rows whose variables do not fit the version's schema, with their line numbers."""
    errors: list[datasets.RowError] = []
    for row in dataset.rows.all().iterator(chunk_size=1000):
        try:
            variables = datasets.row_variables(
                row.values, mapping=mapping, variables=version.variables
            )
            variables_check(version=version, variables=variables)
        except ValueError as exc:
            errors.append(datasets.RowError(row.line_number, str(exc)))
        except InvalidVariables as exc:
            errors.append(datasets.RowError(row.line_number, invalid_variables_text(exc)))
        if len(errors) >= limit:
            break
    return errors
