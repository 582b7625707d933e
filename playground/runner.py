"""The one batch runner, for batch compare and the jobs API.

A job's items wait in the database. `job_run` takes the job's lease (one runner per job),
claims pending items in chunks and runs them concurrently, at most
`PLAYGROUND_BATCH_CONCURRENCY` at a time (an asyncio semaphore), each through the gateway's
code path; a job submitted with a key is paced by the key's rpm/tpm limits. A heartbeat renews the lease and notices a cancel. Each item is settled in one
transaction with its usage record id and the job's counters, so an item marked done is never
run again: a job whose worker died is resumed by `jobs_resume_stale` and only runs what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.errors import AppError, RateLimited
from core.middleware import internal_request_id
from playground import calls, waiting
from playground.job_items import JobContext, item_checks, item_settle, job_finish
from playground.models import Job, JobItem
from playground.services.jobs import job_counters_refresh
from spend.models import Purpose, UsageRecord

logger = logging.getLogger(__name__)


def _lease_take(job_id: int, token: str) -> bool:
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.PLAYGROUND_JOB_LEASE_SECONDS)
    taken = (
        Job.objects.filter(pk=job_id)
        .exclude(status__in=Job.FINISHED)
        .filter(Q(runner_token="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(runner_token=token, heartbeat_at=now)
    )
    if not taken:
        return False
    with transaction.atomic():
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now
        )
        # Items left running by a runner that died go back to pending (or are cancelled, if
        # the job was being cancelled). One that finished its call before the crash is
        # recognised by its request id and not charged again.
        # (The items of a job in a batch are running in the batch: they stay so.)
        cancelling = Job.objects.filter(pk=job_id, status=Job.Status.CANCELLING).exists()
        JobItem.objects.filter(
            job_id=job_id, job__batch=None, status=JobItem.Status.RUNNING
        ).update(status=JobItem.Status.CANCELLED if cancelling else JobItem.Status.PENDING)
    return True


def _lease_renew(job_id: int, token: str) -> str | None:
    """Renew the lease; the job's status, or None if another runner took the job over."""
    renewed = Job.objects.filter(pk=job_id, runner_token=token).update(heartbeat_at=timezone.now())
    if not renewed:
        return None
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def _claim(job_id: int, count: int) -> list[int]:
    with transaction.atomic():
        ids = list(
            JobItem.objects.select_for_update(skip_locked=True)
            .filter(job_id=job_id, status=JobItem.Status.PENDING)
            .order_by("row_index", "column_index")
            .values_list("pk", flat=True)[:count]
        )
        if ids:
            JobItem.objects.filter(pk__in=ids, status=JobItem.Status.PENDING).update(
                status=JobItem.Status.RUNNING, attempts=F("attempts") + 1
            )
    return ids


def _result_fields(result: calls.CallResult, *, output: str) -> dict[str, Any]:
    return {
        "output": output,
        "model_name": result.model_name[:100],
        "tier_name": result.tier_name[:32],
        "input_tokens": result.input_tokens,
        "cached_input_tokens": result.cached_input_tokens,
        "output_tokens": result.output_tokens,
        "reasoning_tokens": result.reasoning_tokens,
        "cost_usd": result.cost_usd,
        "latency_ms": result.latency_ms,
        "ttft_ms": result.ttft_ms,
        "usage_record_id": result.usage_record_id,
    }


def _adopt_finished_call(team_id: int, request_id: str) -> dict[str, Any] | None:
    """The outcome of a call that succeeded before its runner died, from its usage record.

    Only a batch record of the job's own team can match: no caller's request is ever one (a
    caller cannot choose an internal request id, nor make a call of purpose `batch`)."""
    record = (
        UsageRecord.objects.filter(
            team_id=team_id,
            purpose=Purpose.BATCH,
            request_id=request_id,
            status=UsageRecord.Status.SUCCESS,
        )
        .order_by("-created_at")
        .first()
    )
    if record is None:
        return None
    body = record.response_body if isinstance(record.response_body, dict) else {}
    return {
        "output": str(body.get("output_text") or body.get("output") or ""),
        "model_name": record.model_name,
        "tier_name": record.tier_name,
        "input_tokens": record.input_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "output_tokens": record.output_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": record.cost_usd,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "usage_record_id": record.pk,
    }


async def _run_item(ctx: JobContext, item_id: int, semaphore: asyncio.Semaphore) -> None:
    async with semaphore:
        item = await JobItem.objects.aget(pk=item_id)
        if ctx.cancelled.is_set() or ctx.lost.is_set():
            if ctx.cancelled.is_set():
                await sync_to_async(item_settle)(item_id, ctx.job.pk, {}, JobItem.Status.CANCELLED)
            return
        request_id = internal_request_id(f"job{ctx.job.pk}-item{item.pk}")
        adopted = await sync_to_async(_adopt_finished_call)(ctx.job.team_id, request_id)
        if adopted is not None:
            adopted.update(item_checks(ctx, adopted["output"], item.expected))
            await sync_to_async(item_settle)(
                item_id, ctx.job.pk, adopted, JobItem.Status.DONE, no_content=ctx.no_content
            )
            return
        payload = item.input or {}
        spec = calls.CallInput(
            team=ctx.job.team,
            purpose=ctx.purpose,
            column=ctx.columns[item.column_index],
            prompt_version=ctx.job.prompt_version,
            variables=payload.get("variables") or {},
            input=payload.get("input"),
            api_key=ctx.job.api_key,
            request_id=request_id,
            metadata={"job": str(ctx.job.pk)},
            service_tier=ctx.service_tier,
        )
        try:
            result = await _call_in_turn(ctx, spec)
        except AppError as exc:
            fields = {
                "request_id": request_id,
                "error_code": exc.code[:64],
                "error_message": exc.message[:500],
                "passed": False,
            }
            await sync_to_async(item_settle)(
                item_id, ctx.job.pk, fields, JobItem.Status.ERROR, no_content=ctx.no_content
            )
            return
        except Exception as exc:
            logger.exception("job %s item %s failed", ctx.job.pk, item_id)
            fields = {
                "request_id": request_id,
                "error_code": "internal_error",
                "error_message": f"{type(exc).__name__}: {exc}"[:500],
                "passed": False,
            }
            await sync_to_async(item_settle)(
                item_id, ctx.job.pk, fields, JobItem.Status.ERROR, no_content=ctx.no_content
            )
            return
        if result is None:  # cancelled or taken over while waiting for the key's turn
            if ctx.cancelled.is_set():
                await sync_to_async(item_settle)(item_id, ctx.job.pk, {}, JobItem.Status.CANCELLED)
            return
        fields = _result_fields(result, output=result.output)
        fields["request_id"] = result.request_id or request_id
        fields.update(item_checks(ctx, result.output, item.expected))
        await sync_to_async(item_settle)(
            item_id, ctx.job.pk, fields, JobItem.Status.DONE, no_content=ctx.no_content
        )


