from django.apps import AppConfig
from django.db.backends.signals import connection_created

from core.money import sqlite_money_sum


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        connection_created.connect(sqlite_money_sum, dispatch_uid="core-sqlite-money-sum")
