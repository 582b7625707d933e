"""A client batch's life: created (validated, routed, budgeted), submitted to the providers'
Batch APIs, polled, collected line by line into usage records at the batch price, finished.

    batch_create   the input file validated line by line; nothing upstream if any line is
                   wrong (the batch is `failed` with errors by line); else every line's worst
                   case at the batch price is reserved on the team's budgets at once (402 if
                   it does not fit) and `gateway.tasks.batch_submit` is queued
    batch_submit   one upstream batch per provider (a JSONL file of its lines)
    batch_poll     every upstream batch still open is retrieved; a finished one is collected:
                   its output and error lines are mapped back by custom_id, each line gets
                   one usage record and settles its own part of the hold, in one transaction
                   per upstream batch (a line is collected once: its status moves from
                   `submitted` in the same transaction); once all are collected the client's
                   output and error files are written and what no line used is released
    batch_cancel   `cancelling`; the next poll cancels the upstream batches and collects
                   what they finished

Polls come from `gateway.tasks.batch_poll` (each poll queues the next) and, for a batch whose
chain of polls broke (a worker died), from beat's `batches_poll_stale`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from accounts.models import ApiKey
from core.errors import BadRequest, BudgetExceeded, NotFound
from core.money import ZERO, usd
from gateway import batch_upstream
from gateway.batch_input import BATCH_TIER, ENDPOINTS, RoutedLine, batch_input_route
from gateway.files import file_create, file_get, new_public_id
from gateway.models import Batch, BatchLine, StoredFile, UpstreamBatch
from gateway.payloads import usage_of
from routing.models import Model, Provider
from routing.snapshot import snapshot_get
from spend.budgets import budget_settle
from spend.models import Purpose, UsageRecord
from spend.pricing import PriceNotFound, cost_usd, price_at
from spend.standing import StandingHold, budget_hold_standing

log = logging.getLogger(__name__)

# Sent (keyword: batch) inside the transaction that finishes a batch.
batch_finished = Signal()

UPSTREAM_FINAL = frozenset({"completed", "expired", "cancelled", "failed"})
_REASON_MAX = UsageRecord._meta.get_field("route_reason").max_length or 300


# ------------------------------------------------------------------------------ create


async def batch_create(
    *,
    api_key: ApiKey,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, Any],
    purpose: str = Purpose.BATCH,
) -> Batch:
    """Validate and route every line, reserve the batch's worst case, queue its submission."""
    from asgiref.sync import sync_to_async

    if endpoint not in ENDPOINTS:
        raise BadRequest(
            f"endpoint must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}.", param="endpoint"
        )
    if completion_window != "24h":
        raise BadRequest("completion_window must be 24h.", param="completion_window")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadRequest("metadata must be an object of strings.", param="metadata")
    stored = await sync_to_async(file_get)(
        team_id=api_key.team_id, public_id=input_file_id, with_content=True
    )
    if stored.purpose != StoredFile.Purpose.BATCH:
        raise BadRequest("The input file's purpose must be `batch`.", param="input_file_id")
    routed, errors = await batch_input_route(
        content=bytes(stored.content),
        endpoint=endpoint,
        api_key=api_key,
        snapshot=await snapshot_get(),
        max_lines=int(settings.GATEWAY_BATCH_MAX_LINES),
    )
    return await sync_to_async(batch_store)(
        team_id=api_key.team_id,
        api_key=api_key,
        stored=stored,
        endpoint=endpoint,
        metadata=metadata,
        purpose=purpose,
        routed=routed,
        errors=[error.as_dict() for error in errors],
    )


