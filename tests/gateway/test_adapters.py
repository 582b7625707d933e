"""The behaviour the adapters rely on in Django and the openai SDK, pinned: an upgrade that
changes it fails here, not in production (gateway/adapters)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json

import httpx2
import openai
import pytest
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.urls import include, path

from gateway.adapters.django_asgi import ChainASGIHandler, async_views_only
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
    # The lane awaits the view itself, as Django's step does, and checks the answer as it does.
    assert "self.check_response(response, callback)" in inspect.getsource(
        BaseHandler._get_response_async
    )
    assert HttpResponse(headers={"X-A": "b"}).headers._store["x-a"] == ("X-A", "b")


SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "headers": [],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 80),
}


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
        {**SCOPE, "method": "GET", "path": "/v1/models", "raw_path": b"/v1/models"}, receive, send
    )

    assert seen == ["/v1/models"]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 401  # the fast lane's view answered: no key
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert "error" in json.loads(body)


def test_a_fast_lane_with_a_view_that_is_not_async_is_refused_when_built():
    """The lane awaits its views without Django's thread hop for a sync one."""

    async def answers(request):
        return HttpResponse()

    def blocks(request):
        return HttpResponse()

    urls = [path("a", answers), path("b/", include([path("c", blocks, name="blocks")]))]

    with pytest.raises(ImproperlyConfigured, match="blocks"):
        async_views_only(urls)
    async_views_only(urls[:1])


# --- the request served in its own task (adapters.django_asgi.Serving) ----------------------------


def lane_serving(view):
    """The fast lane with `view` as its whole chain (no URLconf, no middleware)."""
    return ChainASGIHandler(chain=lambda get_response: view, urlconf="gateway.fast_urls")


class Client:
    """An ASGI client: sends its body, then hangs up when told to (`leave`)."""

    def __init__(self, after_body: dict | None = None) -> None:
        self.messages = [{"type": "http.request", "body": b"{}", "more_body": False}]
        self.left = asyncio.Event()
        self.after_body = after_body or {"type": "http.disconnect"}
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.messages:
            return self.messages.pop(0)
        await self.left.wait()
        return self.after_body

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self.left.set()


async def tasks_left() -> set[asyncio.Task]:
    await asyncio.sleep(0)  # a cancelled listener ends on the loop's next turn
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_the_view_runs_in_the_request_s_own_task_and_its_answer_is_sent():
    seen: list[asyncio.Task | None] = []

    async def view(request):
        seen.append(asyncio.current_task())
        return HttpResponse(b"hello", status=201)

    client = Client()
    await lane_serving(view)(SCOPE, client.receive, client.send)

    assert seen == [asyncio.current_task()]
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]
    assert client.sent[0]["status"] == 201
    assert client.sent[1]["body"] == b"hello"
    assert await tasks_left() == set()  # the disconnect listener is gone too


async def sent_by(handler, response) -> tuple[dict, list[dict]]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await handler.send_response(response, send)
    return sent[0], sent[1:]


def answer(size: int = 2_000) -> HttpResponse:
    response = HttpResponse(b"x" * size, content_type="application/json", status=201)
    response["x-switchboard-route"] = "rule: café"  # latin-1, as Django allows
    response["X-Request-Id"] = "req_1"
    return response


@pytest.mark.parametrize("size", [0, 2_000, 65_536, 65_537, 300_000])
async def test_an_answer_goes_out_as_django_sends_it(size):
    start, bodies = await sent_by(lane_serving(None), answer(size))
    django_start, django_bodies = await sent_by(ASGIHandler(), answer(size))

    assert start == django_start
    assert b"".join(body["body"] for body in bodies) == b"x" * size
    assert [len(body["body"]) for body in bodies] == [len(body["body"]) for body in django_bodies]


async def test_a_large_answer_goes_out_in_pieces_so_that_a_slow_reader_holds_it_back():
    """uvicorn waits for the socket to drain between messages: a 100 MiB file sent as one
    would be copied whole into the send buffer while the client reads nothing."""
    _, bodies = await sent_by(lane_serving(None), answer(300_000))

    assert len(bodies) == 5
    assert max(len(body["body"]) for body in bodies) == 65_536


async def test_an_answer_with_a_cookie_goes_out_through_django_s_own_send():
    response, django_response = answer(), answer()
    for each in (response, django_response):
        each.set_cookie("seen", "1")

    assert await sent_by(lane_serving(None), response) == await sent_by(
        ASGIHandler(), django_response
    )


async def test_the_request_is_closed_once_its_answer_is_sent():
    """Its uploaded files with it; the lane does not close the response (which would send
    request_finished)."""
    seen = []

    async def view(request):
        seen.append(request)
        assert request.body == b"{}"
        return HttpResponse(b"ok")

    client = Client()
    await lane_serving(view)(SCOPE, client.receive, client.send)

    assert seen[0]._stream.closed


async def test_a_client_that_leaves_mid_request_cancels_the_view_which_records_it():
    recorded: list[str] = []

    async def view(request):
        try:
            client.leave()
            await asyncio.sleep(30)  # the upstream, taking its time
        except asyncio.CancelledError:
            recorded.append("cancelled")  # as call_once records the attempt
            raise
        return HttpResponse(b"too late")

    client = Client()
    await asyncio.wait_for(lane_serving(view)(SCOPE, client.receive, client.send), timeout=5)

    assert recorded == ["cancelled"]
    assert client.sent == []  # nobody to answer
    assert asyncio.current_task().cancelling() == 0  # the handled cancellation does not leak
    assert await tasks_left() == set()


async def test_a_view_that_outlives_its_client_sends_nothing():
    async def view(request):
        client.leave()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return HttpResponse(b"nobody listens")

    client = Client()
    await asyncio.wait_for(lane_serving(view)(SCOPE, client.receive, client.send), timeout=5)

    assert client.sent == []
    assert asyncio.current_task().cancelling() == 0
    assert await tasks_left() == set()


async def test_an_exception_from_the_view_is_raised_and_the_listener_stopped():
    async def view(request):
        raise ValueError("a bug")

    client = Client()
    with pytest.raises(ValueError, match="a bug"):
        await lane_serving(view)(SCOPE, client.receive, client.send)

    assert client.sent == []
    assert await tasks_left() == set()


async def test_an_invalid_message_after_the_body_cancels_the_view_and_is_raised():
    cancelled: list[bool] = []

    async def view(request):
        try:
            client.leave()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return HttpResponse()

    client = Client(after_body={"type": "http.request", "body": b"more"})
    with pytest.raises(AssertionError, match="Invalid ASGI message"):
        await asyncio.wait_for(lane_serving(view)(SCOPE, client.receive, client.send), timeout=5)

    assert cancelled == [True]
    assert await tasks_left() == set()


async def test_django_s_disconnect_listener_and_asyncio_s_uncancel_still_work_as_relied_on():
    """Serving listens with Django's `listen_for_disconnect` and takes its cancellation back
    with `Task.uncancel` (Python 3.11+): if either changes, this fails, not production."""

    async def receive():
        return {"type": "http.disconnect"}

    with pytest.raises(RequestAborted):
        await ASGIHandler().listen_for_disconnect(receive)
    assert "process_request" in inspect.getsource(ASGIHandler.handle)  # what the lane replaces
    assert callable(asyncio.Task.uncancel)
    assert asyncio.current_task().cancelling() == 0
