"""Evaluators: creation, versions and their audit, validation, and who may change them."""

from __future__ import annotations

import pytest

from core.errors import BadRequest, Conflict, Forbidden
from core.models import AuditEvent
from evals import services
from evals.models import Evaluator, EvaluatorVersion
from tests.evals.conftest import RUBRIC

pytestmark = pytest.mark.django_db


def test_an_editor_creates_an_evaluator_with_a_first_version_and_an_audit_event(pairwise, alice):
    version = pairwise.versions.get()
    assert (version.number, version.config) == (1, {"rubric": RUBRIC, "judge": "tier:flagship"})
    event = AuditEvent.objects.get(action="evaluator.create")
    assert (event.actor, event.team_id) == (alice, pairwise.team_id)
    assert event.after["kind"] == "pairwise_judge"


def test_editing_the_rubric_adds_an_immutable_version_with_before_and_after(pairwise, alice):
    second = services.evaluator_version_create(
        evaluator=pairwise,
        config={"rubric": "Be strict about urgency.", "judge": "tier:flagship"},
        actor=alice,
        note="stricter",
    )
    assert second.number == 2
    assert pairwise.versions.get(number=1).config["rubric"] == RUBRIC  # the first stays
    event = AuditEvent.objects.get(action="evaluator.version")
    assert event.before == {"version": 1, "config": {"rubric": RUBRIC, "judge": "tier:flagship"}}
    assert event.after["version"] == 2
    assert event.after["note"] == "stricter"
    with pytest.raises(BadRequest, match="Nothing changed"):
        services.evaluator_version_create(evaluator=pairwise, config=second.config, actor=alice)


def test_a_member_and_an_outsider_cannot_create_or_edit_evaluators(pairwise, triage, bob, charlie):
    for person in (bob, charlie):
        with pytest.raises(Forbidden):
            services.evaluator_create(
                prompt=triage.prompt,
                name="other",
                kind="check",
                config={"check": "json"},
                actor=person,
            )
        with pytest.raises(Forbidden):
            services.evaluator_version_create(
                evaluator=pairwise, config={"rubric": "x", "judge": "tier:mini"}, actor=person
            )
    assert Evaluator.objects.count() == 1
    assert EvaluatorVersion.objects.count() == 1


@pytest.mark.parametrize(
    ("kind", "config", "param"),
    [
        ("pairwise_judge", {"rubric": "  "}, "rubric"),
        ("pairwise_judge", {"rubric": "ok", "judge": "flagship"}, "judge"),
        ("score_judge", {"rubric": "ok", "pass_score": 7}, "pass_score"),
        ("json_fields", {"fields": {"total": ["roman"]}}, "fields"),
        ("json_fields", {"against": "someone"}, "against"),
        ("check", {"check": "regex", "value": "("}, "value"),
        ("check", {"check": "vibes"}, "check"),
        ("nonsense", {}, "kind"),
    ],
)
def test_a_bad_config_is_refused_naming_its_field(triage, alice, kind, config, param):
    with pytest.raises(BadRequest) as caught:
        services.evaluator_create(
            prompt=triage.prompt, name="e", kind=kind, config=config, actor=alice
        )
    assert caught.value.param == param
    assert not Evaluator.objects.exists()


def test_two_evaluators_of_a_prompt_cannot_share_a_name(pairwise, triage, alice):
    with pytest.raises(Conflict):
        services.evaluator_create(
            prompt=triage.prompt, name="judge", kind="check", config={"check": "json"}, actor=alice
        )
