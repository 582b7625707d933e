"""Shared fixtures: people and teams (alice/bob in team A, charlie in team B), keys, and the
real parts: the simulator, the site under uvicorn, a Celery worker — each a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection

from accounts.models import Membership, Role, Team, User
from accounts.services import api_key_create

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_test_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        **os.environ,
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


def serve_site(simulator_url: str) -> tuple[str, subprocess.Popen]:
    """Start the site under uvicorn on this test's database; its URL and process, once it
    answers. Stop it with `stop`."""
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
        env=subprocess_env(SIMULATOR_URL=simulator_url),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", process)
    except BaseException:
        stop(process)
        raise
    return url, process


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


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on this run's broker and test database."""
    process = subprocess.Popen(
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
        env=subprocess_env(),
    )
    time.sleep(1.5)
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
def mail_dir(monkeypatch, tmp_path: Path) -> Path:
    """Where subprocesses started later (the site, a Celery worker) write the mail they send,
    one file per message (see config/settings/test_server.py)."""
    folder = tmp_path / "mail"
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
def _flush_postgres_with_delete() -> Iterator[None]:
    """Transactional tests end with a flush of every table. PostgreSQL's TRUNCATE gives each
    table and index a new file and syncs every index file to disk (some 230 syncs here):
    about a second on an idle disk, a minute when other runs share it. The tables are nearly
    empty, so DELETE (foreign keys are checked at the flush's commit) takes milliseconds."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield
