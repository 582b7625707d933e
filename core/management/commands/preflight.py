from django.core.management.base import BaseCommand, CommandError
from django.db import connection


def _connect_once() -> None:
    """One direct connection, bypassing the pool (which would retry quietly for its timeout)."""
    if connection.vendor == "postgresql":
        import psycopg

        params = connection.get_connection_params()
        keys = ("dbname", "user", "password", "host", "port")
        psycopg.connect(**{k: params[k] for k in keys if params.get(k)}, connect_timeout=5).close()
    else:
        connection.ensure_connection()


class Command(BaseCommand):
    help = "Check that the configured database is reachable; fail with one clear line if not."

    def handle(self, *args, **options):
        settings_dict = connection.settings_dict
        where = settings_dict.get("HOST") or settings_dict["NAME"]
        try:
            _connect_once()
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            reason = lines[0] if lines else type(exc).__name__
            raise CommandError(
                f"Cannot connect to the {connection.vendor} database at {where}: {reason}. "
                "Check DATABASE_URL."
            ) from None
        self.stdout.write(f"Database reachable: {connection.vendor} at {where}")
