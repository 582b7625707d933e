"""Celery tasks of the gateway: client batches submitted and polled. They take ids."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from gateway import batches


@shared_task(acks_late=True)
def batch_submit(batch_id: int) -> None:
    batches.batch_submit(batch_id=batch_id)


@shared_task(acks_late=True)
def batch_poll(batch_id: int) -> bool:
    """Poll once; until the batch is finished, the next poll is queued."""
    finished = batches.batch_poll(batch_id=batch_id)
    if not finished:
        batch_poll.apply_async(args=[batch_id], countdown=settings.GATEWAY_BATCH_POLL_SECONDS)
    return finished


@shared_task
def batches_poll_stale() -> list[int]:
    """Beat: batches whose polls stopped (their worker died) are polled again."""
    return batches.batches_poll_stale()
