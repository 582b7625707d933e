"""Celery tasks of the evaluation app. They take ids and call the runner."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from celery import shared_task


@shared_task(acks_late=True)
def job_evaluate(job_id: int, version_ids: list[int] | None = None) -> dict[str, Any]:
    """Evaluate a finished batch run's rows (cached judgments cost nothing)."""
    from evals.runner import job_evaluate as evaluate
    from playground.runner import gateway_cleanup

    async def run() -> dict[str, Any]:
        try:
            return (await evaluate(job_id=job_id, version_ids=version_ids)).as_dict()
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()


@shared_task(acks_late=True)
def request_run_evaluate(run_id: int) -> dict[str, Any]:
    """Evaluate a selection of logged requests (the explorer's "Evaluate these requests")."""
    from evals.logged import request_run_evaluate as evaluate
    from playground.runner import gateway_cleanup

    async def run() -> dict[str, Any]:
        try:
            done = await evaluate(run_id=run_id)
            if done is None:
                return {"status": "missing"}
            return {"status": done.status, "done": done.done, "judged": done.judged}
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()
