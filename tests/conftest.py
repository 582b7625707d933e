"""Shared fixtures: people and teams (alice/bob in team A, charlie in team B), keys, and the
real parts: the simulator, the site under uvicorn, a Celery worker — each a subprocess."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection

from accounts.models import Membership, Role, Team, User
from accounts.services import api_key_create
from tests.servers import free_port, stop, wait_for_server

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_test_0123456789"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that must see this test run's database."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return {
        # Not the name of the current test: a site booted during one test serves the next.
        **{name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"},
        "DJANGO_SETTINGS_MODULE": "config.settings.test_server",
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    from simulator.testing import SimulatorServer

    with SimulatorServer(latency_scale=0) as server:
        yield server.url


class Sites:
    """Starts the site under uvicorn. A start takes 1.5-2.5 s of CPU (imports, the first
    request), often longer than the test that asked for it. So each start also boots spares
    with the same environment in the background (two, so that each has the time of two
    short tests to boot), which the next starts with that environment take. Each caller
    still gets a process of its own that has answered nothing but /healthz (the site reads
    neither the database nor the cache before a request needs them)."""

    AHEAD = 2  # spares per environment
    KEEP = 2  # environments with spares (tests alternate between two, e.g. budget modes)

    def __init__(self) -> None:
        self.spares: dict[frozenset[tuple[str, str]], list[Booting]] = {}
        self.waiters = ThreadPoolExecutor(self.AHEAD * self.KEEP + 1)

    def start(self, env: dict[str, str]) -> tuple[str, subprocess.Popen]:
        key = frozenset(env.items())
        spares = self.spares.pop(key, [])
        site = spares.pop(0) if spares else self.boot(env)
        try:
            site.ready.result()
        except RuntimeError:  # it lost its port to another process, say (and is stopped)
            site = self.boot(env)
            site.ready.result()
        self.spares[key] = spares + [self.boot(env) for _ in range(self.AHEAD - len(spares))]
        while len(self.spares) > self.KEEP:
            for spare in self.spares.pop(next(iter(self.spares))):
                stop(spare.process)
        return site.url, site.process

    def boot(self, env: dict[str, str]) -> Booting:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        ready = self.waiters.submit(wait_for_server, f"{url}/healthz", port, process)
        return Booting(url, process, ready)

    def close(self) -> None:
        for spares in self.spares.values():
            for spare in spares:
                stop(spare.process)
        self.spares.clear()


@dataclass
class Booting:
    """A site process and the future of its first answer."""

    url: str
    process: subprocess.Popen
    ready: Future


_sites = Sites()


@pytest.fixture(autouse=True, scope="session")
def _stop_spare_sites(django_db_setup) -> Iterator[None]:
    """Before the test database is dropped."""
    yield
    _sites.close()


def serve_site(simulator_url: str, **env: str) -> tuple[str, subprocess.Popen]:
    """The site under uvicorn on this test's database, with `env` added to this process's
    environment; its URL and process, once it answers. Stop it with `stop`."""
    return _sites.start(subprocess_env(SIMULATOR_URL=simulator_url, **env))


@pytest.fixture
def live_site(transactional_db, simulator_url: str) -> Iterator[str]:
    """The site served by a real uvicorn process on this test's database; yields its base URL.

    Use with `@pytest.mark.django_db(transaction=True)` so that the server sees the rows the
    test writes (no open test transaction)."""
    from routing.models import Provider

    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    url, process = serve_site(simulator_url)
    try:
        yield url
    finally:
        stop(process)


def wait_for_budgets() -> None:
    """Until a site has seen the budgets as they are now: it checks for changes every
    HOT_CHECK_SECONDS (config/settings/test.py) and loads them again after one."""
    time.sleep(settings.HOT_CHECK_SECONDS + 0.3)


def start_worker(**env: str) -> subprocess.Popen:
    """A real Celery worker process on this run's broker and test database, with `env` added
    to this process's environment. It takes the tasks queued before it is up as well."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=threads",
            "-c",
            "4",
            "--loglevel=WARNING",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=subprocess_env(**env),
    )


