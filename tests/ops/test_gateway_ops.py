"""Operations on the gateway's hot path, end to end: the site under uvicorn, the simulator as
its upstream, the real openai SDK and plain HTTP."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from accounts.models import ApiKey
from core.models import IdempotencyRecord
from spend.models import UsageRecord
from tests.gateway.conftest import usage_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TRIAGE = {"variables": {"message": "My invoice is wrong", "channel": "email"}}


def chat(site: str, key: str, **extra) -> httpx.Response:
    return httpx.post(
        f"{site}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "Hello"}]},
        headers={"Authorization": f"Bearer {key}", **extra},
        timeout=30,
    )


def run(site: str, key: str, body: dict, **headers) -> httpx.Response:
    return httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def test_the_callers_request_id_names_the_response_and_the_usage_records(site, api_key):
    sdk = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"X-Request-ID": "trace-7f3a"},
    )
    assert raw.headers["x-request-id"] == "trace-7f3a"
    assert usage_for("trace-7f3a")


def test_without_a_request_id_the_gateway_makes_one_and_records_it(site, api_key):
    response = chat(site, api_key)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{24}", request_id)
    assert usage_for(request_id)


def test_a_key_over_its_requests_per_minute_gets_429_and_is_not_charged(site, team, api_key):
    ApiKey.objects.filter(team=team).update(rate_limit_rpm=2)
    statuses = [chat(site, api_key).status_code for _ in range(2)]
    refused = chat(site, api_key)
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limited"
    assert "2 requests per minute" in error["message"]
    assert wait_for(lambda: UsageRecord.objects.filter(team=team).count() >= 2)
    refusal = wait_for(
        lambda: UsageRecord.objects.filter(request_id=refused.headers["x-request-id"]).first()
    )
    assert (refusal.status, refusal.error_code, refusal.cost_usd) == ("refused", "rate_limited", 0)


def test_the_sdk_sees_a_rate_limit_error(site, team, api_key):
    ApiKey.objects.filter(team=team).update(rate_limit_rpm=1)
    sdk = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)
    sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "two"}])


def test_other_keys_are_not_limited_by_a_limited_key(site, team, api_key, other_api_key):

    ApiKey.objects.filter(team=team).update(rate_limit_rpm=1)
    assert chat(site, api_key).status_code == 200
    assert chat(site, api_key).status_code == 429
    assert chat(site, other_api_key).status_code == 200


def test_a_retried_run_with_the_same_idempotency_key_runs_once(site, team, api_key):
    first = run(site, api_key, TRIAGE, **{"Idempotency-Key": "order-42"})
    assert first.status_code == 200, first.text
    request_id = first.json()["request_id"]
    assert wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).exists())
    records_before = UsageRecord.objects.filter(team=team).count()
    second = run(site, api_key, TRIAGE, **{"Idempotency-Key": "order-42"})
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["x-switchboard-model"] == first.headers["x-switchboard-model"]
    assert UsageRecord.objects.filter(team=team).count() == records_before
    # What is kept for the replay cannot be read without the caller's key.
    [stored] = IdempotencyRecord.objects.values_list("sealed_response", flat=True)
    assert first.json()["output_text"]
    assert first.json()["output_text"] not in stored
    assert request_id not in stored


def test_the_same_idempotency_key_with_another_body_is_a_409(site, api_key):
    assert run(site, api_key, TRIAGE, **{"Idempotency-Key": "k-1"}).status_code == 200
    other = {"variables": {"message": "Something else", "channel": "chat"}}
    response = run(site, api_key, other, **{"Idempotency-Key": "k-1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_two_teams_may_use_the_same_idempotency_key(site, api_key, other_team, other_api_key):
    from prompts.seed import seed_prompts

    seed_prompts(team=other_team, author=None)
    a = run(site, api_key, TRIAGE, **{"Idempotency-Key": "shared"})
    b = run(site, other_api_key, TRIAGE, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 200
    assert a.json()["request_id"] != b.json()["request_id"]
    assert "Idempotent-Replayed" not in b.headers


def test_gateway_metrics_count_requests_spend_and_latency(site, api_key):
    assert chat(site, api_key).status_code == 200
    text = httpx.get(f"{site}/metrics", timeout=10).text
    assert re.search(r'switchboard_gateway_requests_total\{[^}]*surface="chat"[^}]*\} 1\.0', text)
    assert "switchboard_gateway_request_duration_seconds_bucket" in text
    assert re.search(r"switchboard_spend_usd_total\{[^}]*\} [0-9.e-]+", text)
    assert 'route="v1/chat/completions"' in text


def test_malformed_json_on_v1_is_a_400_in_openais_shape(site, api_key):
    response = httpx.post(
        f"{site}/v1/chat/completions",
        content=b'{"model": "auto", "messages": [',
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["type"] == "invalid_request_error"
    assert "Malformed JSON" in error["message"]


@pytest.fixture
def small_bodies(monkeypatch) -> None:
    monkeypatch.setenv("MAX_REQUEST_BYTES", "100000")


def test_the_server_refuses_oversized_bodies_declared_or_chunked(small_bodies, site, api_key):
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    declared = httpx.post(f"{site}/v1/chat/completions", content=b" " * 200_000, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks():
        for _ in range(50):
            yield b" " * 10_000

    chunked = httpx.post(
        f"{site}/api/v1/prompts/support-triage/run", content=chunks(), headers=headers
    )
    assert chunked.status_code == 413
    assert chunked.json()["error"]["details"] == {"max_bytes": 100000}
