"""Celery tasks of the playground. They take ids and call the runner or a service."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def job_run(job_id: int) -> str:
    """Run what is left of a job (a second copy of this task finds the lease taken and ends)."""
    from playground.runner import job_run as run

    return async_to_sync(run)(job_id)


@shared_task
def jobs_resume_stale() -> list[int]:
    from playground.services import jobs_resume_stale as resume

    return resume()


@shared_task(acks_late=True)
def shadow_run(pair_id: int) -> str:
    from playground.runner import gateway_cleanup
    from playground.services import shadow_pair_run

    async def run() -> str:
        try:
            return (await shadow_pair_run(pair_id=pair_id)).status
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()


@shared_task
def content_purge() -> dict[str, int]:
    """Playground content past each team's retention period (hourly from beat)."""
    from playground.services import playground_content_purge

    return playground_content_purge()


@worker_ready.connect
def _resume_jobs_when_a_worker_starts(sender=None, **kwargs) -> None:
    """A worker that starts (perhaps replacing one that died) picks up orphaned jobs as soon
    as their lease has expired, without waiting for the periodic sweep."""
    try:
        jobs_resume_stale.delay()
        jobs_resume_stale.apply_async(countdown=settings.PLAYGROUND_JOB_LEASE_SECONDS + 1)
    except Exception:  # a broker hiccup at start-up must not stop the worker
        logger.exception("could not schedule the job resume sweep")
