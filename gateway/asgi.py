"""The gateway's fast lane, and the lifespan that flushes usage on shutdown.

`/v1/*`, `/api/v1/prompts/<slug>/run` and `/api/v1/route` authenticate with team keys and
need none of the site's middleware (sessions, CSRF, auth, messages, clickjacking). Django's
`MiddlewareMixin` runs each such middleware through `sync_to_async` in an async stack, so
this lane serves those paths with a Django handler that has no middleware at all: the same
URLconf and views, without a thread hop per middleware.
"""

from __future__ import annotations

import logging
import re

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

log = logging.getLogger(__name__)

GATEWAY_PATHS = re.compile(r"^/(v1/|api/v1/route$|api/v1/prompts/[-a-zA-Z0-9_]+/run$)")


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


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
    from gateway.upstream import clients_close
    from gateway.usage import usage_flush

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await usage_flush()
                await clients_close()
            except Exception:  # shutting down: log it, do not hang the server
                log.exception("flushing usage on shutdown failed")
            await send({"type": "lifespan.shutdown.complete"})
            return
