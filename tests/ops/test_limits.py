"""Size bounds on the identifiers and labels a request carries (core.limits): a name longer
than any stored one is refused at the edge with a 400 naming the field, on /v1, the REST run
and render endpoints and the jobs API, and is never looked up nor cached."""

from __future__ import annotations

import httpx
import openai
import pytest

from core import hot
from core.limits import LABEL_MAX, METADATA_VALUE_MAX, SLUG_MAX

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "x" * 200_000


def _post(site: str, key: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{site}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert len(response.content) < 2000, "the refusal echoes the oversized value"
    assert field in response.text


def test_an_oversized_label_is_refused_naming_it_on_every_surface(site, api_key):
    run = _post(
        site, api_key, "/api/v1/prompts/support-triage/run", {"label": HUGE, "variables": {}}
    )
    _names(run, "label")
    assert run.json()["error"]["code"] == "bad_request"
    render = _post(site, api_key, "/api/v1/prompts/support-triage/render", {"label": HUGE})
    _names(render, "label")
    job = _post(
        site,
        api_key,
        "/api/v1/jobs",
        {"prompt": "support-triage", "label": HUGE, "inputs": [{"message": "hi"}]},
    )
    _names(job, "label")

    sdk = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="auto", prompt={"id": "support-triage", "version": HUGE})
    assert refused.value.body["param"] == "prompt.version"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="auto", prompt={"id": "s" * (SLUG_MAX + 1)})
    assert refused.value.body["param"] == "prompt.id"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=HUGE, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.body["param"] == "model"


def test_oversized_metadata_is_refused_naming_the_key(site, api_key):
    sdk = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)
    long_value = {"task_tag": "y" * (METADATA_VALUE_MAX + 1)}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Hi"}], metadata=long_value
        )
    assert refused.value.body["param"] == "metadata.task_tag"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="auto", input="Hi", metadata={f"k{i}": "v" for i in range(17)})
    assert refused.value.body["param"] == "metadata"
    run = _post(
        site,
        api_key,
        "/api/v1/prompts/support-triage/run",
        {"variables": {}, "metadata": {"z" * 65: "v"}},
    )
    _names(run, "metadata key")
    # at the bound exactly: accepted
    answered = sdk.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Hi"}],
        metadata={"task_tag": "y" * METADATA_VALUE_MAX},
    )
    assert answered.choices[0].message.content


async def test_an_oversized_label_is_never_looked_up_nor_cached(async_client, team, api_key):
    label = "l" * (LABEL_MAX + 1)
    response = await async_client.post(
        "/api/v1/prompts/support-triage/run",
        {"label": label, "variables": {}},
        content_type="application/json",
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"label": f"At most {LABEL_MAX} characters."}
    # nothing in the process's hot cache holds the oversized name
    assert not any(label in map(str, key) for key in hot._state.entries if isinstance(key, tuple))
