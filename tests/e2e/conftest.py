"""Browser-test infrastructure (run it on its own: `python -m pytest tests/e2e`).

One session-wide stack, all real processes:
- a database of its own: `var/e2e.sqlite3` (SQLite), or `test_e2e_<run>` on the server that
  DATABASE_URL names (PostgreSQL), migrated and seeded with `seed_demo` through manage.py;
- the simulator (`python -m simulator`) as the upstream, on a free port;
- the site under uvicorn (`config.asgi:application`) on a free port, with
  DJANGO_SETTINGS_MODULE=config.settings.test_server;
- people in team `demo` (see E2E_USERS), password E2E_PASSWORD;
- Playwright (sync API) driving Debian's /usr/bin/chromium.

Fixtures: `e2e_server` (E2EServer: .url, .simulator_url, .manage(), .shell()), `base_url`
(so `page.goto("/prompts/")` works), `logged_in_page(username)` (a fresh context and page,
signed in), and the `screenshot(page, name)` helper (also importable) that saves
docs/screenshots/<name>.png.

The test process never touches that database: act through the browser, HTTP, or
`e2e_server.shell(...)`, which runs Python in a manage.py subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port, stop, wait_for_server

# Playwright's sync API runs an event loop in the test thread; Django's ORM (imported by the
# shared conftest) would refuse to run beside it without this (TOOLCHAIN.md §4).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
E2E_PASSWORD = "e2e-Password-42"
# username → (roles, team slug or None). Team `demo` is seed_demo's; `outsiders` is made here.
E2E_USERS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "pm": (("prompt_editor", "team_member"), "demo"),
    "approver": (("prompt_editor", "prompt_approver", "team_member"), "demo"),
    "member": (("team_member",), "demo"),
    "engineer": (("prompt_editor", "team_member"), "demo"),
    "finance": (("finance", "team_member"), "demo"),
    "outsider": (("prompt_editor", "team_member"), "outsiders"),
}
# The simulator's speed for the browser: slow enough that streaming is visible, fast enough
# for a quick suite. 0 means instant.
SIMULATOR_LATENCY = float(os.environ.get("E2E_SIMULATOR_LATENCY", "0.1"))


@dataclass
class E2EDatabase:
    """The e2e stack's own database, created fresh and removed afterwards."""

    url: str
    drop: Callable[[], None] = field(default=lambda: None)

    @classmethod
    def create(cls, run: str) -> E2EDatabase:
        configured = os.environ.get("DATABASE_URL", "")
        if configured.startswith(("postgres://", "postgresql://")):
            return cls._postgres(configured, f"test_e2e_{run}")
        path = ROOT / "var" / "e2e.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return cls(url=f"sqlite:///{path}")

    @classmethod
    def _postgres(cls, configured: str, name: str) -> E2EDatabase:
        import psycopg

        parts = urllib.parse.urlsplit(configured)
        admin_dsn = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return cls(url=urllib.parse.urlunsplit(parts._replace(path=f"/{name}")), drop=drop)


@dataclass
class E2EServer:
    url: str
    simulator_url: str
    env: dict[str, str]

    def manage(self, *args: str, check: bool = True) -> str:
        """Run `manage.py <args>` against the e2e database; return its stdout."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python in a Django shell on the e2e database (print() to return values)."""
        return self.manage("shell", "-c", code)


_USERS_CODE = """
from django.contrib.auth.models import Group
from accounts.models import Membership, Team, User
users = {users!r}
for username, (roles, team_slug) in users.items():
    user = User.objects.filter(username=username).first() or User.objects.create_user(
        username, f"{{username}}@example.com", {password!r})
    user.groups.set(Group.objects.filter(name__in=roles))
    if team_slug:
        team, _ = Team.objects.get_or_create(slug=team_slug, defaults={{"name": team_slug.title()}})
        Membership.objects.get_or_create(user=user, team=team)
"""


def create_users(server: E2EServer, users: dict[str, tuple[tuple[str, ...], str | None]]) -> None:
    """Create (or update) people: {username: ((role, ...), team_slug)}, password E2E_PASSWORD."""
    server.shell(_USERS_CODE.format(users=users, password=E2E_PASSWORD))


@pytest.fixture(scope="session")
def e2e_server() -> Iterator[E2EServer]:
    from simulator.testing import SimulatorServer

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browsers` (apt-get install chromium)")
    run = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    database = E2EDatabase.create(run)
    simulator = SimulatorServer(latency_scale=SIMULATOR_LATENCY).start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_server",
        "DATABASE_URL": database.url,
        "SIMULATOR_URL": simulator.url,
        "SWITCHBOARD_TEST_RUN": f"e2e{run}",
        "CACHE_KEY_PREFIX": f"sbe2e{run}",
        "CELERY_QUEUE": f"e2e{run}",
        "CELERY_FS_DIR": str(ROOT / "var" / f"celery-e2e-{run}"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server must not need it
    port = free_port()
    server = E2EServer(url=f"http://127.0.0.1:{port}", simulator_url=simulator.url, env=env)
    process = None
    try:
        server.manage("migrate", "--noinput")
        server.manage("seed_demo")
        create_users(server, E2E_USERS)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        wait_for_server(f"{server.url}/healthz", port, process, timeout=40)
        yield server
    finally:
        if process is not None:
            stop(process)
        simulator.stop()
        database.drop()
        shutil.rmtree(env["CELERY_FS_DIR"], ignore_errors=True)


# --- Playwright -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(e2e_server: E2EServer) -> str:
    return e2e_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, base_url: str) -> dict:
    return {
        **browser_context_args,
        "base_url": base_url,
        "viewport": {"width": 1400, "height": 900},
    }


def login(page, username: str, password: str = E2E_PASSWORD) -> None:
    """Sign in through the login form; ends on the page the login redirects to."""
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    try:
        page.wait_for_url(lambda url: "/login/" not in url, timeout=10_000)
    except Exception as exc:
        raise AssertionError(f"login as {username!r} failed") from exc


@pytest.fixture
def logged_in_page(browser, browser_context_args: dict) -> Iterator[Callable]:
    """`logged_in_page("pm")` → a Page in a fresh context, signed in as that user."""
    contexts = []

    def open_page(username: str, password: str = E2E_PASSWORD):
        context = browser.new_context(**browser_context_args)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        login(page, username, password)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    """Save docs/screenshots/<name>.png (the README shows these). Written whole, then
    renamed: CI's two passes take the same screenshots at the same time."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    partial = path.with_name(f".{name}.{os.getpid()}.png")
    partial.write_bytes(page.screenshot(full_page=full_page))
    partial.replace(path)
    return path


@pytest.fixture(name="screenshot")
def screenshot_fixture() -> Callable:
    return screenshot
