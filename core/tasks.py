from celery import shared_task
from django.utils import timezone

from core.models import Heartbeat


@shared_task
def heartbeat(name: str = "worker") -> str:
    Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
    return name


@shared_task
def idempotency_purge() -> int:
    """Delete stored Idempotency-Key results past their TTL (hourly, from beat)."""
    from core.idempotency import idempotency_purge as purge

    return purge()
