"""Recommendation arithmetic, the evidence behind it, and turning it into a routing rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from core.errors import Forbidden
from core.models import AuditEvent
from playground import selectors, services
from playground.models import (
    Comparison,
    ComparisonColumn,
    Job,
    JobItem,
    RowVote,
    ShadowPair,
    Verdict,
    Vote,
)
from playground.recommendation import Case, recommend
from routing.models import Policy, Rule
from spend.models import Purpose, UsageRecord


def test_the_match_rate_and_the_monthly_savings_follow_from_the_cases():
    cases = [Case("batch", True, Decimal("0.001"), Decimal("0.004"))] * 138 + [
        Case("batch", False, Decimal("0.001"), Decimal("0.004"))
    ] * 12
    rec = recommend(
        cases,
        cheap_tier="mini",
        flagship_tier="flagship",
        flagship_spend_30d=Decimal("400"),
        min_cases=20,
        min_match_rate=Decimal("0.9"),
    )
    assert (rec.cases, rec.matches, rec.match_percent) == (150, 138, 92)
    assert rec.cost_ratio == Decimal("0.25")
    assert rec.monthly_savings == Decimal("300.00")
    assert rec.recommended
    # Wilson 95% lower bound of 138/150, by hand: (0.92 + 1.96²/300 - 1.96·sqrt(0.92·0.08/150
    # + 1.96²/90000)) / (1 + 1.96²/150) = 0.8875 / 1.0256 = 0.8654
    assert rec.lower_bound == pytest.approx(0.8654, abs=1e-4)
    assert rec.sentence == (
        "mini is at least as good as flagship on ≥ 86% of cases (95% lower bound, 150 cases; "
        "observed 92%) — routing this prompt to mini saves about $300.00 a month at the last "
        "30 days' volume."
    )


def test_too_few_cases_or_too_many_misses_is_not_a_recommendation():
    def rec(matches: int, misses: int):
        return recommend(
            [Case("vote", True)] * matches + [Case("vote", False)] * misses,
            cheap_tier="mini",
            flagship_tier="flagship",
            flagship_spend_30d=Decimal("10"),
            min_cases=20,
            min_match_rate=Decimal("0.9"),
        )

    assert not rec(19, 0).recommended
    assert rec(18, 2).recommended
    assert not rec(17, 3).recommended
    assert rec(17, 3).monthly_savings is None  # no priced case: no savings claimed
    assert "(95% lower bound, 20 cases; observed 85%)." in rec(17, 3).sentence


def _comparison(team, version, winner_tier: str | None, verdict: str, voter) -> None:
    comparison = Comparison.objects.create(team=team, prompt_version=version)
    columns = {}
    for position, (tier, cost) in enumerate([("mini", "0.001"), ("flagship", "0.004")]):
        columns[tier] = ComparisonColumn.objects.create(
            comparison=comparison,
            position=position,
            tier=tier,
            tier_used=tier,
            status="done",
            cost_usd=Decimal(cost),
        )
    Vote.objects.create(
        comparison=comparison,
        voter=voter,
        verdict=verdict,
        winner=columns[winner_tier] if winner_tier else None,
    )


def _batch(
    team, version, rows: list[tuple[str, str, bool | None, bool | None]], check: str = "exact"
) -> Job:
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        prompt_version=version,
        columns=[{"tier": "mini"}, {"tier": "flagship"}],
        status=Job.Status.DONE,
    )
    for index, (cheap_out, flag_out, cheap_pass, flag_pass) in enumerate(rows):
        for column, (tier, output, passed, cost) in enumerate(
            [("mini", cheap_out, cheap_pass, "0.002"), ("flagship", flag_out, flag_pass, "0.010")]
        ):
            JobItem.objects.create(
                job=job,
                row_index=index,
                column_index=column,
                status="done",
                tier_name=tier,
                output=output,
                passed=passed,
                checks={} if passed is None else {check: passed},
                cost_usd=Decimal(cost),
            )
    return job


@pytest.fixture
def evidence(team, alice, bob, triage, tiers):
    """Votes: mini better, tie, all bad (matches), flagship better (a miss).
    Batch without checks: 3 agreeing rows, 1 differing row, whose row vote says mini is better.
    Batch with a content check: mini fails where the flagship passes (a miss), both fail (a match).
    Batch with schema checks only: both valid but different (a miss), both valid and equal (a match).
    One shadow pair that agrees."""
    _comparison(team, triage, "mini", Verdict.WINNER, alice)
    _comparison(team, triage, None, Verdict.TIE, alice)
    _comparison(team, triage, None, Verdict.ALL_BAD, bob)
    _comparison(team, triage, "flagship", Verdict.WINNER, bob)
    job = _batch(
        team,
        triage,
        [
            ("a", "a", None, None),
            ('{"x":1}', '{"x": 1}', None, None),
            ("b", "B", None, None),
            ("short", "long", None, None),
        ],
    )
    RowVote.objects.create(
        job=job, row_index=3, voter=alice, verdict=Verdict.WINNER, winner_column=0
    )
    _batch(team, triage, [("x", "y", False, True), ("x", "y", False, False)])
    # schema checks alone: well-formed answers must also agree
    _batch(
        team, triage, [('{"a": 1}', '{"a": 2}', True, True), ("{}", "{ }", True, True)], "schema"
    )
    ShadowPair.objects.create(
        team=team,
        prompt=triage.prompt,
        prompt_version=triage,
        status="done",
        production_tier="mini",
        shadow_tier="flagship",
        agree=True,
        production_cost_usd=Decimal("0.001"),
        shadow_cost_usd=Decimal("0.003"),
    )
    now = timezone.now()
    for days_ago, tier, cost in [
        (1, "flagship", "30"),
        (10, "flagship", "70"),
        (40, "flagship", "500"),
        (2, "mini", "9"),
    ]:
        UsageRecord.objects.create(
            created_at=now - dt.timedelta(days=days_ago),
            request_id=f"r{days_ago}{tier}",
            team=team,
            prompt_version=triage,
            purpose=Purpose.GATEWAY,
            model_name="gpt-5.4",
            tier_name=tier,
            cost_usd=Decimal(cost),
        )
    return triage.prompt


def test_evidence_counts_votes_batch_rows_and_shadow_pairs(evidence):
    cases = selectors.recommendation_evidence(
        prompt=evidence, cheap_tier="mini", flagship_tier="flagship"
    )
    by_source = {}
    for case in cases:
        by_source.setdefault(case.source, []).append(case.match)
    assert sorted(by_source["vote"]) == [
        False,
        True,
        True,
        True,
        True,
    ]  # 4 comparisons + 1 row vote
    assert sorted(by_source["batch"]) == [False, False, True, True, True, True, True]
    assert by_source["shadow"] == [True]
    [rec] = selectors.prompt_recommendations(prompt=evidence)
    assert (rec.cheap_tier, rec.cases, rec.matches) == ("mini", 13, 10)
    # flagship spend of the last 30 days only: $30 + $70
    assert rec.flagship_spend_30d == Decimal("100")
    cheap = Decimal("0.001") * 4 + Decimal("0.002") * 8 + Decimal("0.001")
    flagship = Decimal("0.004") * 4 + Decimal("0.010") * 8 + Decimal("0.003")
    assert rec.cost_ratio == cheap / flagship
    assert rec.monthly_savings == (Decimal("100") * (1 - cheap / flagship)).quantize(
        Decimal("0.01")
    )


def test_an_editor_turns_a_recommendation_into_an_audited_rule_at_the_top(client, evidence, alice):
    policy = Policy.objects.get(is_active=True)
    first_rule = Rule.objects.filter(policy=policy).order_by("position", "id").first()
    client.force_login(alice)
    page = client.get(reverse("playground:recommendations")).content.decode()
    assert "(95% lower bound, 13 cases; observed 77%)" in page
    response = client.post(
        reverse("playground:recommendation-apply", args=[evidence.pk]), {"tier": "mini"}
    )
    assert response.status_code == 302
    rules = list(Rule.objects.filter(policy=policy).order_by("position", "id"))
    assert rules[0].prompt == evidence
    assert rules[0].team == evidence.team
    assert rules[0].target_tier.name == "mini"
    assert rules[1] == first_rule
    event = AuditEvent.objects.get(action="routing.rule.create")
    assert event.actor == alice
    assert event.after["target_tier"] == "mini"
    assert event.after["evidence"]["cases"] == 13
    assert event.after["evidence"]["matches"] == 10
    assert event.after["evidence"]["lower_bound_percent"] == 49  # Wilson 95% of 10/13
    assert selectors.prompt_routed_to(prompt=evidence) == "mini"


def test_a_member_without_edit_rights_cannot_create_the_rule(client, evidence, bob):
    with pytest.raises(Forbidden):
        services.recommendation_apply(prompt=evidence, cheap_tier="mini", actor=bob)
    client.force_login(bob)
    response = client.post(
        reverse("playground:recommendation-apply", args=[evidence.pk]), {"tier": "mini"}
    )
    assert response.status_code == 403
    assert not Rule.objects.filter(prompt=evidence).exists()


def test_an_outsider_cannot_see_or_apply_another_teams_recommendation(client, evidence, charlie):
    client.force_login(charlie)
    response = client.post(
        reverse("playground:recommendation-apply", args=[evidence.pk]), {"tier": "mini"}
    )
    assert response.status_code == 404
    assert "triage" not in client.get(reverse("playground:recommendations")).content.decode()
    assert not Rule.objects.filter(prompt=evidence).exists()


def test_purged_batch_rows_count_only_by_their_votes_and_content_checks(evidence, team):
    long_ago = timezone.now() - dt.timedelta(days=team.retention_days + 1)
    Job.objects.update(created_at=long_ago)
    Comparison.objects.update(created_at=long_ago)
    services.playground_content_purge()
    cases = selectors.recommendation_evidence(
        prompt=evidence, cheap_tier="mini", flagship_tier="flagship"
    )
    by_source = {}
    for case in cases:
        by_source.setdefault(case.source, []).append(case.match)
    # votes (4 comparisons, 1 row) and the shadow pair keep counting; so do the rows with an
    # exact check; the rows whose evidence was the agreement of their outputs do not
    assert sorted(by_source["vote"]) == [False, True, True, True, True]
    assert sorted(by_source["batch"]) == [False, True]
    assert by_source["shadow"] == [True]
