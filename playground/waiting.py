"""Jobs that can wait (`deadline: "24h"`): through the provider's Batch API, or as flex calls.

A job of at least `PLAYGROUND_JOB_BATCH_MIN_ITEMS` items whose every item routes to a
provider with a Batch API (`routing.Provider.batch_api`) becomes one gateway batch
(`gateway.batches.batch_store`): one line per item, its `custom_id` naming the item, the
whole worst case held at the batch price, submitted and polled by the gateway's own tasks.
When the batch finishes, `gateway.batches.batch_finished` settles the items from their lines
in the same transaction. Any other such job runs its items as `service_tier: "flex"` calls,
which fall back to the default tier when the provider refuses flex.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import AppError, BadRequest
from gateway.batch_input import ENDPOINTS, LineError, RoutedLine, batch_line_route, batch_priced
from gateway.batches import batch_store, batches_poll_stale
from gateway.models import Batch, BatchLine
from gateway.payloads import output_of
from playground import calls
from playground.job_items import JobContext, item_checks, item_settle, job_finish
from playground.models import Job, JobItem
from routing.models import Provider
from routing.snapshot import snapshot_get
from spend.models import UsageRecord

log = logging.getLogger(__name__)

DEADLINES = ("24h",)
ENDPOINT = "/v1/responses"
_CUSTOM_ID = "item-"


def deadline_parse(value: Any) -> str:
    """A job's deadline: "" (now) when absent, "24h", or a 400 naming what is accepted."""
    if value is None or value == "":
        return ""
    if value in DEADLINES:
        return str(value)
    raise BadRequest(
        f'deadline must be "24h" (work that can wait up to 24 hours, at the batch price) or '
        f"left out (run now); got {value!r}.",
        param="deadline",
    )


async def job_batch_submit(job: Job, columns: list[Any], purpose: str) -> bool:
    """Submit the job's items as one gateway batch; False when the job goes flex instead
    (too small, or a provider without a Batch API). Items that cannot be routed fail at once."""
    if job.total_items < settings.PLAYGROUND_JOB_BATCH_MIN_ITEMS:
        return False
    items = [
        item
        async for item in JobItem.objects.filter(job=job, status=JobItem.Status.PENDING).order_by(
            "row_index", "column_index"
        )
    ]
    snapshot = await snapshot_get()
    routed: list[RoutedLine] = []
    errors: dict[int, LineError] = {}
    for number, item in enumerate(items, start=1):
        payload = item.input or {}
        spec = calls.CallInput(
            team=job.team,
            purpose=purpose,
            column=columns[item.column_index],
            prompt_version=job.prompt_version,
            variables=payload.get("variables") or {},
            input=payload.get("input"),
            api_key=job.api_key,
            metadata={"job": str(job.pk)},
        )
        try:
            line = batch_line_route(
                number, f"{_CUSTOM_ID}{item.pk}", batch_priced(await calls.call_of(spec)), snapshot
            )
        except AppError as exc:
            line = LineError(number, exc.code, exc.message, exc.param)
        if isinstance(line, LineError):
            errors[item.pk] = line
        else:
            routed.append(line)
    providers = {line.model.provider.id for line in routed}
    if await Provider.objects.filter(id__in=providers, batch_api=False).aexists():
        return False
    await sync_to_async(_store)(job, routed, errors, purpose)
    return True


@transaction.atomic
def _store(job: Job, routed: list[RoutedLine], errors: dict[int, LineError], purpose: str) -> None:
    # under the job's lock, as `job_cancel` takes it: a job cancelled meanwhile sends nothing
    if Job.objects.select_for_update().get(pk=job.pk).status not in (
        Job.Status.QUEUED,
        Job.Status.RUNNING,
    ):
        return
    now = timezone.now()
    pending = JobItem.objects.filter(job=job, status=JobItem.Status.PENDING)
    for item_id, error in errors.items():
        pending.filter(pk=item_id).update(
            status=JobItem.Status.ERROR,
            error_code=error.code[:64],
            error_message=error.message[:500],
            passed=False,
            finished_at=now,
        )
    if routed:
        batch = batch_store(
            team_id=job.team_id,
            api_key=job.api_key,
            stored=None,
            endpoint=ENDPOINT,
            metadata={"job": str(job.pk)},
            purpose=purpose,
            routed=routed,
            errors=[],
        )
        Job.objects.filter(pk=job.pk).update(batch=batch)
        pending.filter(
            pk__in=[int(line.custom_id.removeprefix(_CUSTOM_ID)) for line in routed]
        ).update(status=JobItem.Status.RUNNING, attempts=1)


def job_batch_wake(job: Job) -> bool:
    """A runner's visit to a job waiting on its batch: True once the batch is finished (its
    items are settled); otherwise the batch's polls are restarted if they stopped."""
    batch = Batch.objects.filter(pk=job.batch_id).first()
    if batch is None or batch.finished:
        return True
    batches_poll_stale(batch_ids=[batch.pk])
    return False


def job_batch_settle(sender: Any = None, *, batch: Batch, **kwargs: Any) -> None:
    """`batch_finished`: each item of the batch's job settled from its line (by custom_id),
    with the line's usage record and cost; the job is finished when nothing is left."""
    job = Job.objects.select_related("team", "prompt_version").filter(batch=batch).first()
    if job is None:
        return
    ctx = JobContext(job)
    records = {
        record.request_id: record
        for record in UsageRecord.objects.filter(
            team_id=batch.team_id, request_id__startswith=f"{batch.public_id}-"
        )
    }
    expected = dict(JobItem.objects.filter(job=job).values_list("pk", "expected"))
    for line in batch.lines.all():
        item_id = int(line.custom_id.removeprefix(_CUSTOM_ID))
        record = records.get(f"{batch.public_id}-{line.line_number}")
        fields: dict[str, Any] = {"cost_usd": line.cost_usd, "usage_record_id": None}
        if record is not None:
            fields.update(
                request_id=record.request_id,
                model_name=record.model_name,
                tier_name=record.tier_name,
                input_tokens=record.input_tokens,
                cached_input_tokens=record.cached_input_tokens,
                output_tokens=record.output_tokens,
                reasoning_tokens=record.reasoning_tokens,
                usage_record_id=record.pk,
            )
        result = line.result or {}
        if line.status == BatchLine.Status.COMPLETED:
            body = (result.get("response") or {}).get("body") or {}
            output = output_of(ENDPOINTS[ENDPOINT], body).text
            fields.update(output=output, **item_checks(ctx, output, expected.get(item_id)))
            status = JobItem.Status.DONE
        else:
            status = (
                JobItem.Status.CANCELLED
                if line.status == BatchLine.Status.CANCELLED
                else JobItem.Status.ERROR
            )
            fields.update(
                error_code=(record.error_code if record else f"batch_{line.status}")[:64],
                error_message=(record.error_message if record else "")[:500],
                passed=False,
            )
        item_settle(item_id, job.pk, fields, status, no_content=ctx.no_content)
    if batch.status == Batch.Status.CANCELLED:
        Job.objects.filter(pk=job.pk).exclude(status__in=Job.FINISHED).update(
            status=Job.Status.CANCELLING
        )
    # Finished on behalf of whichever runner holds the lease (usually none: "").
    job_finish(job.pk, Job.objects.values_list("runner_token", flat=True).get(pk=job.pk))