@transaction.atomic
def batch_store(
    *,
    team_id: int,
    api_key: ApiKey | None,
    stored: StoredFile | None,
    endpoint: str,
    metadata: dict[str, Any],
    purpose: str,
    routed: list[RoutedLine],
    errors: list[dict[str, Any]],
) -> Batch:
    """The batch and its routed lines, their worst case held on the team's (and the key's)
    budgets, its submission queued once committed. Also the door for a job that can wait
    (`playground`): its items are the lines, with no input file."""
    now = timezone.now()
    api_key_id = api_key.pk if api_key is not None else None
    batch = Batch(
        public_id=new_public_id("batch_"),
        team_id=team_id,
        api_key=api_key,
        input_file=stored,
        endpoint=endpoint,
        metadata=metadata,
        purpose=purpose,
        expires_at=now + dt.timedelta(hours=24),
    )
    if errors:
        batch.status, batch.errors, batch.failed_at = Batch.Status.FAILED, errors, now
        batch.save()
        return batch
    worst = sum((line.worst_usd for line in routed), ZERO)
    holds, refused = budget_hold_standing(
        team_id=team_id, api_key_id=api_key_id, request_id=batch.public_id, amount=worst
    )
    if refused is not None:
        raise BudgetExceeded(
            f"The {'key' if refused.api_key_id else 'team'} budget ({refused.period}, "
            f"{usd(refused.limit_usd)}) cannot hold this batch: up to {usd(worst)} at the "
            "batch price. Raise the budget, lower max_output_tokens, or send fewer lines."
        )
    batch.reservations = [hold.as_dict() for hold in holds]
    batch.reserved_usd = worst
    batch.total = len(routed)
    batch.save()
    BatchLine.objects.bulk_create(
        BatchLine(
            batch=batch,
            line_number=line.line_number,
            custom_id=line.custom_id,
            body=line.body,
            model_id=line.model.id,
            model_name=line.model.name,
            tier_name=line.tier,
            rule=line.rule[:100],
            route_reason=line.reason[:_REASON_MAX],
            prompt_version=line.call.prompt_version,
            worst_usd=line.worst_usd,
        )
        for line in routed
    )
    transaction.on_commit(lambda: _enqueue("batch_submit", batch.pk))
    return batch


def _enqueue(task: str, batch_id: int, countdown: float = 0) -> None:
    from gateway import tasks  # the tasks call this module's services

    getattr(tasks, task).apply_async(args=[batch_id], countdown=countdown)


# ------------------------------------------------------------------------------ submit


def batch_submit(*, batch_id: int) -> None:
    """One upstream batch per provider; then the polls start."""
    batch = Batch.objects.get(pk=batch_id)
    if batch.status != Batch.Status.VALIDATING:
        return
    lines = list(batch.lines.filter(status=BatchLine.Status.PENDING, upstream=None))
    providers = dict(
        Model.objects.filter(id__in={line.model_id for line in lines}).values_list(
            "id", "provider_id"
        )
    )
    groups: dict[int, list[BatchLine]] = defaultdict(list)
    for line in lines:
        groups[providers[line.model_id or 0]].append(line)
    for provider in Provider.objects.filter(id__in=groups):
        group = groups[provider.id]
        upstream = UpstreamBatch.objects.create(batch=batch, provider=provider)
        BatchLine.objects.filter(pk__in=[line.pk for line in group]).update(upstream=upstream)
        try:
            file_id, created = batch_upstream.upstream_batch_create(
                provider=provider,
                endpoint=batch.endpoint,
                lines=[
                    {
                        "custom_id": line.custom_id,
                        "method": "POST",
                        "url": batch.endpoint,
                        "body": line.body,
                    }
                    for line in group
                ],
                metadata={**batch.metadata, "switchboard_batch": batch.public_id},
            )
        except batch_upstream.UpstreamBatchError as exc:
            log.warning("batch %s: %s refused the batch: %s", batch.public_id, provider, exc)
            upstream.status = "failed"
            upstream.save(update_fields=["status"])
            continue
        upstream.upstream_id, upstream.input_file_id = created["id"], file_id
        upstream.status = created["status"]
        upstream.save(update_fields=["upstream_id", "input_file_id", "status"])
        BatchLine.objects.filter(upstream=upstream).update(status=BatchLine.Status.SUBMITTED)
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.VALIDATING).update(
        status=Batch.Status.IN_PROGRESS, in_progress_at=now, polled_at=now
    )
    _enqueue("batch_poll", batch.pk, settings.GATEWAY_BATCH_POLL_SECONDS)


# ------------------------------------------------------------------------------ poll


