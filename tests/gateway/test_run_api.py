"""POST /api/v1/prompts/{slug}/run and POST /api/v1/route, plus routing behaviour that shows
through them: task tags, the classifier and its cache, escalation on invalid JSON."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from prompts.models import Label, Prompt, PromptVersion
from prompts.rendering import render_version
from prompts.services import label_move, prompt_create, prompt_version_create
from routing.classifier import CLASSIFIER_SLUG, PLATFORM_TEAM_SLUG, REASON_NOT_KEPT
from routing.models import Model, Provider, Tier, TierModel
from spend.models import Purpose, UsageRecord
from tests.conftest import wait_for_budgets
from tests.gateway.conftest import usage_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TRIAGE = {"message": "The app crashes when I open my invoices.", "channel": "chat"}


def run(site: str, key: str, slug: str, **body) -> httpx.Response:
    return httpx.post(
        f"{site}/api/v1/prompts/{slug}/run",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=30,
    )


def test_run_answers_with_output_model_tier_route_usage_cost_and_request_id(site, api_key):
    response = run(site, api_key, "support-triage", variables=TRIAGE)

    assert response.status_code == 200
    body = response.json()
    assert set(body["output"]) == {"category", "urgency"}
    assert json.loads(body["output_text"]) == body["output"]
    assert body["model"] == "gpt-5.4-mini"
    assert body["tier"] == "mini"
    assert body["route"]["rule"] == "Routine tasks to mini"
    assert "tier mini" in body["route"]["reason"]
    assert set(body["usage"]) == {
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
    }
    assert body["prompt"] == {"slug": "support-triage", "version": 1}
    assert body["budget"] is None
    assert body["attempts"] == 1
    assert isinstance(body["latency_ms"], int)
    [record] = usage_for(body["request_id"])
    assert str(record.cost_usd) == body["cost_usd"]
    assert record.input_tokens == body["usage"]["input_tokens"]
    assert response.headers["x-request-id"] == body["request_id"]
    assert response.headers["x-switchboard-cost-usd"] == body["cost_usd"]


def test_routing_follows_the_prompts_task_tag(site, api_key):
    summary = run(site, api_key, "meeting-summary", variables={"transcript": "We agreed."}).json()
    analysis = run(site, api_key, "deep-analysis", variables={"question": "Should we?"}).json()

    assert (summary["tier"], summary["route"]["rule"]) == ("mini", "Routine tasks to mini")
    assert (analysis["tier"], analysis["route"]["rule"]) == ("reasoning", "Reasoning tasks")
    assert analysis["model"] == "gpt-5.5"
    assert analysis["usage"]["reasoning_tokens"] > 0  # the prompt asks for high effort


def test_run_picks_a_version_by_label_or_number_and_a_tier_on_request(site, api_key, team):
    prompt = Prompt.objects.get(team=team, slug="support-triage")
    v2 = prompt_version_create(
        prompt=prompt,
        author=None,
        system_template="Triage, tersely. JSON only.",
        user_template="{{ message }} ({{ channel }})",
        variables=PromptVersion.objects.get(prompt=prompt, number=1).variables,
        response_schema=PromptVersion.objects.get(prompt=prompt, number=1).response_schema,
    )
    label_move(prompt=prompt, label="staging", version=v2, actor=None)

    staging = run(site, api_key, "support-triage", variables=TRIAGE, label="staging").json()
    first = run(site, api_key, "support-triage", variables=TRIAGE, version=1).json()
    flagship = run(site, api_key, "support-triage", variables=TRIAGE, tier="flagship").json()
    missing = run(site, api_key, "support-triage", variables=TRIAGE, version=9)

    assert staging["prompt"]["version"] == 2
    assert first["prompt"]["version"] == 1
    assert (flagship["tier"], flagship["route"]["rule"]) == ("flagship", "pinned")
    assert missing.status_code == 404


def test_run_streams_start_deltas_and_done_events(site, api_key):
    with httpx.stream(
        "POST",
        f"{site}/api/v1/prompts/meeting-summary/run",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"variables": {"transcript": "Alice will ship the report."}, "stream": True},
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line]

    events = [(lines[i][7:], json.loads(lines[i + 1][6:])) for i in range(0, len(lines), 2)]
    names = [name for name, _ in events]
    assert names[0] == "start"
    assert names[-1] == "done"
    assert set(names[1:-1]) == {"delta"}
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == done["output"]
    [record] = usage_for(done["request_id"])
    assert record.stream
    assert str(record.cost_usd) == done["cost_usd"]


def test_route_explains_a_decision_without_calling_any_model(site, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}

    by_prompt = httpx.post(
        f"{site}/api/v1/route",
        headers=headers,
        json={"prompt": "support-triage", "variables": TRIAGE},
    ).json()
    by_messages = httpx.post(
        f"{site}/api/v1/route",
        headers=headers,
        json={"model": "auto", "messages": [{"role": "user", "content": "Write a poem"}]},
    ).json()

    assert by_prompt["tier"] == "mini"
    assert by_prompt["model"] == "gpt-5.4-mini"
    assert by_prompt["candidates"] == ["gpt-5.4-mini", "gpt-6.1-terra"]
    assert by_prompt["escalation_tiers"] == ["flagship", "reasoning"]
    assert by_prompt["escalate_on_failed_check"] is True
    assert by_prompt["features"]["task_tag"] == "classification"
    assert float(by_prompt["worst_case_cost_usd"]) > 0
    assert by_messages["route"]["rule"] == "Everything else: classifier"
    assert by_messages["tier"] is None
    assert by_messages["classifier"] == {
        "cached": False,
        "tier": None,
        "reason": "not run by explain",
    }
    time.sleep(0.3)
    assert not UsageRecord.objects.exists()


def classifier_answer(simulator_url: str, text: str) -> str:
    """The tier the classifier prompt answers for `text`, asked of the simulator directly."""
    from gateway.calls import prompt_body

    version = PromptVersion.objects.select_related("prompt").get(
        prompt__team__slug=PLATFORM_TEAM_SLUG,
        prompt__slug=CLASSIFIER_SLUG,
        labels__name=Label.PRODUCTION,
    )
    body = prompt_body(version, render_version(version, {"text": text}))
    client = openai.OpenAI(base_url=simulator_url, api_key="x", max_retries=0)
    return json.loads(client.responses.create(model="gpt-5.4-nano", **body).output_text)["tier"]


def test_the_classifier_picks_the_tier_and_its_answer_is_cached(sdk, simulator_url, site, api_key):
    text = "Draft a launch plan for our new billing dashboard, with risks and owners."
    messages = [{"role": "user", "content": text}]

    first = sdk.chat.completions.with_raw_response.create(model="auto", messages=messages)
    second = sdk.chat.completions.with_raw_response.create(model="auto", messages=messages)

    expected = classifier_answer(simulator_url, text)
    assert first.headers["x-switchboard-tier"] == expected
    assert second.headers["x-switchboard-tier"] == expected
    assert f"classifier chose {expected}" in first.headers["x-switchboard-route"]
    assert "[cached]" in second.headers["x-switchboard-route"]
    classified, answered = usage_for(first.headers["x-request-id"], 2)
    assert classified.purpose == Purpose.CLASSIFIER
    assert classified.model_name == "gpt-5.4-nano"
    assert classified.prompt_version.prompt.slug == CLASSIFIER_SLUG
    assert classified.cost_usd > 0
    assert answered.purpose == Purpose.GATEWAY
    assert answered.tier_name == expected
    assert [r.purpose for r in usage_for(second.headers["x-request-id"], 1)] == [Purpose.GATEWAY]
    explained = httpx.post(
        f"{site}/api/v1/route",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "auto", "messages": messages},
    ).json()
    assert explained["classifier"]["cached"] is True
    assert explained["tier"] == expected


def test_the_classifiers_cache_tells_no_team_what_another_team_sent(
    sdk, site, api_key, other_api_key
):
    text = "Summarise our confidential merger memo for the board, with the price."
    messages = [{"role": "user", "content": text}]
    sdk.chat.completions.create(model="auto", messages=messages)
    assert (
        "[cached]"
        in sdk.chat.completions.with_raw_response.create(model="auto", messages=messages).headers[
            "x-switchboard-route"
        ]
    )

    theirs = openai.OpenAI(base_url=f"{site}/v1", api_key=other_api_key, max_retries=0)
    explained = httpx.post(
        f"{site}/api/v1/route",
        headers={"Authorization": f"Bearer {other_api_key}"},
        json={"model": "auto", "messages": messages},
    ).json()
    assert explained["classifier"]["cached"] is False
    answered = theirs.chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert "[cached]" not in answered.headers["x-switchboard-route"]
    # team B's request ran the classifier itself, on team B's money
    purposes = [r.purpose for r in usage_for(answered.headers["x-request-id"], 2)]
    assert purposes == [Purpose.CLASSIFIER, Purpose.GATEWAY]


def test_a_team_that_keeps_no_content_keeps_only_the_classifier_s_tier(sdk, site, team):
    """The classifier's reason is a sentence about the text: not cached, logged or answered."""
    team.no_content = True
    team.save()
    wait_for_budgets()
    messages = [{"role": "user", "content": "Summarise the merger memo for the board."}]

    first = sdk.chat.completions.with_raw_response.create(model="auto", messages=messages)
    second = sdk.chat.completions.with_raw_response.create(model="auto", messages=messages)

    assert REASON_NOT_KEPT in first.headers["x-switchboard-route"]
    assert f"{REASON_NOT_KEPT} [cached]" in second.headers["x-switchboard-route"]
    classified, answered = usage_for(first.headers["x-request-id"], 2)
    assert classified.purpose == Purpose.CLASSIFIER
    assert REASON_NOT_KEPT in answered.route_reason
    [again] = usage_for(second.headers["x-request-id"], 1)
    assert REASON_NOT_KEPT in again.route_reason


