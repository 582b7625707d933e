from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.views.defaults import page_not_found

from core.errors import NotFound
from core.metrics import metrics_access_allowed, metrics_exposition
from core.middleware import OPENAI_PREFIX, error_response
from core.readiness import PROCESS_CHECKS, ProcessNotReady

API_PREFIXES = ("/api/", OPENAI_PREFIX)


async def favicon(request: HttpRequest) -> HttpResponse:
    """For pages without our <link rel="icon"> (the admin, API docs), which ask for this."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.set("readyz", "1", 5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache did not return the value it stored")


def _check_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


async def readyz(request: HttpRequest) -> JsonResponse:
    """Every dependency the site needs, each named in the answer; 503 if any is down."""
    checks = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(sync_to_async(check)(), timeout=5)
            results[name] = "ok"
        except Exception as exc:  # report any failure by name rather than crash the probe
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    reports: dict[str, Any] = {}
    for name, process_check in PROCESS_CHECKS.items():
        try:
            reports[name] = process_check()
            results[name] = "ok"
        except ProcessNotReady as exc:
            reports[name] = exc.report
            results[name] = f"error: {exc}"
    ok = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": results, **reports},
        status=200 if ok else 503,
    )


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape endpoint. 404 to anyone without METRICS_TOKEN or an allowed address,
    so that its existence is not advertised."""
    if not metrics_access_allowed(request):
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: the API surfaces answer in their JSON error shape, pages with the HTML page."""
    if request.path.startswith(API_PREFIXES):
        return error_response(request.path, NotFound(f"No endpoint at {request.path}."))
    return page_not_found(request, exception)
