"""The gateway's fast lane, and the lifespan that returns budget leases and flushes usage
on shutdown.

`/v1/*`, `/api/v1/prompts/<slug>/run` and `/api/v1/route` authenticate with team keys and
need none of the site's middleware (sessions, CSRF, auth, messages, clickjacking). Django's
`MiddlewareMixin` runs each such middleware through `sync_to_async` in an async stack, so
this lane serves those paths with a Django handler that has no middleware at all: the same
URLconf and views, without a thread hop per middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.db import InterfaceError, OperationalError, close_old_connections
from django.urls import set_script_prefix, set_urlconf

log = logging.getLogger(__name__)

FAST_URLCONF = "gateway.fast_urls"
GATEWAY_PATHS = re.compile(r"^/(v1/|api/v1/route$|api/v1/prompts/[-a-zA-Z0-9_]+/run$)")


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain and no per-request thread.

    Django enters a `ThreadSensitiveContext` per request, which starts a new executor thread
    for the request's sync (ORM) calls; on this lane they run on asgiref's one shared sync
    thread instead, which keeps its database connection (a pooled one) between requests.
    The request_started/request_finished signals, whose only receivers reset the debug query
    log and recycle connections, are not sent: each would cost a hop to that thread and
    hand its connection back to the pool (on PostgreSQL the hot path uses `spend.pg`'s own
    async connections anyway; Django marks a broken connection and reconnects).
    """

    def load_middleware(self, is_async: bool = False) -> None:
        from core.middleware import RequestContextMiddleware

        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        # Only core's async-only request middleware (request id, size limit, access log,
        # metrics): it adds microseconds and no thread hop (bench/middleware.py).
        self._middleware_chain = convert_exception_to_response(
            RequestContextMiddleware(
                convert_exception_to_response(_database_errors(self._get_response_async))
            )
        )

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        # Django logs every 4xx/5xx answer here, on a worker thread: a 401/402/429 storm
        # would cost a thread hop and a log line per request. Upstream failures are in the
        # usage records; uncaught exceptions are still logged by Django's exception handler.
        set_urlconf(settings.ROOT_URLCONF)
        request.urlconf = FAST_URLCONF
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        return response

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        async def process_request() -> None:
            response = await self.run_get_response(request)
            # The client may go away while we send: nothing more to do then.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)

        # As Django does: a disconnect while the view runs cancels it (streams record it).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        body_file.close()


def _database_errors(get_response):
    """A lost database connection answers a clean 503 in the surface's error shape, and the
    shared sync thread drops its broken connection: this lane sends no request_finished
    signal, which would otherwise recycle it, so every later query would fail too."""
    import psycopg

    from core.errors import ServiceUnavailable
    from gateway.http import api_error, openai_error

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
    lane = GatewayASGIHandler()

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
