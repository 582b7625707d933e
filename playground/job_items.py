"""A job's items: the runner's view of a job, an item's checks, settling an item, closing the job.

Shared by the runner (`playground.runner`) and the jobs that wait on a provider's batch
(`playground.waiting`).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Team
from core.money import counter_add
from playground import checks, hooks
from playground.columns import ColumnSpec
from playground.models import Job, JobItem
from playground.services.jobs import job_counters_refresh
from spend.models import Purpose

# What an item of a team that stores no content loses once it has run (its checks are done).
_NO_CONTENT = {"input": {}, "expected": None, "output": ""}


def item_settle(
    item_id: int, job_id: int, fields: dict[str, Any], status: str, *, no_content: bool = False
) -> bool:
    """Record an item's outcome and count it in the job, in one transaction; False if the
    item was no longer running (cancelled meanwhile). An item of a team that stores no content
    keeps its figures and checks, not its input or output."""
    if no_content:
        fields = {**fields, **_NO_CONTENT}
    with transaction.atomic():
        updated = JobItem.objects.filter(pk=item_id, status=JobItem.Status.RUNNING).update(
            status=status, finished_at=timezone.now(), **fields
        )
        if not updated:
            return False
        counters: dict[str, Any] = {"updated_at": timezone.now()}
        if status == JobItem.Status.DONE:
            counters["done_items"] = F("done_items") + 1
            counters["cost_usd"] = counter_add("cost_usd", fields.get("cost_usd", Decimal(0)))
        elif status == JobItem.Status.ERROR:
            counters["failed_items"] = F("failed_items") + 1
            counters["cost_usd"] = counter_add("cost_usd", fields.get("cost_usd", Decimal(0)))
        else:
            counters["cancelled_items"] = F("cancelled_items") + 1
        Job.objects.filter(pk=job_id).update(**counters)
    return True


def job_finish(job_id: int, token: str) -> str:
    """Close a job whose items are all settled (or cancel what is left of a cancelled one),
    if `token` still holds its lease; the job's status."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.runner_token != token:
            return job.status
        if job.status == Job.Status.CANCELLING or job.status == Job.Status.CANCELLED:
            JobItem.objects.filter(
                job_id=job_id, status__in=[JobItem.Status.PENDING, JobItem.Status.RUNNING]
            ).update(status=JobItem.Status.CANCELLED, finished_at=timezone.now())
            status = Job.Status.CANCELLED
        elif JobItem.objects.filter(
            job_id=job_id, status__in=[JobItem.Status.PENDING, JobItem.Status.RUNNING]
        ).exists():
            return job.status  # lease lost mid-way; the next runner finishes
        else:
            status = Job.Status.DONE
        finished: dict[str, Any] = {}
        if Team.objects.filter(pk=job.team_id, no_content=True).exists():
            # items that never ran (cancelled) still hold their inputs
            JobItem.objects.filter(job_id=job_id).update(**_NO_CONTENT)
            finished["content_purged_at"] = timezone.now()
        Job.objects.filter(pk=job_id).update(
            status=status,
            finished_at=timezone.now(),
            runner_token="",
            heartbeat_at=timezone.now(),
            **finished,
        )
    job_counters_refresh(job_id=job_id)
    if status == Job.Status.DONE:
        hooks.evaluation().job_finished(job_id=job_id)
    return status


class JobContext:
    """What a runner needs of a job while it runs its items."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.columns = [ColumnSpec.from_dict(spec) for spec in job.columns]
        schema = job.prompt_version.response_schema if job.prompt_version else None
        self.check_config = checks.CheckConfig.build(
            has_expected=bool(job.expected_column),
            schema=schema,
            contains=(job.checks or {}).get("contains", ""),
            regex=(job.checks or {}).get("regex", ""),
        )
        self.purpose = Purpose.BATCH
        self.service_tier = "default"  # `flex` for a job that can wait and is not batched
        self.no_content = job.team.no_content
        self.cancelled = asyncio.Event()
        self.lost = asyncio.Event()


def item_checks(ctx: JobContext, output: str, expected: str | None) -> dict[str, Any]:
    run = checks.run_checks(output, expected=expected, config=ctx.check_config)
    fields: dict[str, Any] = {"checks": run.results, "passed": checks.passed(run.results)}
    if run.error:
        fields.update(error_code="check_error", error_message=run.error[:500])
    return fields
