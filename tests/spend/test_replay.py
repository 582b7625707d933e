from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from prompts.models import Prompt
from routing.models import Model, Policy, Rule, Tier
from spend.models import ReplayRun, UsageRecord
from spend.pricing import cost_usd, price_at
from spend.replay import replay_compute, replay_run_execute

NOW = timezone.now()


def at(hours_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours_ago)


def priced(record: UsageRecord, model: str) -> Decimal:
    return cost_usd(
        price=price_at(Model.objects.get(name=model), record.created_at),
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        cache_write_tokens=record.cache_write_tokens,
        output_tokens=record.output_tokens,
        service_tier=record.service_tier,
    )


@pytest.fixture
def proposal(prices) -> Policy:
    """Classification to nano while the input is small; everything else to mini."""
    policy = Policy.objects.create(name="cheaper")
    Rule.objects.create(
        policy=policy,
        position=0,
        name="Small classification to nano",
        task_tags=["classification"],
        max_input_tokens=2000,
        target_tier=Tier.objects.get(name="nano"),
    )
    Rule.objects.create(
        policy=policy, position=1, name="Rest to mini", target_tier=Tier.objects.get(name="mini")
    )
    return policy


@pytest.fixture
def ledger(make_usage, team, other_team):
    def usage(**kwargs):
        return make_usage(team=team, model="gpt-5.4", tier="flagship", **kwargs)

    records = {
        "small": usage(at=at(30), prompt="triage", input_tokens=1500, output_tokens=50),
        "large": usage(at=at(20), prompt="triage", input_tokens=2500, output_tokens=50),
        "edge": usage(at=at(10), prompt="triage", input_tokens=2000, output_tokens=10),
        "long": usage(at=at(5), prompt="summary", input_tokens=300_000, output_tokens=900),
        "pinned": usage(at=at(4), prompt="triage", input_tokens=1000, rule="pinned"),
        "playground": usage(at=at(3), prompt="triage", purpose="playground"),
        "old": usage(at=at(24 * 9), prompt="triage"),
        "other": make_usage(team=other_team, at=at(2), model="gpt-5.4", tier="flagship"),
    }
    Prompt.objects.filter(slug="triage").update(task_tag="classification")
    return records


def test_replay_prices_each_request_at_the_model_the_proposed_policy_picks(ledger, proposal, team):
    result = replay_compute(
        policy=proposal, team_ids=[team.id], start=NOW - dt.timedelta(days=7), end=NOW
    )

    small, large, edge, long = (ledger[k] for k in ("small", "large", "edge", "long"))
    kept = ledger["pinned"].cost_usd + ledger["playground"].cost_usd
    expected = (
        priced(small, "gpt-5.4-nano")  # classification, <= 2000 tokens
        + priced(edge, "gpt-5.4-nano")  # exactly 2000: still small
        + priced(large, "gpt-5.4-mini")  # too large for the nano rule
        + priced(long, "gpt-5.4-mini")  # long context priced per record
        + kept
    )
    actual = sum((r.cost_usd for k, r in ledger.items() if k not in ("old", "other")), Decimal(0))
    assert Decimal(result["projected_usd"]) == expected
    assert Decimal(result["actual_usd"]) == actual
    assert Decimal(result["difference_usd"]) == expected - actual < 0
    assert result["replayed"] == 5
    assert result["kept_as_logged"] == 2  # the pinned request and the playground call
    moves = {(m["to_model"], m["requests"]) for m in result["moves"]}
    assert ("gpt-5.4-nano", 2) in moves
    assert ("gpt-5.4", 1) in moves  # the pinned one stays


def test_a_classify_rule_keeps_the_tier_the_request_ran_on(make_usage, team, prices):
    policy = Policy.objects.create(name="classify everything")
    Rule.objects.create(policy=policy, position=0, name="Ask", action=Rule.Action.CLASSIFY)
    record = make_usage(team=team, at=at(1), model="gpt-5.4-mini", tier="mini", prompt="triage")

    result = replay_compute(policy=policy, team_ids=[team.id], start=at(2), end=NOW)

    assert result["classifier_assumed"] == 1
    assert Decimal(result["projected_usd"]) == record.cost_usd


def test_the_whatif_page_queues_a_run_and_shows_projected_against_actual(
    client, alice, ledger, proposal, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("spend:whatif"), {"policy": proposal.id, "days": 7})
    run = ReplayRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("spend:whatif-run", args=[run.id])
    assert run.status == "done"

    html = client.get(response["Location"]).content.decode()
    assert 'data-status="done"' in html
    assert "gpt-5.4-nano" in html
    assert Decimal(run.result["projected_usd"]) < Decimal(run.result["actual_usd"])
    assert 'hx-trigger="every 1s"' not in html  # polling stops once done


def test_a_running_replay_polls_and_an_outsider_cannot_see_it(
    client, alice, charlie, proposal, team
):
    run = ReplayRun.objects.create(policy=proposal, days=7, team_ids=[team.id])
    client.force_login(alice)
    html = client.get(reverse("spend:whatif-run", args=[run.id]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in html.content.decode()

    client.force_login(charlie)
    assert client.get(reverse("spend:whatif-run", args=[run.id])).status_code == 404
    assert (
        client.post(
            reverse("spend:whatif"), {"policy": proposal.id, "days": 7, "team": team.slug}
        ).status_code
        == 404
    )


def test_bad_replay_input_is_a_400(client, alice, proposal):
    client.force_login(alice)
    response = client.post(reverse("spend:whatif"), {"policy": proposal.id, "days": 3})
    assert response.status_code == 400
    assert not ReplayRun.objects.exists()


def test_a_failed_replay_records_why(proposal, team, monkeypatch):
    run = ReplayRun.objects.create(policy=proposal, days=7, team_ids=[team.id])

    def boom(**kwargs):
        raise RuntimeError("catalog unavailable")

    monkeypatch.setattr("spend.replay.replay_compute", boom)
    done = replay_run_execute(run_id=run.id)
    assert done.status == "failed"
    assert "catalog unavailable" in done.error
    assert replay_run_execute(run_id=run.id).status == "failed"  # not run twice