def stop_worker(process: subprocess.Popen) -> None:
    """The test is over and nothing in flight matters: kill (a warm or cold shutdown of a
    worker on the filesystem broker takes 4-6 s)."""
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on this run's broker and test database, stopped with a
    warm shutdown: what it publishes is written whole (a kill in the middle of a publish on
    the filesystem broker would leave an empty message that stops the next test's worker)."""
    process = start_worker()
    yield process
    stop(process)


class Receiver:
    """A webhook receiver on loopback: records each request, answers with `statuses` in turn."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/switchboard"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()


@pytest.fixture
def secret_env(monkeypatch, settings) -> str:
    """The webhook signing secret, in the environment (subprocesses started later inherit it)."""
    monkeypatch.setenv(settings.SPEND_ALERT_WEBHOOK_SECRET_ENV, WEBHOOK_SECRET)
    return WEBHOOK_SECRET


@pytest.fixture
def mail_dir(monkeypatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where subprocesses started later (the site, a Celery worker) write the mail they send,
    one file per message (see config/settings/test_server.py). One folder for the run,
    emptied for each test, so that the site's environment is the same from test to test
    (`Sites` keeps a spare site per environment)."""
    folder = tmp_path_factory.getbasetemp() / "mail"
    shutil.rmtree(folder, ignore_errors=True)
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    return folder


def _user(username: str, team: Team | None, *roles: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw")
    # get_or_create: a transactional test's flush deletes the groups the migration created.
    user.groups.set([Group.objects.get_or_create(name=role)[0] for role in roles])
    if team:
        Membership.objects.create(user=user, team=team)
    return user


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(slug="team-a", name="Team A")


@pytest.fixture
def other_team(db) -> Team:
    return Team.objects.create(slug="team-b", name="Team B")


@pytest.fixture
def alice(team: Team) -> User:
    """Team A's editor and approver."""
    return _user("alice", team, Role.PROMPT_EDITOR, Role.PROMPT_APPROVER, Role.TEAM_MEMBER)


@pytest.fixture
def bob(team: Team) -> User:
    """Team A's member with no editing rights."""
    return _user("bob", team, Role.TEAM_MEMBER)


@pytest.fixture
def charlie(other_team: Team) -> User:
    """An editor in team B: an outsider to team A."""
    return _user("charlie", other_team, Role.PROMPT_EDITOR, Role.TEAM_MEMBER)


@pytest.fixture
def api_key(team: Team) -> str:
    return api_key_create(team=team, name="test")[1]


@pytest.fixture
def other_api_key(other_team: Team) -> str:
    return api_key_create(team=other_team, name="test")[1]


@pytest.fixture
def catalog(db, simulator_url: str) -> None:
    """The seeded catalog, tiers and default policy, with the simulator as the upstream."""
    from routing.seed import seed_catalog

    seed_catalog(simulator_url=simulator_url)


@pytest.fixture(autouse=True, scope="session")
def _close_sync_thread_connections(django_db_setup) -> Iterator[None]:
    """Async tests run ORM calls on asgiref's shared sync thread, whose database connection
    nobody closes; on PostgreSQL it would keep the test database from being dropped."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(autouse=True, scope="session")
def _cache_clear_keeps_to_this_run() -> Iterator[None]:
    """Django's Redis cache clears with FLUSHDB: every key in the Redis database, including
    the Celery broker's and those of other runs that share it (CI runs its PostgreSQL and
    SQLite passes at once; both use the Redis on 127.0.0.1, see tests/ops/conftest.py). In
    tests, `cache.clear()` deletes this run's keys (its CACHE_KEY_PREFIX) and no others."""
    from core.cache import ResilientRedisCache

    def clear(self) -> bool:
        assert self.key_prefix, "a test run's Redis keys need a prefix of their own"
        client = self._cache.get_client(write=True)
        for key in client.scan_iter(match=f"{self.key_prefix}:*", count=1000):
            client.delete(key)
        return True

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResilientRedisCache, "clear", clear)
        yield


# What the post_migrate signal after each flush would write back, row for row: left in place.
FLUSH_KEEPS = frozenset({"django_content_type", "auth_permission"})


@pytest.fixture(autouse=True, scope="session")
def _quick_flush() -> Iterator[None]:
    """Transactional tests end with a flush of every table, then the post_migrate signal,
    which writes back the content types and permissions the flush deleted (some 250 rows:
    a tenth of a second per test on PostgreSQL). The flush leaves those two tables alone
    instead, so the signal finds every row in place and writes nothing.

    On PostgreSQL the flush also DELETEs rather than TRUNCATEs: TRUNCATE gives each table
    and index a new file and syncs every index file to disk (some 230 syncs here): about a
    second on an idle disk, a minute when other runs share it. The tables are nearly empty,
    so DELETE (foreign keys are checked at the flush's commit) takes milliseconds."""
    from django.db.backends.postgresql.operations import DatabaseOperations as Postgres

    operations = type(connection.ops)
    flush = operations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        tables = [table for table in tables if table not in FLUSH_KEEPS]
        if isinstance(self, Postgres) and not (reset_sequences or allow_cascade):
            return [
                f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
                for table in tables
            ]
        return flush(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(operations, "sql_flush", sql_flush)
        yield


@pytest.fixture
async def _close_upstream_clients() -> AsyncIterator[None]:
    """Close the upstream connections an async test's loop opened, as a Celery task's loop
    does (`playground.runner.gateway_cleanup`): an open connection outlives its loop."""
    from gateway.upstream import clients_close

    yield
    await clients_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("_close_upstream_clients")