BUCKET_SCHEMA = {
    "type": "object",
    # The simulator ignores multipleOf, so about half of its answers fail this schema.
    "properties": {"bucket": {"type": "integer", "minimum": 0, "maximum": 9, "multipleOf": 2}},
    "required": ["bucket"],
    "additionalProperties": False,
}


@pytest.fixture
def bucket_prompt(prompts, team) -> Prompt:
    prompt = prompt_create(
        team=team, slug="ticket-bucket", name="Bucket", task_tag="classification", actor=None
    )
    version = prompt_version_create(
        prompt=prompt,
        author=None,
        user_template="Bucket this ticket: {{ text }}",
        variables=[{"name": "text", "type": "string", "required": True}],
        response_schema=BUCKET_SCHEMA,
    )
    label_move(prompt=prompt, label=Label.PRODUCTION, version=version, actor=None)
    return prompt


def test_an_answer_failing_the_schema_escalates_to_the_next_tier(bucket_prompt, site, api_key):
    escalated = None
    for index in range(30):
        body = run(site, api_key, "ticket-bucket", variables={"text": f"ticket {index}"}).json()
        if body["tier"] == "flagship":
            escalated = body
            break

    assert escalated is not None, "no input escalated from mini to flagship"
    assert escalated["output"]["bucket"] % 2 == 0
    assert (
        "escalated to flagship: gpt-5.4-mini output does not match" in escalated["route"]["reason"]
    )
    failed, answered = usage_for(escalated["request_id"], 2)
    assert (failed.model_name, failed.status, failed.error_code) == (
        "gpt-5.4-mini",
        UsageRecord.Status.ERROR,
        "failed_check",
    )
    assert failed.cost_usd > 0  # the rejected answer was still billed
    assert (answered.model_name, answered.status) == ("gpt-5.4", UsageRecord.Status.SUCCESS)
    assert escalated["attempts"] == 2
    assert escalated["cost_usd"] == str(failed.cost_usd + answered.cost_usd)
    pinned = run(
        site, api_key, "ticket-bucket", variables={"text": f"ticket {index}"}, tier="mini"
    ).json()
    assert pinned["output"]["bucket"] % 2 == 1  # a pinned tier is not escalated


