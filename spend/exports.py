"""CSV exports of the usage ledger and of its daily totals, streamed in chunks.

Money is written as the exact Decimal (no rounding, no float); times in ISO 8601 with their
offset, in settings.TIME_ZONE. Cells a spreadsheet would run as
a formula are quoted by core.csvexport.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Q

from accounts.models import Team
from core.csvexport import CHUNK_ROWS, csv_chunks
from prompts.models import Prompt
from spend.rollups import local_tz
from spend.selectors import Figures, UsageFilters, context_load, usage_breakdown

USAGE_COLUMNS = [
    ("created_at", "created_at"),
    ("request_id", "request_id"),
    ("team", "team__slug"),
    ("api_key", "api_key__prefix"),
    ("prompt", "prompt_version__prompt__slug"),
    ("prompt_version", "prompt_version__number"),
    ("purpose", "purpose"),
    ("model", "model_name"),
    ("tier", "tier_name"),
    ("service_tier", "service_tier"),
    ("rule", "rule"),
    ("attempt", "attempt"),
    ("stream", "stream"),
    ("status", "status"),
    ("error_code", "error_code"),
    ("input_tokens", "input_tokens"),
    ("cached_input_tokens", "cached_input_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("output_tokens", "output_tokens"),
    ("reasoning_tokens", "reasoning_tokens"),
    ("cost_usd", "cost_usd"),
    ("latency_ms", "latency_ms"),
    ("ttft_ms", "ttft_ms"),
]

ROLLUP_COLUMNS = [
    "day",
    "team",
    "prompt",
    "model",
    "tier",
    "purpose",
    "requests",
    "errors",
    "cancelled",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "flagship_cost_usd",
    "savings_usd",  # by routing: the same tokens on the flagship, less what was paid
    "batch_saved_usd",
    "cache_saved_usd",
    "latency_ms_avg",
    "latency_ms_p95",
]


def _record_batches(filters: UsageFilters, fields: list[str]) -> Iterator[tuple]:
    """The records in (created_at, id) order, CHUNK_ROWS per query: keyset pages ride the
    (team, created_at) index and hold no cursor open between chunks."""
    base = filters.records().order_by("created_at", "id")
    after: tuple | None = None
    while True:
        page = base
        if after is not None:
            page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
        batch = list(page.values_list("created_at", "id", *fields)[:CHUNK_ROWS])
        for row in batch:
            yield row[2:]
        if len(batch) < CHUNK_ROWS:
            return
        after = batch[-1][:2]


def usage_csv_rows(filters: UsageFilters) -> Iterator[str]:
    tz = local_tz()
    fields = [field for _name, field in USAGE_COLUMNS]

    def rows() -> Iterator[list]:
        for record in _record_batches(filters, fields):
            row = list(record)
            row[0] = record[0].astimezone(tz).isoformat()
            yield row

    return csv_chunks([name for name, _field in USAGE_COLUMNS], rows())


def rollup_csv_rows(filters: UsageFilters) -> Iterator[str]:
    dims = ["day", "team_id", "prompt_id", "model_name", "tier_name", "purpose"]
    breakdown = usage_breakdown(filters=filters, dims=dims, context=context_load())
    teams = dict(Team.objects.filter(id__in=filters.team_ids).values_list("id", "slug"))
    prompt_ids = {key[2] for key in breakdown if key[2] is not None}
    prompts = dict(Prompt.objects.filter(id__in=prompt_ids).values_list("id", "slug"))

    def rows() -> Iterator[list]:
        for key in sorted(breakdown, key=lambda k: (k[0], teams.get(k[1], ""), *map(str, k[2:]))):
            day, team_id, prompt_id, model, tier, purpose = key
            figures = Figures(key=key, label="", totals=breakdown[key])
            totals = figures.totals
            avg, p95 = figures.avg_latency_ms, figures.p95_latency_ms
            yield [
                day.isoformat(),
                teams.get(team_id, team_id),
                prompts.get(prompt_id, ""),
                model,
                tier,
                purpose,
                totals["requests"],
                totals["errors"],
                totals["cancelled"],
                totals["input_tokens"],
                totals["cached_input_tokens"],
                totals["cache_write_tokens"],
                totals["output_tokens"],
                totals["reasoning_tokens"],
                totals["cost_usd"],
                totals["flagship_cost_usd"],
                figures.routing_saved,
                figures.batch_saved,
                figures.cache_saved,
                "" if avg is None else avg,
                "" if p95 is None else p95,
            ]

    return csv_chunks(ROLLUP_COLUMNS, rows())
