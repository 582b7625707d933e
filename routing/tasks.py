from __future__ import annotations

from celery import shared_task

from routing.lifecycle import shutdown_alerts_send


@shared_task
def send_shutdown_alerts() -> list[str]:
    """Daily (beat): the 30- and 7-day shutdown alerts, each sent once."""
    return [str(alert) for alert in shutdown_alerts_send()]
