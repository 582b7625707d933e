"""Migrate and seed a benchmark database with one checkout's own code, run in that checkout.

    cd CHECKOUT && python .../bench/gatewaybench/prepare.py prepare DATABASE_URL SIMULATOR_URL
    cd CHECKOUT && python .../bench/gatewaybench/prepare.py point DATABASE_URL SIMULATOR_URL

`prepare` creates the database if missing (and again, empty, if it holds migrations this
code does not have: another checkout's), migrates it with this code's migrations, seeds the
catalog, the sample prompts and two teams (one with a budget), points the catalog's OpenAI
provider at the simulator, and prints `KEYS ["<with budget>", "<without>"]`. `point` only
points the provider at another simulator. Django is set up from the current directory, so
that another checkout's code, migrations and seeding run, not this one's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

_RECREATED = "SWITCHBOARD_BENCH_RECREATED"


def main() -> None:
    mode, database_url, simulator_url = sys.argv[1:4]
    sys.path[0] = str(Path.cwd())
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    if database_url.startswith("postgres"):
        _create_pg_database(database_url)
    import django

    django.setup()
    from django.db import connections

    if mode == "prepare":
        _migrate(database_url)
        keys = _seed(simulator_url)
        print("KEYS " + json.dumps(keys), flush=True)
    else:
        _point(simulator_url)
    connections.close_all()


def _migrate(database_url: str) -> None:
    from django.core.management import call_command
    from django.db import connection, connections
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    foreign = sorted(set(loader.applied_migrations) - set(loader.disk_migrations))
    if foreign:
        names = ", ".join(f"{app}.{name}" for app, name in foreign[:5])
        if os.environ.get(_RECREATED) or not database_url.startswith("postgres"):
            raise SystemExit(f"{database_url} holds migrations this code does not have: {names}")
        print(f"recreating the database: it holds another checkout's migrations ({names})")
        connections.close_all()
        _create_pg_database(database_url, drop=True)
        # A fresh process: the connection pool still holds connections to the dropped database.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, _RECREATED: "1"})
    call_command("migrate", verbosity=0)


def _seed(simulator_url: str) -> list[str]:
    from accounts.models import Team
    from accounts.services import api_key_create
    from prompts.seed import seed_prompts
    from routing.seed import seed_catalog
    from spend.budgets import budget_set
    from spend.models import Budget

    seed_catalog(simulator_url=simulator_url)
    _point(simulator_url)
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    seed_prompts(team=team, author=None)
    # A budget far above what the run spends: the reserve/settle path is part of the figures.
    budget_set(team=team, limit_usd=Decimal("1000000"))
    _, raw_key = api_key_create(team=team, name=f"bench {time.time():.0f}")
    free, _ = Team.objects.get_or_create(slug="bench-free", defaults={"name": "No budget"})
    Budget.objects.filter(team=free).delete()
    _, free_key = api_key_create(team=free, name=f"bench {time.time():.0f}")
    return [raw_key, free_key]


def _point(simulator_url: str) -> None:
    from routing.models import Provider

    Provider.objects.filter(name="openai").update(base_url=simulator_url)


def _create_pg_database(url: str, *, drop: bool = False) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if drop:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
