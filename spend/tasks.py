"""Celery tasks of the spend app (they take ids and call services); the periodic ones are
registered in CELERY_BEAT_SCHEDULE."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from celery import shared_task

from spend import alerts, lifecycle, replay
from spend.budgets import budget_reservations_sweep
from spend.rollups import usage_rollup_run
from spend.services import usage_content_purge, usage_ledger_keys_purge
from spend.usage import usage_spools_replay


@shared_task
def send_shutdown_alerts() -> list[str]:
    """Daily (beat): the 30- and 7-day model shutdown alerts, each sent once."""
    return [str(alert) for alert in lifecycle.shutdown_alerts_send()]


@shared_task
def budget_reservations_sweep_task(older_than_seconds: float | None = None) -> int:
    """Write the usage spooled by crashed processes, then release the budget reservations
    they left open (periodic, see settings)."""
    usage_spools_replay()
    older_than = (
        dt.timedelta(seconds=older_than_seconds) if older_than_seconds is not None else None
    )
    return budget_reservations_sweep(older_than=older_than)


@shared_task
def usage_rollup() -> dict:
    """Bring the daily rollups up to a couple of minutes ago (every few minutes)."""
    result = usage_rollup_run()
    return {
        "days": [day.isoformat() for day in result.days],
        "rows": result.rows,
        "rolled_until": result.rolled_until.isoformat() if result.rolled_until else None,
    }


@shared_task
def alerts_check() -> dict:
    """Budget thresholds and upstream error spikes (every minute); each fires once."""
    budget_events = alerts.budget_alerts_check()
    spike_events = alerts.error_spike_check()
    requeued = alerts.alert_deliveries_retry()
    return {"budget": len(budget_events), "error_spike": len(spike_events), "requeued": requeued}


@shared_task
def budget_limit_alert(
    budget_id: int, at: str, action: str = "block", request_usd: str | None = None
) -> int | None:
    """The gateway refused (`block`) or downgraded a request of up to `request_usd` at the
    budget's hard limit at `at`. (`action` and `request_usd` may be missing from tasks queued
    by an older release.)"""
    event = alerts.budget_limit_reached(
        budget_id=budget_id,
        now=dt.datetime.fromisoformat(at),
        action=action,
        request_usd=Decimal(request_usd) if request_usd is not None else None,
    )
    return event.id if event else None


@shared_task(
    autoretry_for=(alerts.DeliveryFailed,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=alerts.MAX_ATTEMPTS - 1,
)
def alert_deliver(delivery_id: int) -> str | None:
    delivery = alerts.alert_delivery_send(delivery_id=delivery_id)
    return delivery.status if delivery else None


@shared_task
def content_purge() -> int:
    """Drop stored request/response bodies past each team's retention period, and ledger
    keys past the window in which a ledger could be written again."""
    usage_ledger_keys_purge()
    return usage_content_purge()


@shared_task(soft_time_limit=20 * 60, time_limit=25 * 60)
def replay_run(run_id: int) -> str:
    """Compute a what-if replay (queued from the what-if page)."""
    return replay.replay_run_execute(run_id=run_id).status
