from celery import shared_task
from django.utils import timezone

from core.models import Heartbeat


@shared_task
def heartbeat(name: str = "worker") -> str:
    Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
    return name
