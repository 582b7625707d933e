"""What the gateway's fast lane uses of Django's ASGI handler beyond its public API: a handler
whose middleware chain is given instead of built from `settings.MIDDLEWARE` (Django keeps it
in private attributes), that serves without a thread per request, in the request's own task,
that resolves each path once and awaits the view without the view, exception and
template-response middleware steps the lane has none of, and that sends an answer from the
headers as the response keeps them (private)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import URLPattern, URLResolver, get_resolver, set_script_prefix, set_urlconf
from django.urls.resolvers import ResolverMatch

GetResponse = Callable[[Any], Any]


@functools.lru_cache(maxsize=1024)
def _resolve(urlconf: str, path: str) -> ResolverMatch:
    """A path's match, kept: resolving (the include, each pattern's regex, a new
    ResolverMatch) cost about 4 % of a gateway request's instructions
    (bench/instructions.py). A path that matches nothing raises, and is not kept."""
    return get_resolver(urlconf).resolve(path)


class ChainASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain `chain(get_response)`, the URLconf
    `urlconf`, and no per-request thread.

    Django enters a `ThreadSensitiveContext` per request, which starts a new executor thread
    for the request's sync (ORM) calls; here they run on asgiref's one shared sync thread
    instead, which keeps its database connection (a pooled one) between requests. The
    request_started/request_finished signals, whose only receivers reset the debug query
    log and recycle connections, are not sent: each would cost a hop to that thread and
    hand its connection back to the pool.
    """

    def __init__(self, *, chain: Callable[[GetResponse], GetResponse], urlconf: str) -> None:
        self.chain = chain
        self.urlconf = urlconf
        async_views_only(get_resolver(urlconf).url_patterns)
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = self.chain(self._call_view)

    def resolve_request(self, request):
        """As Django's, with the lane's URLconf and a kept match (`_resolve`)."""
        set_urlconf(self.urlconf)
        match = request.resolver_match = _resolve(self.urlconf, request.path_info)
        return match

    async def _call_view(self, request):
        """Django's `_get_response_async` less what does nothing here: the lane's middleware
        has no view, exception or template-response hooks, its views are async (checked when
        the lane is built), and none runs in a transaction per request."""
        match = self.resolve_request(request)
        response = await match.func(request, *match.args, **match.kwargs)
        self.check_response(response, match.func)
        return response

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        # Django logs every 4xx/5xx answer here, on a worker thread: a 401/402/429 storm
        # would cost a thread hop and a log line per request. Upstream failures are in the
        # usage records; uncaught exceptions are still logged by Django's exception handler.
        request.urlconf = self.urlconf
        return await self._middleware_chain(request)

    async def send_response(self, response, send) -> None:
        """Django's, for an answer of up to `chunk_size` (64 KiB) that is neither streamed nor
        sets cookies (the gateway's): its headers as the response keeps them, checked and
        converted when they were set (Django re-checks each), and its body in one message
        (through a generator in Django). A larger body goes out in Django's 64 KiB messages:
        uvicorn waits for a slow reader between messages, not within one."""
        content = None if response.streaming or response.cookies else response.content
        if content is None or len(content) > self.chunk_size:
            await super().send_response(response, send)
            return
        headers = [
            (name.encode("ascii"), value.encode("latin1"))
            for name, value in response.headers._store.values()
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            if error_response is not None:
                await self.send_response(error_response, send)
            return

        serving = Serving(functools.partial(self.listen_for_disconnect, receive))
        try:
            response = await self.run_get_response(request)
            if serving.error is None:  # else the view outlived its client: nobody to send to
                await self.send_response(response, send)
        except asyncio.CancelledError:
            if serving.error is None:
                raise  # not the client's disconnect (the server shutting down)
        except RequestAborted:
            pass  # as Django: a disconnect the view noticed itself
        finally:
            # Not `response.close()`, which would send request_finished: the request's
            # uploaded files and its body, the one Django read from and the one it kept.
            request.close()
            body_file.close()
            serving.end()


def async_views_only(patterns: list[URLPattern | URLResolver]) -> None:
    """Refuse a URLconf with a view that is not async: the lane awaits its views as they are."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            async_views_only(pattern.url_patterns)
        elif not asyncio.iscoroutinefunction(pattern.callback):
            raise ImproperlyConfigured(f"the fast lane's view {pattern.name} is not async")


class Serving:
    """A request served in its own task, with one task listening for the client's disconnect.

    Django's handler runs the view in a task of its own next to the listener's and waits for
    the first of the two (two tasks and an `asyncio.wait` per request: about 4 % of a gateway
    request's instructions, bench/instructions.py). Here the view runs in the request's task
    and the listener cancels that task when the client goes away (or sends what Django's
    listener refuses), so a view still sees a disconnect as a `CancelledError` where it
    awaits (a stream records itself cancelled, an attempt its estimated usage)."""

    __slots__ = ("error", "listener", "task")

    def __init__(self, listen: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Serving needs the request's task")
        self.task = task
        self.error: Exception | None = None
        self.listener = asyncio.create_task(self._listen(listen))

    async def _listen(self, listen: Callable[[], Awaitable[None]]) -> None:
        try:
            await listen()
        except Exception as exc:  # RequestAborted: the client went away
            self.error = exc
            self.task.cancel()

    def end(self) -> None:
        """Stop listening. A cancellation the listener asked for is handled by now: it is
        taken back (`uncancel`), so that the task's later awaits and timeouts are not taken
        for cancelled; an error other than a disconnect is raised, as Django raises it."""
        self.listener.cancel()
        error = self.error
        if error is not None:
            self.task.uncancel()
            if not isinstance(error, RequestAborted):
                raise error
