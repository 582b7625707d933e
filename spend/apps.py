from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "spend"

    def ready(self) -> None:
        from core.hot import hot_watch
        from spend.models import Budget

        hot_watch(Budget)

        # The usage writer registers itself as the budget leases' settlement sink, and its
        # backlog as a readiness check.
        from core.readiness import PROCESS_CHECKS
        from spend.usage import usage_backlog_check

        PROCESS_CHECKS["usage_backlog"] = usage_backlog_check