def batch_poll(*, batch_id: int) -> bool:
    """Advance the batch; True once it is finished (no further poll needed)."""
    batch = Batch.objects.get(pk=batch_id)
    if batch.finished:
        return True
    if batch.status == Batch.Status.VALIDATING:
        return False  # its submission is still queued
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(polled_at=now)
    _holds_renew(batch)
    cancelling = batch.status == Batch.Status.CANCELLING
    for upstream in batch.upstreams.filter(collected=False):
        if upstream.upstream_id and upstream.status not in UPSTREAM_FINAL:
            try:
                if cancelling and upstream.status not in ("cancelling",):
                    state = batch_upstream.upstream_batch_cancel(
                        provider=upstream.provider, batch_id=upstream.upstream_id
                    )
                else:
                    state = batch_upstream.upstream_batch_retrieve(
                        provider=upstream.provider, batch_id=upstream.upstream_id
                    )
            except batch_upstream.UpstreamBatchError as exc:
                log.warning("batch %s: poll failed: %s", batch.public_id, exc)
                continue
            counts = state.get("request_counts") or {}
            upstream.status = state["status"]
            upstream.output_file_id = state.get("output_file_id") or ""
            upstream.error_file_id = state.get("error_file_id") or ""
            upstream.completed = counts.get("completed") or 0
            upstream.failed = counts.get("failed") or 0
            upstream.save(
                update_fields=["status", "output_file_id", "error_file_id", "completed", "failed"]
            )
        if upstream.status in UPSTREAM_FINAL:
            _collect(batch, upstream)
    if batch.upstreams.filter(collected=False).exists():
        if not cancelling and batch.upstreams.filter(status="finalizing").exists():
            Batch.objects.filter(pk=batch.pk, finalizing_at=None).update(finalizing_at=now)
        return False
    _finish(batch)
    return True


def _holds(batch: Batch) -> list[StandingHold]:
    return [StandingHold.from_dict(data) for data in batch.reservations]


def _holds_renew(batch: Batch) -> None:
    """A zero settlement renews the reservation rows: the sweeper leaves them alone."""
    with transaction.atomic():
        budget_settle(settlements=[hold.settlement() for hold in _holds(batch)])


def _entries(upstream: UpstreamBatch) -> dict[str, dict[str, Any]]:
    """The upstream's output and error lines by custom_id."""
    entries: dict[str, dict[str, Any]] = {}
    for file_id in (upstream.output_file_id, upstream.error_file_id):
        if file_id:
            for entry in batch_upstream.upstream_file_lines(
                provider=upstream.provider, file_id=file_id
            ):
                entries[str(entry.get("custom_id"))] = entry
    return entries


def _collect(batch: Batch, upstream: UpstreamBatch) -> None:
    try:
        entries = _entries(upstream)
    except batch_upstream.UpstreamBatchError as exc:
        log.warning("batch %s: could not read the results: %s", batch.public_id, exc)
        return
    missing_status = {
        "expired": BatchLine.Status.EXPIRED,
        "cancelled": BatchLine.Status.CANCELLED,
    }.get(upstream.status, BatchLine.Status.FAILED)
    api = ENDPOINTS[batch.endpoint]
    now = timezone.now()
    with transaction.atomic():
        lines = list(
            BatchLine.objects.select_for_update().filter(
                upstream=upstream,
                status__in=[BatchLine.Status.SUBMITTED, BatchLine.Status.PENDING],
            )
        )
        records, spent, released = [], ZERO, ZERO
        for line in lines:
            entry = entries.get(line.custom_id)
            line.status, line.result, record = _line_outcome(
                batch, line, entry, api, missing_status, now
            )
            line.cost_usd = record.cost_usd
            records.append(record)
            spent += record.cost_usd
            released += line.worst_usd
        BatchLine.objects.bulk_update(lines, ["status", "result", "cost_usd"])
        UsageRecord.objects.bulk_create(records)
        budget_settle(
            settlements=[hold.settlement(spend=spent, release=released) for hold in _holds(batch)],
            now=now,
        )
        UpstreamBatch.objects.filter(pk=upstream.pk).update(collected=True)


