"""Shadow sampling: the sample rate, the flagship re-run, budgets, content retention, and its
isolation from the production response."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from playground import services
from playground.models import ShadowPair
from playground.runner import gateway_cleanup
from spend.models import Budget, Purpose, UsageRecord
from tests.conftest import start_worker, stop_worker
from tests.playground.conftest import WORKER_ENV, make_triage, wait_for

BODY = {
    "input": [{"role": "user", "content": "Channel: email\nI was charged twice"}],
    "instructions": "You triage support messages. Answer with JSON only.",
    "max_output_tokens": 200,
}


def _run(pair_id: int) -> ShadowPair:
    """What the Celery task does: run the pair, then release this event loop's resources."""

    async def run() -> ShadowPair:
        try:
            return await services.shadow_pair_run(pair_id=pair_id)
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()


def _offer(version, tier: str = "mini", **kwargs):
    return services.shadow_maybe_enqueue(
        team_id=version.prompt.team_id,
        prompt_version_id=version.pk,
        tier_name=tier,
        request_body=BODY,
        output='{"category": "billing", "urgency": "low"}',
        model_name="gpt-5.4-mini",
        cost_usd=Decimal("0.0001"),
        request_id="req_prod",
        **kwargs,
    )


def test_the_sample_rate_decides_which_requests_are_shadowed(triage, tiers):
    triage.prompt.shadow_sample_rate = Decimal("0.25")
    triage.prompt.save()
    draws = random.Random(7)
    expected = random.Random(7)
    sampled = [_offer(triage, rng=draws.random) is not None for _ in range(400)]
    assert sampled == [expected.random() < 0.25 for _ in range(400)]
    assert 70 < sum(sampled) < 130
    assert ShadowPair.objects.count() == sum(sampled)


def test_nothing_is_shadowed_at_rate_zero_on_the_flagship_or_for_another_team(
    triage, tiers, other_team
):
    always = lambda: 0.0  # noqa: E731
    assert _offer(triage, rng=always) is None  # rate 0: not opted in
    triage.prompt.shadow_sample_rate = Decimal("1")
    triage.prompt.save()
    assert _offer(triage, tier="flagship", rng=always) is None
    assert _offer(triage, tier="reasoning", rng=always) is None
    assert (
        services.shadow_maybe_enqueue(
            team_id=other_team.pk,
            prompt_version_id=triage.pk,
            tier_name="mini",
            request_body=BODY,
            output="x",
        )
        is None
    )
    assert not ShadowPair.objects.exists()
    assert _offer(triage, tier="nano", rng=always) is not None


def test_a_broken_offer_never_raises(triage, tiers):
    triage.prompt.shadow_sample_rate = Decimal("1")
    triage.prompt.save()

    def broken() -> float:
        raise RuntimeError("boom")

    assert _offer(triage, rng=broken) is None


@pytest.mark.django_db(transaction=True)
def test_a_pair_runs_on_the_flagship_and_keeps_content_only_when_the_team_does(
    team, alice, catalog
):
    version = make_triage(team, alice)
    version.prompt.shadow_sample_rate = Decimal("1")
    version.prompt.save()
    forgotten = ShadowPair.objects.get(pk=_offer(version))
    pair = _run(forgotten.pk)
    assert pair.status == ShadowPair.Status.DONE
    assert (pair.shadow_tier, pair.shadow_model) == ("flagship", "gpt-5.4")
    assert pair.agree is not None
    assert (pair.request_body, pair.production_output, pair.shadow_output) == (None, "", "")
    record = UsageRecord.objects.get(pk=pair.shadow_usage_record_id)
    assert record.purpose == Purpose.SHADOW
    assert (record.request_body, record.response_body) == (None, None)
    assert record.tier_name == "flagship"
    assert pair.shadow_cost_usd == record.cost_usd > 0

    team.store_content = True
    team.save()
    kept = _run(_offer(version))
    assert kept.content_retained
    assert kept.shadow_output
    assert kept.request_body == BODY
    assert UsageRecord.objects.get(pk=kept.shadow_usage_record_id).response_body
    # content is purged after the team's retention period
    ShadowPair.objects.filter(pk=kept.pk).update(
        created_at=timezone.now() - dt.timedelta(days=team.retention_days + 1)
    )
    assert services.playground_content_purge()["shadow_pairs"] == 1
    kept.refresh_from_db()
    assert (kept.request_body, kept.shadow_output, kept.content_retained) == (None, "", False)
    assert kept.agree is not None  # the figures stay


