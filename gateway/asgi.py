"""The gateway's fast lane, and the lifespan that returns budget leases and flushes usage
on shutdown.

`/v1/*`, `/api/v1/prompts/<slug>/run` and `/api/v1/route` authenticate with team keys and
need none of the site's middleware (sessions, CSRF, auth, messages, clickjacking). Django's
`MiddlewareMixin` runs each such middleware through `sync_to_async` in an async stack, so
this lane serves those paths with a Django handler (`adapters.django_asgi`) that has only
core's async request middleware: the same URLconf and views, without a thread hop per
middleware.
"""

from __future__ import annotations

import gc
import logging
import re

import psycopg
from asgiref.sync import sync_to_async
from django.core.handlers.exception import convert_exception_to_response
from django.db import InterfaceError, OperationalError, close_old_connections
from django.urls import get_resolver

from core.errors import ServiceUnavailable
from core.middleware import RequestContextMiddleware
from gateway.adapters.django_asgi import ChainASGIHandler
from gateway.http import api_error, openai_error

log = logging.getLogger(__name__)

FAST_URLCONF = "gateway.fast_urls"
YOUNG_COLLECTION_THRESHOLD = 10_000  # new objects between young collections (Python: 700)
GATEWAY_PATHS = re.compile(r"^/(v1/|api/v1/route$|api/v1/prompts/[-a-zA-Z0-9_]+/run$)")


def _chain(get_response):
    """Only core's async-only request middleware (request id, size limit, access log,
    metrics): it adds microseconds and no thread hop (bench/middleware.py). On PostgreSQL
    the hot path uses `spend.pg`'s own async connections; Django marks a broken connection
    and reconnects."""
    return convert_exception_to_response(
        RequestContextMiddleware(convert_exception_to_response(_database_errors(get_response)))
    )


def _database_errors(get_response):
    """A lost database connection answers a clean 503 in the surface's error shape, and the
    shared sync thread drops its broken connection: this lane sends no request_finished
    signal, which would otherwise recycle it, so every later query would fail too."""
    lost = (InterfaceError, OperationalError, psycopg.InterfaceError, psycopg.OperationalError)

    async def inner(request):
        try:
            return await get_response(request)
        except lost:
            log.exception("database error on %s", request.path)
            await sync_to_async(close_old_connections)()
            error = ServiceUnavailable(
                "The database is unavailable; retry shortly.", headers={"Retry-After": "1"}
            )
            render = openai_error if request.path.startswith("/v1/") else api_error
            return render(error)

    return inner


def with_gateway(site):
    """Route gateway paths to the fast lane; answer the lifespan protocol for both."""
    lane = ChainASGIHandler(chain=_chain, urlconf=FAST_URLCONF)

    async def application(scope, receive, send):
        kind = scope["type"]
        if kind == "http" and GATEWAY_PATHS.match(scope["path"]):
            await lane(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        else:
            await site(scope, receive, send)

    return application


async def _lifespan(receive, send) -> None:
    from gateway.upstream import clients_close, serving
    from spend import pg
    from spend.budgets import budget_leases_return
    from spend.usage import usage_shutdown, usage_spools_replay_start

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            serving()
            pg.serving()
            usage_spools_replay_start()  # what dead processes left unwritten
            _tune_collector()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                budget_leases_return()
                await usage_shutdown(within=10)
                await clients_close()
                await pg.pg_close()
            except Exception:  # shutting down: log it, do not hang the server
                log.exception("flushing usage on shutdown failed")
            await send({"type": "lifespan.shutdown.complete"})
            return


def _tune_collector() -> None:
    """Import what the requests will (both URLconfs and the views they name), then take every
    object alive now out of the cyclic collector's reach for good (`gc.freeze`). A full
    collection walks every tracked object: about 200,000 after start-up, 80-100 ms on a
    2-core machine, a pause that every request in flight waits out, once every thousand or
    so requests at full load. Frozen, that walk covers only what was made since: 10-20 ms.

    And collect the young generation after YOUNG_COLLECTION_THRESHOLD new objects, not
    Python's 700: at 64 requests in flight each pass walks the in-flight requests' objects
    again: the passes took 7-9 % of the loop's time (480-580 ms in 8,000 requests; 180-240 ms
    at 10,000, with passes of 10-15 ms; bench/profile.py --stages, bench/README.md)."""
    for urlconf in (None, FAST_URLCONF):
        get_resolver(urlconf).url_patterns  # noqa: B018  (imports the URLconf and its views)
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
