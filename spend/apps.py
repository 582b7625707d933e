from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "spend"

    def ready(self) -> None:
        from core.hot import hot_watch
        from spend.models import Budget

        hot_watch(Budget)
