from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from django.http import JsonResponse, StreamingHttpResponse
from django.test import AsyncRequestFactory, RequestFactory
from django.utils import timezone

from core.idempotency import (
    Caller,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    Reservation,
    StoredResponse,
    idempotency_begin_sync,
    idempotency_finish_sync,
    idempotency_purge,
    idempotent,
    request_fingerprint,
)
from core.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

BEARER = {"Authorization": "Bearer sb_test_key_for_idempotency_0001"}


def begin(key: str = "k1", fingerprint: str = "f1", bearer: str = "sb_abc"):
    return idempotency_begin_sync(
        caller=Caller.from_bearer(bearer), key=key, fingerprint=fingerprint
    )


# --- the service -----------------------------------------------------------------------------


def test_the_first_request_reserves_the_key():
    assert isinstance(begin(), Reservation)
    assert IdempotencyRecord.objects.get().state == IdempotencyRecord.State.IN_PROGRESS


def test_a_retry_with_the_same_body_gets_the_stored_response():
    reservation = begin()
    idempotency_finish_sync(reservation, status=201, body='{"id": 7}', headers={"x-a": "1"})
    replay = begin()
    assert replay == StoredResponse(
        status=201, body='{"id": 7}', content_type="application/json", headers={"x-a": "1"}
    )


def test_a_retry_with_a_different_body_is_a_409():
    idempotency_finish_sync(begin(), status=200, body="{}")
    with pytest.raises(IdempotencyKeyReused) as refused:
        begin(fingerprint="other")
    assert refused.value.status == 409
    assert refused.value.code == "idempotency_key_reused"


def test_a_retry_while_the_first_still_runs_is_a_409_with_retry_after():
    begin()
    with pytest.raises(IdempotencyInProgress) as refused:
        begin()
    assert refused.value.headers == {"Retry-After": "1"}


def test_a_reservation_whose_process_died_is_taken_over_after_its_lease():
    first = begin()
    IdempotencyRecord.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    second = begin()
    assert second == first


@pytest.mark.parametrize("status", [402, 429, 502])
def test_an_error_releases_the_key_so_a_retry_runs_again(status):
    idempotency_finish_sync(begin(), status=status, body="{}")
    assert IdempotencyRecord.objects.count() == 0
    assert isinstance(begin(), Reservation)


def test_the_same_key_from_two_callers_does_not_collide():
    idempotency_finish_sync(begin(bearer="sb_team_a"), status=200, body='"a"')
    assert isinstance(begin(bearer="sb_team_b", fingerprint="different"), Reservation)


def test_the_stored_response_is_unreadable_without_the_callers_key():
    idempotency_finish_sync(
        begin(), status=201, body='{"output": "the secret answer"}', headers={"x-a": "route"}
    )
    stored = IdempotencyRecord.objects.get()
    assert "secret" not in stored.sealed_response
    assert "route" not in stored.sealed_response
    # The scope is the bearer key's hash; the sealing key is derived apart from it.
    caller = Caller.from_bearer("sb_abc")
    assert stored.scope == caller.scope
    assert caller.secret.hex() not in stored.scope
    assert begin().body == '{"output": "the secret answer"}'


def test_a_stored_response_that_cannot_be_opened_is_forgotten_and_the_request_runs_again():
    idempotency_finish_sync(begin(), status=201, body='{"id": 7}')
    IdempotencyRecord.objects.update(sealed_response="bm90IHNlYWxlZA==")  # altered in the table
    assert isinstance(begin(), Reservation)


def test_an_expired_record_is_forgotten():
    idempotency_finish_sync(begin(), status=200, body="{}")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert isinstance(begin(fingerprint="new body"), Reservation)


def test_the_purge_deletes_expired_records_only():
    idempotency_finish_sync(begin(key="old"), status=200, body="{}")
    idempotency_finish_sync(begin(key="new"), status=200, body="{}")
    IdempotencyRecord.objects.filter(key="old").update(expires_at=timezone.now())
    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_json_bodies_match_by_content_not_by_spelling():
    a = request_fingerprint(method="POST", path="/x", body=b'{"a": 1, "b": [1, 2]}')
    b = request_fingerprint(method="POST", path="/x", body=b'{"b":[1,2],"a":1}')
    c = request_fingerprint(method="POST", path="/x", body=b'{"b":[2,1],"a":1}')
    d = request_fingerprint(method="POST", path="/y", body=b'{"a": 1, "b": [1, 2]}')
    assert a == b
    assert a != c
    assert a != d


