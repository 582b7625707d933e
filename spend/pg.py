"""A native async PostgreSQL pool for the gateway's hot-path writes (budgets and usage).

Django's async ORM runs every query on a worker thread (`sync_to_async`); each hop costs
tens of microseconds of CPU and serializes the gateway's queries on one thread. On
PostgreSQL the budget reservation and the usage writer instead use psycopg's async
connections directly, from a small pool per event loop, on the database Django uses.
Other backends (SQLite) keep the Django connection on a worker thread.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from django.conf import settings
from django.db import connection

POOL_MIN, POOL_MAX = 1, 8
# A connection that served a query this recently is handed out without a liveness check.
CHECK_IDLE_SECONDS = 1.0

_pools: dict[asyncio.AbstractEventLoop, Any] = {}
# Connection → when it last finished a block of work without an error (time.monotonic).
_worked_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


_serving = {"on": False}


def serving(on: bool = True) -> None:
    """Use the async pool in this process: the web server calls it at ASGI lifespan startup
    (one long-lived event loop, pools closed at shutdown). Short-lived loops (Celery tasks,
    `async_to_sync`, tests) keep Django's connection: a pool left open on a loop that is
    being torn down would hold that teardown up."""
    _serving["on"] = on


def is_serving() -> bool:
    return _serving["on"]


def pg_enabled() -> bool:
    # Read from the settings, not `connection.vendor`: that goes through Django's
    # per-thread connection proxy, which costs more than this whole check on the hot path.
    return (
        _serving["on"]
        and settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    )


def _connect_kwargs() -> dict[str, Any]:
    settings = connection.settings_dict
    kwargs: dict[str, Any] = {"dbname": settings["NAME"], "autocommit": True}
    for key, name in (
        ("USER", "user"),
        ("PASSWORD", "password"),
        ("HOST", "host"),
        ("PORT", "port"),
    ):
        if settings.get(key):
            kwargs[name] = settings[key]
    return kwargs


async def _pool() -> Any:
    from psycopg_pool import AsyncConnectionPool

    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        for old in [old for old in _pools if old.is_closed()]:
            del _pools[old]
        # `check`: hand out only live connections (as Django's pool with CONN_HEALTH_CHECKS),
        # so that connections dropped while idle cost a reconnect, not a failed request.
        pool = _pools[loop] = AsyncConnectionPool(
            kwargs=_connect_kwargs(),
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            open=False,
            check=_check_if_idle,
        )
        await pool.open(wait=False)
    return pool


async def _check_if_idle(conn: Any) -> None:
    """The pool's liveness check (a round trip), skipped for a connection that finished its
    last work less than CHECK_IDLE_SECONDS ago: under load the usage writer and the budget
    top-ups take a connection many times a second, and the check was one more round trip
    each time. A connection dropped within that second fails its query as one dropped
    between a check and the query would: the usage writer retries the batch."""
    worked_at = _worked_at.get(conn)
    if worked_at is not None and time.monotonic() - worked_at < CHECK_IDLE_SECONDS:
        return
    from psycopg_pool import AsyncConnectionPool

    await AsyncConnectionPool.check_connection(conn)


@asynccontextmanager
async def pg_connection() -> AsyncIterator[Any]:
    """A pooled async connection in autocommit mode (use `conn.transaction()` for more)."""
    pool = await _pool()
    async with pool.connection() as conn:
        yield conn
        _worked_at[conn] = time.monotonic()


async def pg_close() -> None:
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
