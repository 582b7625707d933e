from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self) -> None:
        from core.hot import hot_watch
        from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel

        hot_watch(Provider, Model, Price, Tier, TierModel, Policy, Rule)