@pytest.mark.django_db(transaction=True)
def test_a_shadow_run_stops_at_the_budgets_soft_threshold(team, alice, catalog):
    version = make_triage(team, alice)
    version.prompt.shadow_sample_rate = Decimal("1")
    version.prompt.save()
    Budget.objects.create(
        team=team,
        limit_usd=Decimal("10"),
        spent_usd=Decimal("8.5"),
        soft_threshold=Decimal("0.8"),
        period_start=timezone.now(),
    )
    pair = _run(_offer(version))
    assert pair.status == ShadowPair.Status.SKIPPED
    assert "soft threshold" in pair.skip_reason
    assert not UsageRecord.objects.filter(purpose=Purpose.SHADOW).exists()


@pytest.mark.django_db(transaction=True)
def test_production_answers_are_unchanged_and_not_delayed_by_shadow_sampling(
    live_site, team, alice, api_key, catalog
):
    version = make_triage(team, alice)
    prompt = version.prompt
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"variables": {"message": "I was charged twice"}, "tier": "mini"}
    url = f"{live_site}/api/v1/prompts/triage/run"

    # The server caches a resolved version with its prompt (so its sample rate) per label or
    # number: the baseline names the version by number, the shadowed requests by label.
    before = httpx.post(url, json={**body, "version": 1}, headers=headers, timeout=30)
    assert before.status_code == 200
    prompt.shadow_sample_rate = Decimal("1")
    prompt.save()
    after = httpx.post(url, json=body, headers=headers, timeout=30)
    stream = httpx.post(url, json={**body, "stream": True}, headers=headers, timeout=30)
    assert after.status_code == 200
    assert stream.status_code == 200
    assert "event: done" in stream.text
    # the same answer, the same shape, the same production cost: the shadow changed nothing
    first, second = before.json(), after.json()
    assert second["output"] == first["output"]
    assert second["model"] == first["model"] == "gpt-5.4-mini"
    assert second["cost_usd"] == first["cost_usd"]
    assert set(second) == set(first)
    # no worker yet: the answers came back while their flagship re-runs are still queued
    wait_for(lambda: ShadowPair.objects.count() == 2, timeout=10, what="the pairs")
    assert set(ShadowPair.objects.values_list("status", flat=True)) == {"pending"}
    assert not UsageRecord.objects.filter(purpose=Purpose.SHADOW).exists()
    worker = start_worker(**WORKER_ENV)
    try:
        wait_for(
            lambda: ShadowPair.objects.filter(status="done").count() == 2,
            timeout=60,
            what="the shadow runs",
        )
    finally:
        stop_worker(worker)
    pairs = list(ShadowPair.objects.all())
    production = UsageRecord.objects.filter(purpose=Purpose.GATEWAY)
    assert production.count() == 3
    shadows = UsageRecord.objects.filter(purpose=Purpose.SHADOW)
    assert shadows.count() == 2
    for pair in pairs:
        assert pair.production_tier == "mini"
        assert pair.shadow_tier == "flagship"
        assert pair.production_usage_record.purpose == Purpose.GATEWAY
        assert pair.agree is not None
        assert pair.request_body is None  # the team stores no content: figures only


def test_an_editor_sets_the_sample_rate_and_a_member_cannot(client, alice, bob, triage, tiers):
    url = f"/playground/shadow/{triage.prompt.pk}/rate"
    client.force_login(bob)
    assert client.post(url, {"rate": "50"}).status_code == 403
    client.force_login(alice)
    client.post(url, {"rate": "2.5"})
    triage.prompt.refresh_from_db()
    assert triage.prompt.shadow_sample_rate == Decimal("0.025")
    assert "2.5%" in client.get("/playground/shadow/").content.decode()
    from core.models import AuditEvent

    event = AuditEvent.objects.get(action="prompt.shadow_rate")
    assert (event.actor, event.after) == (alice, {"shadow_sample_rate": "0.025"})
    client.post(url, {"rate": "150"})
    triage.prompt.refresh_from_db()
    assert triage.prompt.shadow_sample_rate == Decimal("0.025")
