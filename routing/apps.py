from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self) -> None:
        from routing import signals  # noqa: F401  (connects the price cache invalidation)
