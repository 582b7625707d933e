from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from routing.cache import price_generation_bump, routing_generation_bump
from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel


@receiver(post_save, sender=Price, dispatch_uid="routing_price_saved")
@receiver(post_delete, sender=Price, dispatch_uid="routing_price_deleted")
def price_changed(sender, **kwargs) -> None:
    price_generation_bump()


def routing_changed(sender, **kwargs) -> None:
    routing_generation_bump()


for _model in (Provider, Model, Tier, TierModel, Policy, Rule):
    post_save.connect(
        routing_changed, sender=_model, dispatch_uid=f"routing_saved_{_model.__name__}"
    )
    post_delete.connect(
        routing_changed, sender=_model, dispatch_uid=f"routing_deleted_{_model.__name__}"
    )
