"""The simulator: an OpenAI-compatible upstream as a plain Starlette app (nothing of Django's).

Serve it with `python -m simulator` or `manage.py run_simulator`; in tests, with
`simulator.testing.SimulatorServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator import batches_api, chat_api, files_api, responses_api
from simulator.engine import Completion, Conversation, complete
from simulator.failures import (
    FAIL_HEADER,
    HANG_SECONDS,
    NO_FLEX,
    Failure,
    SimulatorError,
    failure_for,
    invalid_request,
    raise_status_failure,
    split_model,
)
from simulator.profiles import CATALOG
from simulator.streaming import (
    EventStream,
    EventStreamResponse,
    TruncatedJSONResponse,
    wait_for_disconnect,
)

# 2026-01-01: a fixed date keeps /v1/models byte-for-byte stable.
_MODELS_CREATED = 1767225600


@dataclass(frozen=True, slots=True)
class _Api:
    conversation: Callable[[dict[str, Any], str], Conversation]
    answer: Callable[[Completion, dict[str, Any]], dict[str, Any]]
    event_stream: Callable[[Completion, dict[str, Any]], EventStream]


@dataclass(frozen=True, slots=True)
class _Pace:
    latency_scale: float
    answer_seconds: float | None


_RESPONSES = _Api(
    responses_api.conversation, responses_api.response_object, responses_api.event_stream
)
_CHAT = _Api(chat_api.conversation, chat_api.completion_object, chat_api.event_stream)


def create_app(
    latency_scale: float = 1.0,
    *,
    answer_seconds: float | None = None,
    batch_time_scale: float = 1.0,
    refuse_flex: bool = False,
) -> Starlette:
    """`latency_scale` multiplies every simulated delay; 0 answers at once (tests, benchmarks).
    `answer_seconds`, instead, makes every live answer take that long, short or long, streamed
    or not (benchmarks that need a fixed upstream time).
    `batch_time_scale` multiplies the phases of a batch (simulator.batches_api).
    `refuse_flex` answers every `service_tier: "flex"` request with OpenAI's 429
    "resource unavailable", as flex capacity sometimes is."""
    if latency_scale < 0 or batch_time_scale < 0:
        raise ValueError("latency_scale and batch_time_scale must be >= 0")
    if answer_seconds is not None and answer_seconds < 0:
        raise ValueError("answer_seconds must be >= 0")
    pace = _Pace(latency_scale, answer_seconds)
    files = files_api.FileStore()
    batches = batches_api.BatchStore(files, _answer_line, batch_time_scale)
    models = {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": _MODELS_CREATED, "owned_by": "simulator"}
            for name in CATALOG
        ],
    }

    async def list_models(request: Request) -> Response:
        return JSONResponse(models)

    async def create_response(request: Request) -> Response:
        return await _create(request, _RESPONSES, pace, refuse_flex)

    async def create_chat_completion(request: Request) -> Response:
        return await _create(request, _CHAT, pace, refuse_flex)

    return Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
            *(
                Route(path, endpoint, methods=methods)
                for path, endpoint, methods in [
                    *files_api.routes(files),
                    *batches_api.routes(batches),
                ]
            ),
        ],
        middleware=[Middleware(_RequestIdMiddleware)],
        exception_handlers={SimulatorError: _simulator_error, HTTPException: _http_error},
    )


async def _create(request: Request, api: _Api, pace: _Pace, refuse_flex: bool) -> Response:
    body = await _json_body(request)
    model, suffix = split_model(_model(body))
    if not model:
        raise invalid_request("Missing required parameter: 'model'.", param="model")
    if refuse_flex and body.get("service_tier") == "flex":
        raise SimulatorError(
            429,
            "Resource unavailable for the flex service tier; retry later or use the default "
            "tier. (simulated)",
            type="rate_limit_error",
            code="resource_unavailable",
        )
    failure = failure_for(request.headers.get(FAIL_HEADER), suffix)
    if failure is Failure.HANG:
        # Sleeps on the event loop, so other requests go on; a client that gives up ends it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_for_disconnect(request.receive), HANG_SECONDS)
    elif failure is not None:
        raise_status_failure(failure, model)
    conversation = api.conversation(body, model)
    completion = complete(conversation, pace.latency_scale, answer_seconds=pace.answer_seconds)
    cut = failure is Failure.CUT
    body = _as_served(body, suffix)
    if body.get("stream"):
        return EventStreamResponse(api.event_stream(completion, body), cut=cut)
    if completion.total_delay:
        await asyncio.sleep(completion.total_delay)
    payload = api.answer(completion, body)
    return TruncatedJSONResponse(payload) if cut else JSONResponse(payload)


def _as_served(body: dict[str, Any], suffix: str | None) -> dict[str, Any]:
    """The request with the service tier that serves it: a model without flex capacity
    (`@noflex`) serves `flex` requests at `default`. Answers and streams say that tier, as
    OpenAI's do."""
    served = body.get("service_tier") or "default"
    if suffix == NO_FLEX and served == "flex":
        served = "default"
    return {**body, "service_tier": served}


def _answer_line(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One line of a batch, answered as its live endpoint would (without delays)."""
    api = _RESPONSES if url == "/v1/responses" else _CHAT
    model, suffix = split_model(_model(body))
    completion = complete(api.conversation(body, model), 0)
    return 200, api.answer(completion, _as_served(body, suffix))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)"
        ) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str):
        raise invalid_request("Missing required parameter: 'model'.", param="model")
    return model


async def _simulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimulatorError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in OpenAI's error shape too."""
    assert isinstance(exc, HTTPException)
    error = SimulatorError(exc.status_code, exc.detail, code="unknown_url")
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


class _RequestIdMiddleware:
    """Adds `x-request-id`, as OpenAI does, so that clients can log the upstream's request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (b"x-request-id", f"req_{secrets.token_hex(16)}".encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