def _line_outcome(
    batch: Batch,
    line: BatchLine,
    entry: dict[str, Any] | None,
    api: str,
    missing_status: str,
    now: dt.datetime,
) -> tuple[str, dict[str, Any], UsageRecord]:
    """The line's status, its line in the client's output or error file, its usage record."""
    request_id = f"{batch.public_id}-{line.line_number}"
    record = UsageRecord(
        created_at=now,
        request_id=request_id,
        team_id=batch.team_id,
        api_key_id=batch.api_key_id,
        prompt_version_id=line.prompt_version_id,
        purpose=batch.purpose,
        rule=line.rule,
        route_reason=line.route_reason,
        model_id=line.model_id,
        model_name=line.model_name,
        tier_name=line.tier_name,
        service_tier=BATCH_TIER,
        status=UsageRecord.Status.ERROR,
    )
    response = (entry or {}).get("response") or None
    result: dict[str, Any] = {
        "id": f"batch_req_{request_id}",
        "custom_id": line.custom_id,
        "response": None,
        "error": None,
    }
    if response is not None:
        body = response.get("body") or {}
        result["response"] = {
            "status_code": response.get("status_code"),
            "request_id": request_id,
            "body": body,
        }
        if response.get("status_code") == 200:
            usage = usage_of(api, body)
            record.status = UsageRecord.Status.SUCCESS
            record.input_tokens = usage.input_tokens
            record.cached_input_tokens = usage.cached_input_tokens
            record.cache_write_tokens = usage.cache_write_tokens
            record.output_tokens = usage.output_tokens
            record.reasoning_tokens = usage.reasoning_tokens
            record.cost_usd = _cost(line, usage, batch.created_at)
            return BatchLine.Status.COMPLETED, result, record
        error = body.get("error") if isinstance(body, dict) else None
        record.error_code = str((error or {}).get("code") or "upstream_error")[:64]
        record.error_message = str((error or {}).get("message") or "")[:500]
        return BatchLine.Status.FAILED, result, record
    error = (entry or {}).get("error") or {
        "code": f"batch_{missing_status}",
        "message": f"This request was not run: the upstream batch {missing_status}.",
    }
    result["error"] = error
    record.status = (
        UsageRecord.Status.CANCELLED
        if missing_status == BatchLine.Status.CANCELLED
        else UsageRecord.Status.ERROR
    )
    record.error_code = str(error.get("code") or missing_status)[:64]
    record.error_message = str(error.get("message") or "")[:500]
    return missing_status, result, record


def _cost(line: BatchLine, usage: Any, at: dt.datetime) -> Decimal:
    """At the batch price in force when the batch was submitted (what its hold assumed)."""
    if line.model_id is None:
        return ZERO
    try:
        price = price_at(line.model_id, at)
    except PriceNotFound:
        log.warning("no price for %s at %s: recorded at zero cost", line.model_name, at)
        return ZERO
    return cost_usd(
        price=price,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        service_tier=BATCH_TIER,
    )


# ------------------------------------------------------------------------------ finish


def _jsonl(entries: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries).encode()


@transaction.atomic
def _finish(batch: Batch) -> None:
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if batch.finished:
        return
    now = timezone.now()
    # Lines that never reached an upstream batch (their provider refused it) or were
    # cancelled before it: no record of a call that was never made, but an error line.
    unsent = batch.lines.filter(status=BatchLine.Status.PENDING)
    for line in unsent:
        line.status = (
            BatchLine.Status.CANCELLED
            if batch.status == Batch.Status.CANCELLING
            else BatchLine.Status.FAILED
        )
        line.result = {
            "id": f"batch_req_{batch.public_id}-{line.line_number}",
            "custom_id": line.custom_id,
            "response": None,
            "error": {"code": f"batch_{line.status}", "message": "This request was not run."},
        }
        line.save(update_fields=["status", "result"])
    lines = list(batch.lines.order_by("line_number"))
    outputs = [line.result or {} for line in lines if line.status == BatchLine.Status.COMPLETED]
    failures = [line.result or {} for line in lines if line.status != BatchLine.Status.COMPLETED]
    if outputs:
        batch.output_file = _output_file(batch, "output", outputs)
    if failures:
        batch.error_file = _output_file(batch, "error", failures)
    batch.completed, batch.failed = len(outputs), len(failures)
    batch.cost_usd = sum((line.cost_usd for line in lines), ZERO)
    statuses = set(batch.upstreams.values_list("status", flat=True))
    if batch.status == Batch.Status.CANCELLING:
        batch.status, batch.cancelled_at = Batch.Status.CANCELLED, now
    elif "expired" in statuses:
        batch.status, batch.expired_at = Batch.Status.EXPIRED, now
    elif not outputs and statuses <= {"failed"}:
        batch.status, batch.failed_at = Batch.Status.FAILED, now
        batch.errors = [{"code": "upstream_failed", "message": "The provider failed the batch."}]
    else:
        batch.status, batch.completed_at = Batch.Status.COMPLETED, now
        batch.finalizing_at = batch.finalizing_at or now
    batch.save()
    budget_settle(settlements=[hold.settlement(close=True) for hold in _holds(batch)], now=now)
    # In the same transaction: what waits on the batch (a job's items) is settled with it.
    batch_finished.send(sender=Batch, batch=batch)


