"""Prometheus metrics: what the site counts, and the small functions the gateway calls.

Each `record_*` call costs a few microseconds (a label lookup and an increment). Labels hold
bounded values only: route names, tier and model names, team slugs, status classes; never
ids, raw paths or anything a client can choose freely.

With several worker processes (uvicorn `--workers`, gunicorn), set `PROMETHEUS_MULTIPROC_DIR`
to an empty directory, shared by the workers of one host, before they start: each process then
writes its samples there, and `/metrics` sums them (see docs/production.md).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from core.bearer import bearer_token

# Seconds; the gateway's latency spans a 1 ms cache hit to a minute-long reasoning call.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "switchboard_http_requests",
    "HTTP requests served, by route name and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "switchboard_http_request_duration_seconds",
    "Time from the request reaching Django to the response (for streams: to its last byte).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "switchboard_http_requests_in_flight",
    "Requests being served now.",
    multiprocess_mode="livesum",
)
GATEWAY_REQUESTS = Counter(
    "switchboard_gateway_requests",
    "Model calls answered by the gateway, by surface, tier, model and outcome.",
    ["surface", "tier", "model", "status"],
)
GATEWAY_LATENCY = Histogram(
    "switchboard_gateway_request_duration_seconds",
    "Gateway latency per request (routing, upstream calls, retries and fallbacks included).",
    ["surface", "tier"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "switchboard_upstream_errors",
    "Failed upstream calls, by provider, model and kind (the usage record's error code).",
    ["provider", "model", "kind"],
)
FALLBACKS = Counter(
    "switchboard_fallbacks",
    "Requests moved to another model or tier after an upstream failure or a failed check.",
    ["from_model", "to_model", "reason"],
)
BUDGET_BLOCKS = Counter(
    "switchboard_budget_blocks",
    "Requests refused (block) or sent to a cheaper tier (downgrade) by a budget.",
    ["team", "action"],
)
SPEND_USD = Counter(
    "switchboard_spend_usd",
    "Settled cost in US dollars (a float copy for dashboards; the ledger in the DB is exact).",
    ["team", "tier", "model"],
)
TOKENS = Counter(
    "switchboard_tokens",
    "Tokens billed, by team, model and kind (input, cached_input, output, reasoning).",
    ["team", "model", "kind"],
)
RATE_LIMITED = Counter(
    "switchboard_rate_limited",
    "Requests refused by a per-key rate limit, by limit kind (rpm, tpm).",
    ["kind"],
)
RATE_LIMITER_ERRORS = Counter(
    "switchboard_rate_limiter_errors",
    "Rate-limit checks that could not reach Redis and were answered locally.",
)
IDEMPOTENT_REPLAYS = Counter(
    "switchboard_idempotent_replays",
    "Requests answered from a stored result because their Idempotency-Key was seen before.",
)


# Each labelled child once per label values: `Metric.labels()` checks and copies its values
# and takes the metric's lock on every call, seven times per gateway request. The values are
# bounded (see above), so this holds what the metrics hold anyway.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def status_class(status: int | str) -> str:
    """`200` → `2xx`; strings such as `error` or `cut` pass through."""
    if isinstance(status, int):
        return f"{status // 100}xx"
    return status


def record_http(*, method: str, route: str, status: int, seconds: float) -> None:
    """Called by the request middleware for every response."""
    _child(HTTP_REQUESTS, method, route, str(status)).inc()
    _child(HTTP_LATENCY, method, route).observe(seconds)


def record_request(
    *, surface: str, tier: str, model: str, status: int | str, latency_seconds: float
) -> None:
    """One gateway request finished. surface: `chat`, `responses`, `run`, `playground`, `batch`;
    status: the HTTP status returned (or `cut` for a stream that broke after bytes were sent)."""
    _child(GATEWAY_REQUESTS, surface, tier or "-", model or "-", status_class(status)).inc()
    _child(GATEWAY_LATENCY, surface, tier or "-").observe(latency_seconds)


def record_upstream_error(*, provider: str = "-", model: str, kind: str) -> None:
    """One upstream call failed. kind: the usage record's error code (`rate_limited`,
    `server_error`, `timeout`, `connection_error`, `bad_request`, `upstream_stream_cut`...)."""
    UPSTREAM_ERRORS.labels(provider, model, kind).inc()


def record_fallback(*, from_model: str, to_model: str, reason: str) -> None:
    """The gateway moved on to another model. reason: `429`, `5xx`, `timeout`, `check_failed`..."""
    FALLBACKS.labels(from_model, to_model, reason).inc()


def record_budget_block(*, team: str, action: str) -> None:
    """A budget refused a request (`block`, HTTP 402) or downgraded it (`downgrade`)."""
    BUDGET_BLOCKS.labels(team, action).inc()


def record_spend(
    *,
    team: str,
    tier: str,
    model: str,
    cost_usd: Decimal,
    input_tokens: int = 0,
    cached_input_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> None:
    """A usage record was settled: its cost and tokens."""
    if cost_usd:
        _child(SPEND_USD, team, tier or "-", model).inc(float(cost_usd))
    for kind, count in (
        ("input", input_tokens),
        ("cached_input", cached_input_tokens),
        ("output", output_tokens),
        ("reasoning", reasoning_tokens),
    ):
        if count:
            _child(TOKENS, team, model, kind).inc(count)


def record_ledger(records: Sequence[Any]) -> None:
    """Everything one gateway request's usage records say, in one call when the request ends:
    each failed attempt (an upstream error, kind = its error code), each move to another model
    after a failure (a fallback), and the spend and tokens of the rest. Duck-typed on
    spend.models.UsageRecord (model_name, tier_name, team_id, status, error_code, cost_usd,
    token counts)."""
    previous = None
    for record in records:
        if record.status == "refused":  # no upstream call: nothing to count
            continue
        team = str(record.team_id)
        if record.status == "error" and record.error_code != "failed_check":
            record_upstream_error(provider="-", model=record.model_name, kind=record.error_code)
        if (
            previous is not None
            and previous.status != "success"
            and previous.model_name != record.model_name
        ):
            record_fallback(
                from_model=previous.model_name,
                to_model=record.model_name,
                reason=previous.error_code or previous.status,
            )
        record_spend(
            team=team,
            tier=record.tier_name,
            model=record.model_name,
            cost_usd=record.cost_usd,
            input_tokens=record.input_tokens,
            cached_input_tokens=record.cached_input_tokens,
            output_tokens=record.output_tokens,
            reasoning_tokens=record.reasoning_tokens,
        )
        previous = record


def record_rate_limited(*, kind: str) -> None:
    RATE_LIMITED.labels(kind).inc()


# --- /metrics -----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(
    allowed: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def metrics_access_allowed(request: HttpRequest) -> bool:
    """A Bearer METRICS_TOKEN, or a client address in METRICS_ALLOWED_IPS (CIDRs allowed).

    The address is REMOTE_ADDR, the peer of the ASGI server: behind a reverse proxy that is the
    proxy, so use the token there (docs/production.md)."""
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if token and (sent := bearer_token(header)) is not None:
        return secrets.compare_digest(sent, token)
    allowed = tuple(getattr(settings, "METRICS_ALLOWED_IPS", ()))
    if not allowed:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks(allowed))


def metrics_registry() -> CollectorRegistry:
    """The default registry, or one that sums every process's files in multi-process mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text format and its content type."""
    return generate_latest(metrics_registry()), CONTENT_TYPE_LATEST