async def _call_in_turn(ctx: JobContext, spec: calls.CallInput) -> calls.CallResult | None:
    """The item's call, in its key's turn: items count against the key's requests and tokens
    per minute like /v1 requests, and a job over the limit is paced (each item waits out the
    Retry-After) rather than failed. None if the job is cancelled or lost meanwhile; an item
    that needs more tokens than the key allows in a minute fails with `rate_limited`."""
    while True:
        try:
            return await calls.call(spec)
        except RateLimited as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if details.get("requested", 0) > details.get("value", 0):
                raise  # waiting cannot help
            wait = float(exc.headers.get("Retry-After") or 1)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            if ctx.cancelled.is_set() or ctx.lost.is_set():
                return None
            await asyncio.sleep(min(left, 0.5))


async def _heartbeat(ctx: JobContext, token: str, stop: asyncio.Event) -> None:
    interval = max(settings.PLAYGROUND_JOB_LEASE_SECONDS / 4, 0.2)
    while not stop.is_set():
        status = await sync_to_async(_lease_renew)(ctx.job.pk, token)
        if status is None:
            ctx.lost.set()
            return
        if status in (Job.Status.CANCELLING, Job.Status.CANCELLED):
            ctx.cancelled.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(interval, 1.0))


async def gateway_cleanup() -> None:
    """Write pending usage records, then close this event loop's upstream clients and async
    PostgreSQL pool: a Celery task's loop ends with the task, and what is bound to it would
    leak."""
    from gateway.upstream import clients_close
    from spend.pg import pg_close
    from spend.usage import usage_flush

    await usage_flush()
    await clients_close()
    await pg_close()


async def _job_wait(ctx: JobContext, token: str) -> str | None:
    """A job that can wait: submitted as a batch (or visited while its batch runs), then
    the lease is let go, as the gateway's polls carry the batch; the job's status, or None
    if its items run here as flex calls."""
    job = ctx.job
    if job.batch_id is None:
        try:
            batched = job.status != Job.Status.CANCELLING and await waiting.job_batch_submit(
                job, ctx.columns, ctx.purpose
            )
        except AppError as exc:  # the budget cannot hold the batch's worst case
            await sync_to_async(_fail)(job.pk, token, exc.message)
            return Job.Status.FAILED
        if not batched:
            return None
    job = await Job.objects.aget(pk=job.pk)
    if await sync_to_async(waiting.job_batch_wake)(job):
        return await sync_to_async(job_finish)(job.pk, token)
    await Job.objects.filter(pk=job.pk, runner_token=token).aupdate(
        runner_token="", heartbeat_at=timezone.now()
    )
    return job.status


def _fail(job_id: int, token: str, message: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        JobItem.objects.filter(job_id=job_id, status=JobItem.Status.PENDING).update(
            status=JobItem.Status.CANCELLED, finished_at=now
        )
        Job.objects.filter(pk=job_id, runner_token=token).update(
            status=Job.Status.FAILED, error=message[:500], finished_at=now, runner_token=""
        )
    job_counters_refresh(job_id=job_id)


async def job_run(job_id: int) -> str:
    """Run a job's remaining items; returns the job's status when this runner stops."""
    token = secrets.token_hex(8)
    if not await sync_to_async(_lease_take)(job_id, token):
        return "busy"
    job = await Job.objects.select_related("team", "api_key", "prompt_version__prompt").aget(
        pk=job_id
    )
    ctx = JobContext(job)
    if job.deadline:
        waited = await _job_wait(ctx, token)
        if waited is not None:
            return waited
        ctx.service_tier = "flex"
    concurrency = max(1, settings.PLAYGROUND_BATCH_CONCURRENCY)
    semaphore = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(_heartbeat(ctx, token, stop))
    in_flight: set[asyncio.Task] = set()
    try:
        while not (ctx.cancelled.is_set() or ctx.lost.is_set()):
            # keep one chunk queued behind the calls in flight
            room = 2 * concurrency - len(in_flight)
            if room > 0:
                for item_id in await sync_to_async(_claim)(job_id, room):
                    in_flight.add(asyncio.create_task(_run_item(ctx, item_id, semaphore)))
            if not in_flight:
                break
            done, in_flight = await asyncio.wait(
                in_flight, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
        if in_flight:
            await asyncio.gather(*in_flight)
    finally:
        stop.set()
        await heartbeat
        await gateway_cleanup()
    if ctx.lost.is_set():
        return "lost"
    return await sync_to_async(job_finish)(job_id, token)
