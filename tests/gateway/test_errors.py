"""Bad keys, unknown prompts and models, invalid variables: clean errors on both surfaces.

`/v1` answers in OpenAI's shape (the SDK raises its usual classes); `/api` in ours."""

from __future__ import annotations

import httpx
import openai
import pytest

from accounts.services import api_key_create, api_key_revoke
from spend.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def v1(site: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{site}/v1", api_key=key, max_retries=0, timeout=20)


def test_an_unknown_key_gets_401_in_openai_shape(site):
    with pytest.raises(openai.AuthenticationError) as error:
        v1(site, "sb_" + "x" * 40).chat.completions.create(model="auto", messages=HELLO)

    assert error.value.status_code == 401
    assert error.value.body == {
        "message": "Invalid or revoked API key.",
        "type": "authentication_error",
        "code": "invalid_api_key",
        "param": None,
    }
    assert error.value.response.headers["x-request-id"].startswith("req_")


def test_a_missing_key_gets_401_on_both_surfaces(site):
    chat = httpx.post(f"{site}/v1/chat/completions", json={"model": "auto", "messages": HELLO})
    run = httpx.post(f"{site}/api/v1/prompts/support-triage/run", json={})
    models = httpx.get(f"{site}/v1/models")

    assert chat.status_code == run.status_code == models.status_code == 401
    assert chat.json()["error"]["type"] == "authentication_error"
    assert run.json()["error"]["code"] == "invalid_api_key"
    assert set(run.json()["error"]) == {"code", "message", "details"}


def test_a_revoked_key_gets_401(site, team):
    key, raw = api_key_create(team=team, name="old")
    api_key_revoke(api_key=key)

    with pytest.raises(openai.AuthenticationError):
        v1(site, raw).responses.create(model="auto", input="hello")
    response = httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        headers={"Authorization": f"Bearer {raw}"},
        json={"variables": {"message": "hi"}},
    )

    assert response.status_code == 401
    assert not UsageRecord.objects.exists()


def test_an_unknown_model_gets_400_model_not_found(sdk):
    with pytest.raises(openai.BadRequestError) as error:
        sdk.chat.completions.create(model="gpt-1-turbo", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as tier_error:
        sdk.chat.completions.create(model="tier:platinum", messages=HELLO)

    assert error.value.code == "model_not_found"
    assert error.value.param == "model"
    assert tier_error.value.code == "model_not_found"


def test_an_unknown_stored_prompt_gets_404(sdk, site, api_key):
    with pytest.raises(openai.NotFoundError) as error:
        sdk.responses.create(prompt={"id": "no-such-prompt", "variables": {}})
    response = httpx.post(
        f"{site}/api/v1/prompts/no-such-prompt/run",
        headers={"Authorization": f"Bearer {api_key}"},
        json={},
    )

    assert error.value.body["code"] == "not_found"
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_another_teams_prompt_is_not_found(site, other_api_key):
    response = httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        headers={"Authorization": f"Bearer {other_api_key}"},
        json={"variables": {"message": "hi"}},
    )

    assert response.status_code == 404


def test_invalid_variables_get_422_with_each_bad_field(sdk, site, api_key):
    with pytest.raises(openai.UnprocessableEntityError) as error:
        sdk.responses.create(
            prompt={"id": "support-triage", "variables": {"channel": "fax"}},
        )
    response = httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"variables": {"channel": "fax", "extra": 1}},
    )

    assert error.value.body["code"] == "invalid_variables"
    assert "message: This variable is required." in error.value.body["message"]
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert set(details) == {"message", "channel", "extra"}
    assert not UsageRecord.objects.exists()


def test_malformed_requests_get_400_without_an_upstream_call(site, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}

    not_json = httpx.post(f"{site}/v1/chat/completions", headers=headers, content=b"{oops")
    no_messages = httpx.post(f"{site}/v1/chat/completions", headers=headers, json={"model": "auto"})
    bad_stream = httpx.post(
        f"{site}/v1/responses", headers=headers, json={"input": "hi", "stream": "yes"}
    )
    bad_tier = httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        headers=headers,
        json={"variables": {"message": "hi"}, "tier": "platinum"},
    )

    assert [r.status_code for r in (not_json, no_messages, bad_stream, bad_tier)] == [400] * 4
    assert no_messages.json()["error"]["param"] == "messages"
    assert bad_stream.json()["error"]["param"] == "stream"
    assert bad_tier.json()["error"]["code"] == "model_not_found"
    assert not UsageRecord.objects.exists()
