from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        from routing.snapshot import connect_invalidation

        connect_invalidation()
