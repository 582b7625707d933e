from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from routing.cache import price_generation_bump
from routing.models import Price


@receiver(post_save, sender=Price, dispatch_uid="routing_price_saved")
@receiver(post_delete, sender=Price, dispatch_uid="routing_price_deleted")
def price_changed(sender, **kwargs) -> None:
    price_generation_bump()
