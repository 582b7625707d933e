from __future__ import annotations

import pytest

from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.models import AuditEvent
from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion
from prompts.services import (
    ApprovalRequired,
    approval_decide,
    approval_request_create,
    label_move,
    label_rollback,
    prompt_create,
    prompt_update,
    prompt_version_create,
    version_publish,
)
from tests.prompts.conftest import GREET_VARIABLES, new_version

pytestmark = pytest.mark.django_db


def actions(prompt: Prompt) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="prompts.prompt", object_id=str(prompt.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def production(prompt: Prompt) -> int:
    return Label.objects.get(prompt=prompt, name="production").version.number


# --- versions ---------------------------------------------------------------------------------


def test_versions_are_numbered_one_up_and_audited(prompt, alice):
    v2 = new_version(prompt, alice, "Hi {{ name }} ({{ tone }})", change_note="shorter")
    assert v2.number == 2
    assert v2.author == alice
    assert actions(prompt) == ["prompt.create", "version.create", "label.move", "version.create"]
    event = AuditEvent.objects.filter(action="version.create").order_by("id").last()
    assert event.actor == alice
    assert event.team == prompt.team
    assert event.after == {"version": 2, "change_note": "shorter"}


def test_a_saved_version_cannot_be_edited(prompt):
    version = prompt.versions.get(number=1)
    version.user_template = "changed"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    assert PromptVersion.objects.get(pk=version.pk).user_template.startswith("Say hello")


def test_saving_reports_template_syntax_errors_with_line_numbers_and_writes_nothing(prompt, alice):
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as caught:
        new_version(prompt, alice, "Hello {{ name }}\nand {% if tone %} never closed")
    assert caught.value.status == 422
    assert "line 2" in caught.value.details["user"]
    assert prompt.versions.count() == 1
    assert AuditEvent.objects.count() == before


def test_saving_refuses_variables_used_but_not_declared(prompt, alice):
    with pytest.raises(ValidationFailed) as caught:
        new_version(prompt, alice, "Hello {{ name }} from {{ city }}")
    assert "city" in caught.value.details["undeclared_variables"]


def test_saving_checks_model_settings_one_error_per_field(prompt, alice):
    with pytest.raises(ValidationFailed) as caught:
        new_version(
            prompt,
            alice,
            "{{ name }}{{ tone }}",
            temperature="9",
            max_output_tokens=-1,
            reasoning_effort="extreme",
            response_schema={"type": "nonsense"},
        )
    assert set(caught.value.details) == {
        "temperature",
        "max_output_tokens",
        "reasoning_effort",
        "response_schema",
    }


def test_a_member_without_editor_role_cannot_create_versions(prompt, bob):
    with pytest.raises(Forbidden):
        new_version(prompt, bob, "{{ name }}{{ tone }}")


def test_an_editor_of_another_team_cannot_create_versions(prompt, charlie):
    with pytest.raises(Forbidden):
        new_version(prompt, charlie, "{{ name }}{{ tone }}")


def test_prompt_slugs_are_unique_per_team(team, other_team, alice, charlie):
    prompt_create(team=team, slug="same", name="x", actor=alice)
    prompt_create(team=other_team, slug="same", name="x", actor=charlie)
    with pytest.raises(Conflict):
        prompt_create(team=team, slug="same", name="y", actor=alice)
    with pytest.raises(ValidationFailed):
        prompt_create(team=team, slug="Not A Slug", name="y", actor=alice)


def test_prompt_settings_changes_are_audited_with_before_and_after(prompt, alice):
    prompt_update(prompt=prompt, actor=alice, requires_approval=True, description="d")
    event = AuditEvent.objects.get(action="prompt.update")
    assert event.before == {"requires_approval": False, "description": ""}
    assert event.after == {"requires_approval": True, "description": "d"}


# --- labels -----------------------------------------------------------------------------------


def test_label_move_and_rollback(prompt, alice):
    v2 = new_version(prompt, alice, "v2 {{ name }}{{ tone }}")
    v3 = new_version(prompt, alice, "v3 {{ name }}{{ tone }}")
    label_move(prompt=prompt, label="production", version=v3, actor=alice)
    assert production(prompt) == 3
    label_rollback(prompt=prompt, label="production", actor=alice)
    assert production(prompt) == 1  # back to where it was before the last move
    label_rollback(prompt=prompt, label="production", actor=alice, version=v2)
    assert production(prompt) == 2
    moves = AuditEvent.objects.filter(action__startswith="label.").order_by("id")
    assert [(e.action, e.before, e.after) for e in moves] == [
        ("label.move", None, {"label": "production", "version": 1}),
        (
            "label.move",
            {"label": "production", "version": 1},
            {"label": "production", "version": 3},
        ),
        (
            "label.rollback",
            {"label": "production", "version": 3},
            {"label": "production", "version": 1},
        ),
        (
            "label.rollback",
            {"label": "production", "version": 1},
            {"label": "production", "version": 2},
        ),
    ]


def test_custom_labels_point_at_versions_independently(prompt, alice):
    v2 = new_version(prompt, alice, "v2 {{ name }}{{ tone }}")
    label_move(prompt=prompt, label="staging", version=v2, actor=alice)
    label_move(prompt=prompt, label="canary-eu", version=v2, actor=alice)
    assert production(prompt) == 1
    assert set(prompt.labels.values_list("name", flat=True)) == {
        "production",
        "staging",
        "canary-eu",
    }
    with pytest.raises(ValidationFailed):
        label_move(prompt=prompt, label="Bad Label!", version=v2, actor=alice)


def test_rollback_without_history_is_a_conflict(prompt, alice):
    with pytest.raises(Conflict):
        label_rollback(prompt=prompt, label="production", actor=alice)
    with pytest.raises(NotFound):
        label_rollback(prompt=prompt, label="staging", actor=alice)


def test_a_label_cannot_point_at_another_prompts_version(prompt, team, alice):
    other = prompt_create(team=team, slug="other", name="Other", actor=alice)
    with pytest.raises(NotFound):
        label_move(prompt=other, label="production", version=prompt.versions.get(), actor=alice)


def test_bob_cannot_move_labels(prompt, bob):
    with pytest.raises(Forbidden):
        label_move(prompt=prompt, label="staging", version=prompt.versions.get(), actor=bob)


# --- approvals --------------------------------------------------------------------------------


def test_non_approver_publishing_a_protected_prompt_gets_a_pending_request(protected, erin):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    result = version_publish(prompt=protected, version=v2, label="production", actor=erin)
    assert not result.moved
    assert result.approval.status == ApprovalRequest.Status.PENDING
    assert production(protected) == 1  # the label stays
    again = version_publish(prompt=protected, version=v2, label="production", actor=erin)
    assert again.approval.pk == result.approval.pk
    assert "approval.request" in actions(protected)


def test_staging_on_a_protected_prompt_needs_no_approval(protected, erin):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    assert version_publish(prompt=protected, version=v2, label="staging", actor=erin).moved


def test_a_protected_label_refuses_a_direct_move_without_approval(protected, erin, alice):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    with pytest.raises(ApprovalRequired) as caught:
        label_move(prompt=protected, label="production", version=v2, actor=alice)
    assert caught.value.code == "approval_required"


def test_an_approver_approves_and_the_label_moves(protected, erin, alice):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    request = approval_request_create(version=v2, actor=erin)
    approval_decide(request=request, approver=alice, approve=True, comment="lgtm")
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.comment) == ("approved", alice, "lgtm")
    assert production(protected) == 2
    event = AuditEvent.objects.get(action="approval.approve")
    assert (event.actor, event.after["version"]) == (alice, 2)
    assert actions(protected)[-2:] == ["approval.approve", "label.move"]


