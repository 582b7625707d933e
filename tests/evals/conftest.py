"""Evaluation fixtures: the playground's (roles, a fresh cache, the triage prompt, workers),
a pairwise judge on triage, and finished batch runs built without a worker."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from evals import services
from evals.models import Evaluator
from playground.columns import ColumnSpec
from playground.models import Job, JobItem
from playground.runner import gateway_cleanup
from simulator import quality
from tests.playground.conftest import (  # noqa: F401 (fixtures)
    TRIAGE_SCHEMA,
    _fresh_cache,
    _roles,
    job_worker,
    tiers,
    triage,
    triage_prompt,
)

RUBRIC = "Prefer the answer whose category and urgency fit the message."


@pytest.fixture
def pairwise(triage, alice) -> Evaluator:  # noqa: F811 (the fixture above)
    return services.evaluator_create(
        prompt=triage.prompt,
        name="judge",
        kind=Evaluator.Kind.PAIRWISE_JUDGE,
        config={"rubric": RUBRIC, "judge": "tier:flagship"},
        actor=alice,
    )


@pytest.fixture
def json_check(triage, alice) -> Evaluator:  # noqa: F811 (the fixture above)
    return services.evaluator_create(
        prompt=triage.prompt,
        name="valid json",
        kind=Evaluator.Kind.CHECK,
        config={"check": "json"},
        actor=alice,
    )


def run_async(coroutine_function, **kwargs):
    """What a Celery task does: run, then release this event loop's upstream clients."""

    async def run():
        try:
            return await coroutine_function(**kwargs)
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()


def triage_input(row: int) -> str:
    """The user message the triage prompt renders for a row (channel email)."""
    return f"Channel: email\nTicket {row}: the invoice is wrong"


def right_and_flawed(row: int) -> tuple[str, str]:
    right = quality.right_answer(TRIAGE_SCHEMA, triage_input(row))
    urgency = next(u for u in ("low", "medium", "high") if u != right["urgency"])
    return json.dumps(right), json.dumps({**right, "urgency": urgency})


def finished_job(
    team, version, outputs: list[tuple[str, str]], columns=("mini", "flagship")
) -> Job:
    """A done batch run whose rows answered `outputs` (cheap column, flagship column)."""
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        prompt_version=version,
        columns=[ColumnSpec(tier=tier).to_dict() for tier in columns],
        status=Job.Status.DONE,
        total_items=2 * len(outputs),
        done_items=2 * len(outputs),
    )
    for row, pair in enumerate(outputs):
        for column, output in enumerate(pair):
            JobItem.objects.create(
                job=job,
                row_index=row,
                column_index=column,
                input={"variables": {"message": f"Ticket {row}: the invoice is wrong"}},
                status=JobItem.Status.DONE,
                output=output,
                tier_name=columns[column],
            )
    return job


def logged_record(team, version, request_id: str, **extra):
    """A gateway request's usage record as the gateway writes it for a team that stores
    content (pass request_body=None for one that does not)."""
    from django.utils import timezone

    from spend.models import Purpose, UsageRecord

    return UsageRecord.objects.create(
        created_at=extra.pop("created_at", None) or timezone.now(),
        request_id=request_id,
        team=team,
        prompt_version=version,
        purpose=extra.pop("purpose", Purpose.GATEWAY),
        model_name="gpt-5.4-nano",
        tier_name="nano",
        request_body=extra.pop(
            "request_body",
            {"instructions": "Triage.", "input": "Ticket: the invoice is wrong"},
        ),
        response_body=extra.pop(
            "response_body", {"output_text": '{"category": "billing", "urgency": "low"}'}
        ),
        **extra,
    )
