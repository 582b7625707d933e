from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from accounts.models import ApiKey, Team
        from core.hot import hot_watch

        hot_watch(ApiKey, Team)
