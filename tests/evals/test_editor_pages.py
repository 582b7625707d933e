"""Evaluator pages (the card on the prompt page, the editor, its live preview): for an editor
(alice), a member who may only read (bob) and an outsider (charlie)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from core.models import AuditEvent
from evals.models import Evaluator, EvaluatorVersion
from tests.evals.conftest import RUBRIC, finished_job, right_and_flawed

pytestmark = pytest.mark.django_db


def _judge_payload(**extra: str) -> dict[str, str]:
    return {
        "name": "judge",
        "kind": "pairwise_judge",
        "rubric": RUBRIC,
        "judge": "tier:flagship",
        **extra,
    }


# --- the evaluator editor -----------------------------------------------------------------


def test_the_prompt_page_loads_its_evaluators_card(client, alice, pairwise, triage, tiers):
    client.force_login(alice)
    prompt = triage.prompt
    page = client.get(reverse("prompts:detail", args=[prompt.team.slug, prompt.slug]))
    assert reverse("evals:prompt-evaluators", args=[prompt.pk]) in page.content.decode()
    card = client.get(
        reverse("evals:prompt-evaluators", args=[prompt.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert card.lstrip().startswith('<section class="card" id="evaluators"')
    assert reverse("evals:evaluator", args=[pairwise.pk]) in card
    assert "<code>tier:flagship</code>" in card
    assert "v1" in card


def test_an_editor_creates_a_pairwise_judge_from_the_page(client, alice, triage, tiers):
    client.force_login(alice)
    response = client.post(reverse("evals:create", args=[triage.prompt.pk]), _judge_payload())
    evaluator = Evaluator.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("evals:evaluator", args=[evaluator.pk])
    assert evaluator.versions.get().config == {"rubric": RUBRIC, "judge": "tier:flagship"}
    assert AuditEvent.objects.filter(action="evaluator.create", actor=alice).exists()


def test_a_bad_evaluator_is_refused_with_its_reason_and_the_form_kept(client, alice, triage, tiers):
    client.force_login(alice)
    response = client.post(
        reverse("evals:create", args=[triage.prompt.pk]),
        _judge_payload(rubric="  ", name="strict"),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "A judge needs a rubric." in page
    assert 'value="strict"' in page
    assert not Evaluator.objects.exists()


def test_saving_the_editor_makes_a_new_audited_version(client, alice, pairwise, tiers):
    client.force_login(alice)
    response = client.post(
        reverse("evals:version", args=[pairwise.pk]),
        {
            "kind": "pairwise_judge",
            "rubric": "Be strict about urgency.",
            "judge": "tier:mini",
            "note": "stricter",
        },
    )
    assert response.status_code == 302
    latest = pairwise.versions.order_by("-number").first()
    assert (latest.number, latest.config["judge"], latest.note) == (2, "tier:mini", "stricter")
    page = client.get(reverse("evals:evaluator", args=[pairwise.pk])).content.decode()
    assert "Save v3" in page
    assert "evaluator.version → v2 — stricter" in page
    assert "(was v1)" in page


def test_an_unchanged_save_says_so_and_makes_no_version(client, alice, pairwise, tiers):
    client.force_login(alice)
    response = client.post(
        reverse("evals:version", args=[pairwise.pk]),
        {"kind": "pairwise_judge", "rubric": RUBRIC, "judge": "tier:flagship"},
    )
    assert response.status_code == 400
    assert "Nothing changed since the latest version." in response.content.decode()
    assert pairwise.versions.count() == 1


def test_an_editor_switches_an_evaluator_off_and_sets_its_shadow_share(
    client, alice, pairwise, tiers
):
    client.force_login(alice)
    client.post(reverse("evals:settings", args=[pairwise.pk]), {"shadow_percent": "12.5"})
    pairwise.refresh_from_db()
    assert not pairwise.enabled
    assert str(pairwise.shadow_sample_rate) == "0.1250"
    assert AuditEvent.objects.filter(action="evaluator.settings").exists()


def test_a_member_reads_the_editor_but_cannot_change_an_evaluator(client, bob, pairwise, tiers):
    client.force_login(bob)
    page = client.get(reverse("evals:evaluator", args=[pairwise.pk])).content.decode()
    assert "read only" in page
    assert "Save v2" not in page
    assert re.search(r"<fieldset disabled", page)
    card = client.get(reverse("evals:prompt-evaluators", args=[pairwise.prompt_id])).content
    assert b"New evaluator" not in card
    posts = [
        (reverse("evals:create", args=[pairwise.prompt_id]), _judge_payload(name="mine")),
        (
            reverse("evals:version", args=[pairwise.pk]),
            {"kind": "pairwise_judge", "rubric": "x", "judge": "tier:mini"},
        ),
        (reverse("evals:settings", args=[pairwise.pk]), {"enabled": "on"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403
    assert Evaluator.objects.count() == 1
    assert EvaluatorVersion.objects.count() == 1


def test_another_team_gets_404_everywhere(client, charlie, pairwise, tiers):
    client.force_login(charlie)
    prompt_id = pairwise.prompt_id
    gets = [
        reverse("evals:prompt-evaluators", args=[prompt_id]),
        reverse("evals:preview", args=[prompt_id]) + "?kind=pairwise_judge&rubric=x",
        reverse("evals:evaluator", args=[pairwise.pk]),
    ]
    for url in gets:
        assert client.get(url).status_code == 404
    posts = [
        reverse("evals:create", args=[prompt_id]),
        reverse("evals:version", args=[pairwise.pk]),
        reverse("evals:settings", args=[pairwise.pk]),
    ]
    for url in posts:
        assert client.post(url, _judge_payload()).status_code == 404
    assert EvaluatorVersion.objects.count() == 1


def test_the_preview_renders_both_orders_on_a_sample_when_no_run_exists(
    client, alice, triage, tiers
):
    client.force_login(alice)
    page = client.get(
        reverse("evals:preview", args=[triage.prompt.pk]),
        {"kind": "pairwise_judge", "rubric": "Prefer the right urgency.", "judge": "tier:mini"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "v1 with sample values (no batch run yet)" in page
    assert page.count("Prefer the right urgency.") == 2
    assert "Order 1: cheap answer as A" in page
    assert "Order 2: positions swapped" in page
    assert "(sample message)" in page  # the required variable, filled in
    assert "<code>tier:mini</code>" in page
    empty = client.get(
        reverse("evals:preview", args=[triage.prompt.pk]), {"kind": "pairwise_judge"}
    ).content.decode()
    assert "Write a rubric to see the judge&#x27;s prompt." in empty
    fields = client.get(
        reverse("evals:preview", args=[triage.prompt.pk]), {"kind": "json_fields"}
    ).content.decode()
    assert "calls no model" in fields


def test_the_preview_uses_a_real_row_of_the_latest_batch_run(client, alice, team, triage, tiers):
    cheap, reference = right_and_flawed(3)
    finished_job(team, triage, [(cheap, reference)])
    client.force_login(alice)
    page = client.get(
        reverse("evals:preview", args=[triage.prompt.pk]),
        {"kind": "score_judge", "rubric": "Grade the urgency."},
    ).content.decode()
    assert "row 1 of" in page
    assert "column A against B" in page
    assert "Ticket 0: the invoice is wrong" in page
    assert "from 1 (useless) to 5" in page


def test_a_shadow_share_that_is_not_a_number_is_refused(client, alice, pairwise, tiers):
    client.force_login(alice)
    response = client.post(
        reverse("evals:settings", args=[pairwise.pk]),
        {"enabled": "on", "shadow_percent": "lots"},
        follow=True,
    )
    assert "The shadow sample rate is a number." in response.content.decode()
    pairwise.refresh_from_db()
    assert pairwise.shadow_sample_rate == 0
    assert not AuditEvent.objects.filter(action="evaluator.settings").exists()
