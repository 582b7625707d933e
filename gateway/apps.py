from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        from gateway.explorer_links import batch_links
        from spend.explorer import related_finder_register

        related_finder_register(batch_links)
