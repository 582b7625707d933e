"""The behaviour the adapters rely on in Django and the openai SDK, pinned: an upgrade that
changes it fails here, not in production (gateway/adapters)."""

from __future__ import annotations

import inspect
import json

import httpx2
import openai
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse

from gateway.adapters.django_asgi import ChainASGIHandler
from gateway.adapters.openai_sdk import sdk_status_error


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_an_error_response_becomes_the_sdk_s_exception_with_its_body(status, error_class):
    client = openai.AsyncOpenAI(base_url="http://upstream.invalid/v1", api_key="k")
    body = {"error": {"message": "slow down", "code": "some_code", "param": "input"}}
    response = httpx2.Response(
        status,
        headers={"retry-after": "2"},
        content=json.dumps(body).encode(),
        request=httpx2.Request("POST", "http://upstream.invalid/v1/responses"),
    )

    error = sdk_status_error(client, response)

    assert isinstance(error, error_class)
    assert error.status_code == status
    assert error.body == body["error"]
    assert error.response.headers["retry-after"] == "2"


def test_django_s_handler_still_has_what_the_fast_lane_replaces():
    handler = ASGIHandler()
    for name in ("_middleware_chain", "_view_middleware", "_exception_middleware"):
        assert hasattr(handler, name), name
    assert callable(handler._get_response_async)
    for name in ("read_body", "create_request", "send_response", "run_get_response"):
        assert callable(getattr(handler, name)), name
    assert callable(handler.listen_for_disconnect)
    # The lane keeps each path's match by overriding the step Django resolves in.
    assert "self.resolve_request(request)" in inspect.getsource(BaseHandler._get_response_async)
    assert isinstance(HttpResponse()._resource_closers, list)


async def test_the_fast_lane_serves_through_its_own_chain_and_no_other_middleware():
    seen: list[str] = []

    def chain(get_response):
        async def middleware(request):
            seen.append(request.path)
            return await get_response(request)

        return middleware

    lane = ChainASGIHandler(chain=chain, urlconf="gateway.fast_urls")
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await lane(
        {
            "type": "http",
            "method": "GET",
            "path": "/v1/models",
            "raw_path": b"/v1/models",
            "query_string": b"",
            "headers": [],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        },
        receive,
        send,
    )

    assert seen == ["/v1/models"]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 401  # the fast lane's view answered: no key
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert "error" in json.loads(body)