@pytest.fixture
def paced_model(catalog) -> Model:
    """A model on a simulator that takes its time (real latency), for a client to leave."""
    from simulator.testing import SimulatorServer

    server = SimulatorServer(latency_scale=1.0).start()
    provider = Provider.objects.create(name="paced", base_url=server.url)
    model = Model.objects.create(
        provider=provider, name="paced-mini", tier=Tier.objects.get(name="mini")
    )
    from routing.models import Price

    for price in Price.objects.filter(model__name="gpt-5.4-mini"):
        price.pk, price.model = None, model
        price.save()
    TierModel.objects.create(tier=Tier.objects.get(name="mini"), model=model, position=9)
    yield model
    server.stop()


def test_a_client_that_leaves_mid_stream_still_leaves_a_usage_record(paced_model, site, api_key):
    long_input = "Summarize this status report in detail. " * 60
    with httpx.stream(
        "POST",
        f"{site}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={
            "model": "paced-mini",
            "messages": [{"role": "user", "content": long_input}],
            "stream": True,
        },
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if '"content"' in line:
                break  # one delta in, then hang up

    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first())
    assert record is not None
    assert record.status == UsageRecord.Status.CANCELLED
    assert record.error_code == "client_disconnected"
    assert record.input_tokens > 0
    assert record.cost_usd > 0