# --- the decorator ---------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.calls = 0


def make_async_view(counter: Counter, *, status: int = 201, delay: float = 0):
    @idempotent
    async def view(request):
        counter.calls += 1
        if delay:
            await asyncio.sleep(delay)
        return JsonResponse(
            {"run": counter.calls}, status=status, headers={"x-switchboard-tier": "mini"}
        )

    return view


def post(factory, body: dict, key: str | None = "key-1"):
    headers = dict(BEARER)
    if key is not None:
        headers["Idempotency-Key"] = key
    return factory.post("/run", json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_a_retried_run_returns_the_first_result_without_running_again():
    counter = Counter()
    view = make_async_view(counter)
    factory = AsyncRequestFactory()
    first = await view(post(factory, {"q": 1}))
    second = await view(post(factory, {"q": 1}))
    assert counter.calls == 1
    assert second.status_code == 201
    assert json.loads(second.content) == json.loads(first.content) == {"run": 1}
    assert second["Idempotent-Replayed"] == "true"
    assert second["x-switchboard-tier"] == "mini"


@pytest.mark.django_db(transaction=True)
async def test_a_different_body_with_the_same_key_gets_409_in_the_surface_shape():
    view = make_async_view(Counter())
    factory = AsyncRequestFactory()
    await view(post(factory, {"q": 1}))
    response = await view(post(factory, {"q": 2}))
    assert response.status_code == 409
    assert json.loads(response.content)["error"]["code"] == "idempotency_key_reused"


@pytest.mark.django_db(transaction=True)
async def test_two_concurrent_retries_run_the_work_once():
    counter = Counter()
    view = make_async_view(counter, delay=0.3)
    factory = AsyncRequestFactory()
    responses = await asyncio.gather(*(view(post(factory, {"q": 1})) for _ in range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert counter.calls == 1
    assert statuses == [201, 409, 409]
    assert all(r["Retry-After"] == "1" for r in responses if r.status_code == 409)


@pytest.mark.django_db(transaction=True)
async def test_requests_without_a_key_run_every_time():
    counter = Counter()
    view = make_async_view(counter)
    factory = AsyncRequestFactory()
    await view(post(factory, {"q": 1}, key=None))
    await view(post(factory, {"q": 1}, key=None))
    assert counter.calls == 2


@pytest.mark.django_db(transaction=True)
async def test_an_exception_releases_the_key():
    calls = Counter()

    @idempotent
    async def failing(request):
        calls.calls += 1
        raise RuntimeError("boom")

    factory = AsyncRequestFactory()
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await failing(post(factory, {"q": 1}))
    assert calls.calls == 2
    assert await IdempotencyRecord.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_streamed_response_is_not_stored():
    @idempotent
    async def streaming(request):
        async def chunks():
            yield b"data: 1\n\n"

        return StreamingHttpResponse(chunks(), content_type="text/event-stream")

    response = await streaming(post(AsyncRequestFactory(), {"stream": True}))
    assert response.streaming
    assert await IdempotencyRecord.objects.acount() == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
def test_a_malformed_idempotency_key_is_a_400(key):
    counter = Counter()

    @idempotent
    def view(request):
        counter.calls += 1
        return JsonResponse({})

    response = view(post(RequestFactory(), {"q": 1}, key=key))
    assert response.status_code == 400
    assert counter.calls == 0


def test_sync_views_are_idempotent_too():
    counter = Counter()

    @idempotent
    def view(request):
        counter.calls += 1
        return JsonResponse({"job": counter.calls}, status=202)

    factory = RequestFactory()
    assert view(post(factory, {"rows": 3})).status_code == 202
    replay = view(post(factory, {"rows": 3}))
    assert replay.status_code == 202
    assert json.loads(replay.content) == {"job": 1}
    assert counter.calls == 1


def test_reads_pass_through_untouched():
    counter = Counter()

    @idempotent
    def view(request):
        counter.calls += 1
        return JsonResponse({})

    factory = RequestFactory()
    for _ in range(2):
        view(factory.get("/run", headers={"Idempotency-Key": "k", **BEARER}))
    assert counter.calls == 2
    assert IdempotencyRecord.objects.count() == 0
