"""Celery tasks of the spend app (they take ids and call services)."""

from __future__ import annotations

from celery import shared_task

from spend.budgets import budget_reservations_sweep


@shared_task
def budget_reservations_sweep_task(older_than_seconds: float | None = None) -> int:
    """Release budget reservations left open by crashed processes (periodic, see settings)."""
    import datetime as dt

    older_than = (
        dt.timedelta(seconds=older_than_seconds) if older_than_seconds is not None else None
    )
    return budget_reservations_sweep(older_than=older_than)