def test_a_rejected_request_leaves_the_label_and_cannot_be_decided_twice(protected, erin, alice):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    request = approval_request_create(version=v2, actor=erin)
    approval_decide(request=request, approver=alice, approve=False, comment="too rude")
    assert production(protected) == 1
    assert AuditEvent.objects.filter(action="approval.reject", actor=alice).exists()
    with pytest.raises(Conflict):
        approval_decide(request=request, approver=alice, approve=True)


def test_an_approver_cannot_approve_their_own_version(protected, alice, vera):
    v2 = new_version(protected, alice, "v2 {{ name }}{{ tone }}")
    result = version_publish(prompt=protected, version=v2, label="production", actor=alice)
    assert not result.moved  # alice wrote v2: her publish is only a request
    with pytest.raises(Forbidden):
        approval_decide(request=result.approval, approver=alice, approve=True)
    approval_decide(request=result.approval, approver=vera, approve=True)
    assert production(protected) == 2


def test_only_approvers_of_the_team_may_decide(protected, erin, bob, charlie):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    request = approval_request_create(version=v2, actor=erin)
    for outsider in (erin, bob, charlie):
        with pytest.raises(Forbidden):
            approval_decide(request=request, approver=outsider, approve=True)
    request.refresh_from_db()
    assert request.status == "pending"


def test_an_approver_publishing_someone_elses_version_moves_it_at_once(protected, erin, vera):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    result = version_publish(prompt=protected, version=v2, label="production", actor=vera)
    assert result.moved
    assert result.approval.status == "approved"
    assert result.approval.decided_by == vera
    assert production(protected) == 2


def test_rollback_to_a_version_that_held_production_needs_no_new_approval(protected, erin, vera):
    v2 = new_version(protected, erin, "v2 {{ name }}{{ tone }}")
    v3 = new_version(protected, erin, "v3 {{ name }}{{ tone }}")
    version_publish(prompt=protected, version=v2, label="production", actor=vera)
    label_rollback(prompt=protected, label="production", actor=erin)
    assert production(protected) == 1
    with pytest.raises(ApprovalRequired):
        label_rollback(prompt=protected, label="production", actor=erin, version=v3)
    label_rollback(prompt=protected, label="production", actor=erin, version=v2)
    assert production(protected) == 2


def test_version_variables_schema_is_stored_as_given(prompt, alice):
    v2 = prompt_version_create(
        prompt=prompt,
        author=alice,
        user_template="{{ name }}",
        variables=GREET_VARIABLES[:1],
    )
    assert PromptVersion.objects.get(pk=v2.pk).variables == GREET_VARIABLES[:1]