def _output_file(batch: Batch, kind: str, entries: list[dict[str, Any]]) -> StoredFile:
    return file_create(
        team_id=batch.team_id,
        api_key_id=batch.api_key_id,
        filename=f"{batch.public_id}_{kind}.jsonl",
        purpose=StoredFile.Purpose.BATCH_OUTPUT,
        content=_jsonl(entries),
    )


# ------------------------------------------------------------------------------ cancel, read


@transaction.atomic
def batch_cancel(*, team_id: int, public_id: str) -> Batch:
    batch = Batch.objects.select_for_update().filter(team_id=team_id, public_id=public_id).first()
    if batch is None:
        raise NotFound(f"No batch found with id '{public_id}'.", param="batch_id")
    if batch.finished or batch.status == Batch.Status.CANCELLING:
        return batch
    batch.status, batch.cancelling_at = Batch.Status.CANCELLING, timezone.now()
    batch.save(update_fields=["status", "cancelling_at"])
    transaction.on_commit(lambda: _enqueue("batch_poll", batch.pk))
    return batch


def batch_get(*, team_id: int, public_id: str) -> Batch:
    batch = (
        Batch.objects.select_related("input_file", "output_file", "error_file")
        .filter(team_id=team_id, public_id=public_id)
        .first()
    )
    if batch is None:
        raise NotFound(f"No batch found with id '{public_id}'.", param="batch_id")
    return batch


def batch_list(*, team_id: int, limit: int = 20, after: str = "") -> list[Batch]:
    batches = Batch.objects.select_related("input_file", "output_file", "error_file").filter(
        team_id=team_id
    )
    if after:
        anchor = batches.filter(public_id=after).values_list("created_at", "id").first()
        if anchor is not None:
            batches = batches.filter(created_at__lte=anchor[0]).exclude(
                created_at=anchor[0], id__gte=anchor[1]
            )
    return list(batches.order_by("-created_at", "-id")[:limit])


def _ts(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def batch_object(batch: Batch) -> dict[str, Any]:
    """The OpenAI batch object."""
    completed, failed = batch.progress
    return {
        "id": batch.public_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file.public_id if batch.input_file else None,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file.public_id if batch.output_file else None,
        "error_file_id": batch.error_file.public_id if batch.error_file else None,
        "created_at": _ts(batch.created_at),
        "in_progress_at": _ts(batch.in_progress_at),
        "expires_at": _ts(batch.expires_at),
        "finalizing_at": _ts(batch.finalizing_at),
        "completed_at": _ts(batch.completed_at),
        "failed_at": _ts(batch.failed_at),
        "expired_at": _ts(batch.expired_at),
        "cancelling_at": _ts(batch.cancelling_at),
        "cancelled_at": _ts(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": completed, "failed": failed},
        "metadata": batch.metadata or None,
        "switchboard": {
            "reserved_usd": f"{batch.reserved_usd:f}",
            "cost_usd": f"{batch.cost_usd:f}",
        },
    }


def batches_poll_stale(
    *, now: dt.datetime | None = None, batch_ids: list[int] | None = None
) -> list[int]:
    """Batches (all, or these) whose chain of polls broke (a worker died): polled again."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=max(4 * settings.GATEWAY_BATCH_POLL_SECONDS, 10))
    batches = Batch.objects.all() if batch_ids is None else Batch.objects.filter(pk__in=batch_ids)
    unsent = list(
        batches.filter(status=Batch.Status.VALIDATING, created_at__lt=stale).values_list(
            "pk", flat=True
        )
    )
    unpolled = list(
        batches.exclude(status__in=[*Batch.FINAL, Batch.Status.VALIDATING])
        .filter(polled_at__lt=stale)
        .values_list("pk", flat=True)
    )
    for batch_id in unsent:
        _enqueue("batch_submit", batch_id)
    for batch_id in unpolled:
        _enqueue("batch_poll", batch_id)
    return unsent + unpolled
