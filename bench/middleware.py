"""What the request middleware costs per request (microseconds), measured in-process.

    python bench/middleware.py [--n 20000]

1. RequestContextMiddleware (request id, size check, metrics, JSON access line written to
   /dev/null) and ContentSecurityPolicyMiddleware around a view that returns at once;
2. the same request through Django's whole ASGI handler with the site's MIDDLEWARE list,
   and with none, to show what Django's own (MiddlewareMixin) middleware costs in async mode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

# the project instead of bench/, whose requests.py shadows the package
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
os.environ.setdefault("LOG_FORMAT", "json")

import django  # noqa: E402  (after the path and environment are set)

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import AsyncRequestFactory  # noqa: E402

from core.logging import JsonFormatter  # noqa: E402
from core.middleware import ContentSecurityPolicyMiddleware, RequestContextMiddleware  # noqa: E402


def quiet_access_log() -> None:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("switchboard.access")
    access.handlers = [handler]
    access.propagate = False
    access.setLevel(logging.INFO)


async def per_call_us(call, request_factory, n: int) -> float:
    for _ in range(200):
        await call(request_factory())
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            await call(request_factory())
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


async def middleware_only(n: int) -> None:
    async def view(request):
        return HttpResponse(b"{}", content_type="application/json")

    factory = AsyncRequestFactory()

    def make():
        return factory.post("/v1/chat/completions", b"{}", content_type="application/json")

    bare = await per_call_us(view, make, n)
    ours = RequestContextMiddleware(ContentSecurityPolicyMiddleware(view))
    wrapped = await per_call_us(ours, make, n)
    settings.ACCESS_LOG = False
    no_log = await per_call_us(ours, make, n)
    settings.ACCESS_LOG = True
    print(f"view alone (incl. building the request): {bare:7.1f} µs")
    print(
        f"+ RequestContext + CSP middleware:         {wrapped:7.1f} µs  (+{wrapped - bare:.1f} µs)"
    )
    print(f"  of which the JSON access-log line:       {wrapped - no_log:7.1f} µs")


async def through_django(n: int, middleware: list[str]) -> float:
    settings.MIDDLEWARE = middleware
    handler = ASGIHandler()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }

    never = asyncio.Event()

    def receiver():
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()  # no disconnect; Django cancels this when the response is sent
            return {"type": "http.disconnect"}

        return receive

    async def send(message):
        return None

    async def call(_):
        await handler(scope, receiver(), send)

    return await per_call_us(call, lambda: None, n)


async def main(n: int) -> None:
    quiet_access_log()
    print(f"Python {sys.version.split()[0]}, Django {django.get_version()}, n={n}\n")
    await middleware_only(n)
    full = list(settings.MIDDLEWARE)
    ours_only = [m for m in full if m.startswith("core.")]
    n_handler = max(1000, n // 10)
    none = await through_django(n_handler, [])
    only_ours = await through_django(n_handler, ours_only)
    everything = await through_django(n_handler, full)
    print("\nGET /healthz through Django's ASGI handler (no network):")
    print(f"  no middleware:                  {none:7.1f} µs")
    print(f"  our two middleware only:        {only_ours:7.1f} µs  (+{only_ours - none:.1f})")
    print(f"  the site's full MIDDLEWARE:     {everything:7.1f} µs  (+{everything - none:.1f})")
    print("  (the gateway's fast lane serves /v1 and the run endpoint with our middleware only)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    asyncio.run(main(parser.parse_args().n))
