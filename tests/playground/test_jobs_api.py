"""/api/v1/jobs without a worker: submission, idempotency, validation, access, cancel."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.models import Job, JobItem

URL = "/api/v1/jobs"


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def body(triage) -> dict:
    return {
        "prompt": "triage",
        "inputs": [{"message": "refund please"}, {"message": "app crashes", "channel": "chat"}],
        "tier": "mini",
    }


def test_a_job_is_accepted_with_one_item_per_input(api, body, tiers):
    response = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 202
    data = response.json()
    assert data["status"] == "queued"
    assert data["progress"] == {"total": 2, "done": 0, "failed": 0, "cancelled": 0, "percent": 0}
    assert response["Location"] == f"/api/v1/jobs/{data['id']}"
    job = Job.objects.get(pk=data["id"])
    assert job.columns == [
        {"tier": "mini", "model": "", "temperature": None, "reasoning_effort": ""}
    ]
    assert list(job.items.values_list("input", flat=True)) == [
        {"variables": {"message": "refund please"}},
        {"variables": {"message": "app crashes", "channel": "chat"}},
    ]


def test_the_same_key_and_body_give_the_same_job_and_another_body_is_409(api, body, tiers):
    first = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    again = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    changed = api.post(
        URL, {**body, "inputs": body["inputs"][:1]}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert Job.objects.count() == 1
    assert JobItem.objects.count() == 2
    # without a key, each submission is a new job
    api.post(URL, body, format="json")
    api.post(URL, body, format="json")
    assert Job.objects.count() == 3


def test_bad_variables_are_422_naming_each_input_and_nothing_is_stored(api, body, tiers):
    body["inputs"] = [{"message": "fine"}, {"channel": "fax"}, "not an object"]
    response = api.post(URL, body, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_variables"
    assert [d["index"] for d in error["details"]] == [1, 2]
    assert "message" in error["details"][0]["errors"]
    assert "channel" in error["details"][0]["errors"]
    assert not Job.objects.exists()


def test_raw_inputs_need_text_or_messages(api, tiers):
    ok = api.post(
        URL,
        {"inputs": ["hello", [{"role": "user", "content": "hi"}]], "model": "gpt-5.4-nano"},
        format="json",
    )
    assert ok.status_code == 202
    bad = api.post(URL, {"inputs": ["", 3]}, format="json")
    assert bad.status_code == 400
    unknown = api.post(URL, {"inputs": ["hi"], "tier": "giant"}, format="json")
    assert unknown.status_code == 400
    too_many = api.post(URL, {"inputs": ["hi"], "tier": "mini", "model": "gpt-5.4"}, format="json")
    assert too_many.status_code == 400


def test_a_job_over_the_item_limit_is_413(api, settings, tiers):
    settings.PLAYGROUND_JOB_MAX_ITEMS = 2
    response = api.post(URL, {"inputs": ["a", "b", "c"]}, format="json")
    assert response.status_code == 413, response.json()


def test_an_unknown_prompt_is_404_and_no_key_is_401(api, tiers):
    assert api.post(URL, {"prompt": "nope", "inputs": [{}]}, format="json").status_code == 404
    assert APIClient().post(URL, {"inputs": ["hi"]}, format="json").status_code == 401


def test_another_teams_key_cannot_see_or_cancel_the_job(api, body, other_api_key, tiers):
    job_id = api.post(URL, body, format="json").json()["id"]
    outsider = APIClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {other_api_key}")
    assert outsider.get(f"{URL}/{job_id}").status_code == 404
    assert outsider.post(f"{URL}/{job_id}/cancel").status_code == 404
    assert Job.objects.get(pk=job_id).status == "queued"
    # the same idempotency key in another team is another job
    other = outsider.post(URL, {"inputs": ["hi"]}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    mine = api.post(URL, {"inputs": ["hi"]}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert other.json()["id"] != mine.json()["id"]


def test_a_queued_job_cancels_at_once_and_lists_its_items(api, body, tiers):
    job_id = api.post(URL, body, format="json").json()["id"]
    response = api.post(f"{URL}/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["progress"]["cancelled"] == 2
    detail = api.get(f"{URL}/{job_id}?limit=1").json()
    assert [item["status"] for item in detail["items"]] == ["cancelled"]
    assert detail["items_next_offset"] == 1
    assert api.get(f"{URL}/{job_id}?offset=1").json()["items"][0]["index"] == 1


def test_a_signed_in_member_submits_for_their_team(client, bob, body, tiers):
    client.force_login(bob)
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.created_by == bob
    assert job.api_key is None


def test_a_malformed_or_unknown_job_id_is_a_json_404(api, tiers):
    for path in ("abc", "99999", "1,2", "\uff11"):  # the last: a full-width digit one
        response = api.get(f"{URL}/{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert api.post(f"{URL}/abc/cancel").status_code == 404


def test_a_job_is_submitted_as_json_only(api, tiers):
    response = api.post(URL, {"inputs": "hello"}, format="multipart")
    assert response.status_code == 415


def test_a_deadline_of_24h_is_kept_and_any_other_deadline_is_400_with_nothing_stored(
    api, body, tiers
):
    for bad in ("12h", "1d", 24, "now", {"hours": 24}):
        response = api.post(URL, {**body, "deadline": bad}, format="json")
        assert response.status_code == 400, bad
        error = response.json()["error"]
        assert error["code"] == "bad_request"
        assert error["message"].startswith('deadline must be "24h"')
        assert repr(bad) in error["message"]
    assert not Job.objects.exists()
    assert not JobItem.objects.exists()

    waiting = api.post(URL, {**body, "deadline": "24h"}, format="json")
    assert waiting.status_code == 202
    assert waiting.json()["deadline"] == "24h"
    assert Job.objects.get(pk=waiting.json()["id"]).deadline == "24h"
    now = api.post(URL, {**body, "deadline": None}, format="json")
    assert now.status_code == 202
    assert now.json()["deadline"] is None
    assert Job.objects.get(pk=now.json()["id"]).deadline == ""


def test_the_schema_documents_the_deadline(client, tiers):
    schema = client.get("/api/schema/?format=json").json()
    assert schema["components"]["schemas"]["DeadlineEnum"]["enum"] == ["24h"]
    for shape in ("PromptJobRequest", "RawJobRequest"):
        field = schema["components"]["schemas"][shape]["properties"]["deadline"]
        assert field["nullable"] is True
        assert "Batch API" in field["description"]
