"""Through the running site: what the request explorer lists for real gateway requests (a
fallback's attempts, budget and rate-limit refusals), and that refusals are not usage."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from accounts.models import ApiKey
from routing.models import Model, Tier, TierModel
from spend.budgets import budget_set
from spend.models import UsageRecord
from tests.gateway.conftest import add_model, usage_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Hello, who are you?"}]


def explorer(site: str, key: str, path: str = "", **params) -> httpx.Response:
    return httpx.get(
        f"{site}/api/v1/requests{path}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )


def sdk(site: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{site}/v1", api_key=key, max_retries=0, timeout=20)


def test_a_request_that_fell_back_is_one_row_with_both_attempts(site, api_key):
    failing = add_model("gpt-5.4-mini@500")
    tier = Tier.objects.create(name="flaky", rank=60)
    TierModel.objects.create(tier=tier, model=failing, position=0)
    TierModel.objects.create(tier=tier, model=Model.objects.get(name="gpt-6.1-terra"), position=1)
    raw = sdk(site, api_key).chat.completions.with_raw_response.create(
        model="tier:flaky", messages=HELLO
    )
    request_id = raw.headers["x-request-id"]
    usage_for(request_id, 2)

    listed = explorer(site, api_key, route="fell_back").json()["results"]
    detail = explorer(site, api_key, f"/{request_id}").json()

    assert [(r["request_id"], r["model"], r["fell_back"]) for r in listed] == [
        (request_id, "gpt-6.1-terra", True)
    ]
    assert listed[0]["attempts"] >= 2
    assert [a["model"] for a in detail["timeline"]][-2:] == ["gpt-5.4-mini@500", "gpt-6.1-terra"]
    assert detail["timeline"][0]["status"] == "error"
    assert "gpt-5.4-mini@500 (flaky): server_error" in detail["route"]["dropped"]


def test_a_budget_refusal_is_listed_with_its_reason_and_is_not_spend(site, team, api_key):
    budget = budget_set(team=team, limit_usd=Decimal("0.0001"))

    with pytest.raises(openai.APIStatusError) as error:
        sdk(site, api_key).chat.completions.create(
            model="tier:mini", messages=HELLO, max_tokens=500
        )
    request_id = error.value.response.headers["x-request-id"]
    usage_for(request_id)

    listed = explorer(site, api_key, status="refused").json()["results"]
    assert [(r["request_id"], r["status"], r["error_code"]) for r in listed] == [
        (request_id, "refused", "budget_exceeded")
    ]
    assert "budget" in listed[0]["error_message"]
    assert listed[0]["model"] == "gpt-5.4-mini"  # where the route would have sent it
    assert Decimal(listed[0]["cost_usd"]) == 0
    budget.refresh_from_db()
    assert budget.spent_usd == budget.reserved_usd == 0


def test_a_rate_limited_request_is_listed_as_refused(site, team, api_key):
    ApiKey.objects.filter(team=team).update(rate_limit_rpm=1)
    client = sdk(site, api_key)
    client.chat.completions.create(model="auto", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="auto", messages=HELLO)
    request_id = error.value.response.headers["x-request-id"]

    assert wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).exists())
    listed = explorer(site, api_key, status="refused").json()["results"]
    assert [(r["request_id"], r["error_code"]) for r in listed] == [(request_id, "rate_limited")]
    assert [a["kind"] for a in explorer(site, api_key, f"/{request_id}").json()["timeline"]] == [
        "refusal"
    ]
