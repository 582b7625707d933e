from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import AuditEvent
from prompts.models import ApprovalRequest, Label
from tests.prompts.conftest import make_prompt, new_version

pytestmark = pytest.mark.django_db


def url(name: str, prompt=None, **query) -> str:
    path = reverse(f"prompts:{name}", args=[prompt.team.slug, prompt.slug] if prompt else [])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


EDIT_FORM = {
    "system_template": "You greet people.",
    "user_template": "Hi {{ name }}, {{ tone }} and {{ city }}",
    "var_name": ["name", "tone"],
    "var_type__name": "string",
    "var_required__name": "on",
    "var_type__tone": "enum",
    "var_enum__tone": "warm, dry",
    "var_default__tone": "warm",
    "sample__name": "Ada",
    "tier": "mini",
    "temperature": "0.7",
    "change_note": "adds city",
}


# --- list -------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, prompt):
    for target in (url("list"), url("detail", prompt), url("edit", prompt)):
        response = client.get(target)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_the_list_shows_the_teams_prompts_with_labels(client, prompt, bob, other_team, charlie):
    make_prompt(other_team, charlie, slug="secret")
    client.force_login(bob)
    response = client.get(url("list"))
    assert response.status_code == 200
    assert b"greet" in response.content
    assert b"production v1" in response.content
    assert b"secret" not in response.content


def test_the_list_filters_and_answers_htmx_with_the_results_only(client, prompt, team, alice):
    make_prompt(team, alice, slug="summarize", task_tag="summarization")
    client.force_login(alice)
    response = client.get(url("list", tag="summarization"), headers={"HX-Request": "true"})
    assert b"<html" not in response.content
    assert b"summarize" in response.content
    assert b"/greet/" not in response.content
    assert b"greet" in client.get(url("list", q="gre")).content


def test_the_list_makes_a_fixed_number_of_queries(
    client, team, alice, django_assert_max_num_queries
):
    for index in range(10):
        make_prompt(team, alice, slug=f"p{index}")
    client.force_login(alice)
    with django_assert_max_num_queries(12):
        response = client.get(url("list"))
    assert response.content.count(b"production v1") == 10


# --- prompt page ------------------------------------------------------------------------------


def test_prompt_page_shows_history_labels_variables_and_audit(client, prompt, alice):
    new_version(prompt, alice, "v2 {{ name }} {{ tone }}", change_note="second")
    client.force_login(alice)
    response = client.get(url("detail", prompt))
    content = response.content.decode()
    assert response.status_code == 200
    assert 'data-version="2"' in content
    assert 'data-version="1"' in content
    assert "Rollback to v1" not in content  # v1 is production
    assert 'data-testid="publish-2"' in content
    assert "saved v2 — second" in content
    assert "/playground/?prompt=greet&amp;version=2" in content
    assert "<code>tone</code>" in content


def test_an_old_version_reads_as_it_was_saved(client, prompt, alice):
    new_version(prompt, alice, "v2 {{ name }} {{ tone }}", temperature="0.9")
    client.force_login(alice)
    content = client.get(url("detail", prompt, version=1)).content.decode()
    assert "Say hello to {{ name }} in a {{ tone }} tone." in content
    assert "0.20" in content


def test_an_outsider_gets_404_on_every_prompt_page(client, prompt, charlie):
    client.force_login(charlie)
    for name in ("detail", "edit", "compare", "publish"):
        assert client.get(url(name, prompt, version=1)).status_code == 404, name
    for name in ("preview", "rollback", "settings", "publish"):
        assert client.post(url(name, prompt), {"version": 1}).status_code == 404, name


def test_a_member_without_editor_role_can_read_but_not_edit(client, prompt, bob):
    client.force_login(bob)
    content = client.get(url("detail", prompt)).content.decode()
    assert "Edit" not in content.split("<h2>Versions")[0].split("Try in playground")[1]
    assert client.get(url("edit", prompt)).status_code == 403
    assert client.post(url("edit", prompt), EDIT_FORM).status_code == 403
    assert client.post(url("rollback", prompt), {"version": 1}).status_code == 403
    assert client.post(url("publish", prompt), {"version": 1}).status_code == 403


# --- editor -----------------------------------------------------------------------------------


def test_the_editor_opens_with_the_latest_version(client, prompt, alice):
    client.force_login(alice)
    content = client.get(url("edit", prompt)).content.decode()
    assert "Say hello to {{ name }} in a {{ tone }} tone." in content
    assert 'data-testid="var-name"' in content
    assert "Save as v2" in content


def test_preview_renders_samples_marks_empty_variables_and_reports_detected_names(
    client, prompt, alice
):
    client.force_login(alice)
    response = client.post(url("preview", prompt), EDIT_FORM, headers={"HX-Request": "true"})
    content = response.content.decode()
    assert response.status_code == 200
    assert "Hi Ada, warm and" in content
    assert '<mark class="var-empty" data-var="city">' in content
    assert "Empty: city" in content
    assert 'id="empty-warning"' in content
    assert "hx-swap-oob" in content
    assert '"names": ["name", "tone", "city"]' in response.headers["HX-Trigger"]


def test_preview_reports_syntax_errors_with_lines_and_keeps_the_rows(client, prompt, alice):
    client.force_login(alice)
    response = client.post(
        url("preview", prompt),
        {**EDIT_FORM, "user_template": "ok\n{{ name"},
        headers={"HX-Request": "true"},
    )
    assert "user, line 2" in response.content.decode()
    assert "HX-Trigger" not in response.headers


def test_preview_flags_a_bad_sample_value(client, prompt, alice):
    client.force_login(alice)
    form = {
        **EDIT_FORM,
        "user_template": "{{ n + 1 }}",
        "var_name": ["n"],
        "var_type__n": "integer",
        "sample__n": "many",
    }
    content = client.post(url("preview", prompt), form).content.decode()
    assert "sample__n: Enter a whole number." in content


def test_preview_refuses_a_sandbox_escape(client, prompt, alice):
    client.force_login(alice)
    form = {**EDIT_FORM, "user_template": "{{ ''.__class__.__mro__ }}", "var_name": []}
    content = client.post(url("preview", prompt), form).content.decode()
    assert "sandbox forbids" in content


def test_preview_needs_edit_rights_on_the_prompt(client, prompt, bob):
    client.force_login(bob)
    assert client.post(url("preview", prompt), EDIT_FORM).status_code == 403


def test_preview_is_rate_limited_per_user(client, prompt, alice, settings):
    settings.PROMPT_PREVIEW_PER_MINUTE = 3
    client.force_login(alice)
    statuses = [client.post(url("preview", prompt), EDIT_FORM).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_preview_stops_a_runaway_template_with_a_clear_message(client, prompt, alice):
    client.force_login(alice)
    form = {
        **EDIT_FORM,
        "user_template": "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "var_name": [],
    }
    response = client.post(url("preview", prompt), form)
    assert response.status_code == 200
    assert "calls nest deeper than" in response.content.decode()


def test_saving_creates_the_next_version_with_detected_variables(client, prompt, alice):
    client.force_login(alice)
    response = client.post(url("edit", prompt), EDIT_FORM)
    assert response.status_code == 302
    assert response.url.endswith("?version=2&saved=1")
    v2 = prompt.versions.get(number=2)
    assert v2.change_note == "adds city"
    assert str(v2.temperature) == "0.70"
    assert v2.variables == [
        {"name": "name", "type": "string", "required": True},
        {"name": "tone", "type": "enum", "enum": ["warm", "dry"], "default": "warm"},
        {"name": "city", "type": "string", "required": True},
    ]
    assert prompt.versions.get(number=1).user_template.startswith("Say hello")
    assert AuditEvent.objects.filter(action="version.create", actor=alice).count() == 2


def test_save_and_publish_opens_the_publish_dialog(client, prompt, alice):
    client.force_login(alice)
    response = client.post(url("edit", prompt), {**EDIT_FORM, "then": "publish"})
    assert response.url.endswith("publish=1")


def test_a_failed_save_keeps_the_text_and_names_the_line(client, prompt, alice):
    client.force_login(alice)
    response = client.post(url("edit", prompt), {**EDIT_FORM, "system_template": "a\nb\n{% if %}"})
    content = response.content.decode()
    assert response.status_code == 422
    assert "line 3" in content
    assert 'data-unsaved="1"' in content
    assert prompt.versions.count() == 1


# --- compare, publish, rollback, approvals -----------------------------------------------------


def test_compare_shows_line_diff_and_param_changes(client, prompt, alice):
    new_version(prompt, alice, "Say hello to {{ name }}!\nTone: {{ tone }}", temperature="0.7")
    client.force_login(alice)
    content = client.get(url("compare", prompt, a=1, b=2)).content.decode()
    assert "<del>- Say hello to {{ name }} in a {{ tone }} tone.</del>" in content
    assert "<ins>+ Tone: {{ tone }}</ins>" in content
    assert "Temperature" in content
    assert "<del>0.20</del>" in content
    assert "<ins>0.70</ins>" in content


def test_publish_dialog_shows_the_diff_against_production(client, prompt, alice):
    new_version(prompt, alice, "New {{ name }} {{ tone }}")
    client.force_login(alice)
    response = client.get(url("publish", prompt, version=2), headers={"HX-Request": "true"})
    content = response.content.decode()
    assert "<html" not in content
    assert "points at v1 now" in content
    assert "<ins>+ New {{ name }} {{ tone }}</ins>" in content


def test_publish_moves_production_and_rollback_moves_it_back(client, prompt, alice):
    new_version(prompt, alice, "New {{ name }} {{ tone }}")
    client.force_login(alice)
    client.post(url("publish", prompt), {"version": 2, "label": "production"})
    assert Label.objects.get(prompt=prompt, name="production").version.number == 2
    content = client.get(url("detail", prompt)).content.decode()
    assert 'data-testid="rollback-1"' in content
    client.post(url("rollback", prompt), {"version": 1, "label": "production"})
    assert Label.objects.get(prompt=prompt, name="production").version.number == 1


def test_non_approver_publish_of_a_protected_prompt_waits_for_approval(
    client, protected, erin, alice
):
    new_version(protected, erin, "New {{ name }} {{ tone }}")
    client.force_login(erin)
    dialog = client.get(url("publish", protected, version=2)).content.decode()
    assert "Request approval" in dialog
    response = client.post(
        url("publish", protected), {"version": 2, "label": "production"}, follow=True
    )
    assert "Awaiting approval" in response.content.decode()
    assert Label.objects.get(prompt=protected, name="production").version.number == 1
    request = ApprovalRequest.objects.get()
    client.force_login(alice)
    page = client.get(reverse("prompts:approval", args=[request.pk])).content.decode()
    assert "<ins>+ New {{ name }} {{ tone }}</ins>" in page
    assert 'data-testid="approve"' in page
    client.post(
        reverse("prompts:approval", args=[request.pk]), {"decision": "approve", "comment": "ok"}
    )
    assert Label.objects.get(prompt=protected, name="production").version.number == 2
    trail = client.get(url("detail", protected)).content.decode()
    assert "approved v2 → production (ok)" in trail
    assert "asked for approval: v2 → production" in trail


def test_the_author_sees_no_approve_button_and_cannot_approve(client, protected, alice):
    new_version(protected, alice, "Mine {{ name }} {{ tone }}")
    client.force_login(alice)
    client.post(url("publish", protected), {"version": 2, "label": "production"})
    request = ApprovalRequest.objects.get()
    page = client.get(reverse("prompts:approval", args=[request.pk])).content.decode()
    assert 'data-testid="approve"' not in page
    client.post(reverse("prompts:approval", args=[request.pk]), {"decision": "approve"})
    request.refresh_from_db()
    assert request.status == "pending"


def test_an_outsider_cannot_see_approval_requests(client, protected, erin, charlie):
    new_version(protected, erin, "New {{ name }} {{ tone }}")
    client.force_login(erin)
    client.post(url("publish", protected), {"version": 2, "label": "production"})
    client.force_login(charlie)
    request = ApprovalRequest.objects.get()
    assert client.get(reverse("prompts:approval", args=[request.pk])).status_code == 404
    assert b"guarded" not in client.get(reverse("prompts:approvals")).content


def test_an_editor_creates_a_prompt_from_the_page(client, team, alice, bob):
    client.force_login(bob)
    assert client.get(reverse("prompts:create")).status_code == 403
    client.force_login(alice)
    response = client.post(
        reverse("prompts:create"),
        {"team": "team-a", "slug": "fresh", "name": "Fresh", "task_tag": "routing"},
    )
    assert response.status_code == 302
    assert response.url == reverse("prompts:edit", args=["team-a", "fresh"])
    duplicate = client.post(
        reverse("prompts:create"), {"team": "team-a", "slug": "fresh", "name": "Again"}
    )
    assert duplicate.status_code == 422


def test_settings_turn_on_approval_and_are_audited(client, prompt, alice):
    client.force_login(alice)
    client.post(
        url("settings", prompt),
        {"name": "Greeter", "task_tag": "generation", "requires_approval": "on"},
    )
    prompt.refresh_from_db()
    assert prompt.requires_approval
    assert prompt.name == "Greeter"
    assert AuditEvent.objects.filter(action="prompt.update", actor=alice).exists()


def test_admin_lists_prompts_and_shows_versions_read_only(client, prompt, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    for path in (
        "/admin/prompts/prompt/",
        f"/admin/prompts/prompt/{prompt.pk}/change/",
        "/admin/prompts/promptversion/",
        "/admin/prompts/label/",
        "/admin/prompts/approvalrequest/",
    ):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/prompts/promptversion/add/").status_code == 403
    version = prompt.versions.get()
    page = client.get(f"/admin/prompts/promptversion/{version.pk}/change/")
    assert page.status_code == 200
    assert b'name="user_template"' not in page.content  # view only


def test_admin_edits_to_a_prompt_are_audited(client, prompt, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    response = client.post(
        f"/admin/prompts/prompt/{prompt.pk}/change/",
        {
            "name": "Renamed",
            "description": "",
            "task_tag": "generation",
            "requires_approval": "on",
            "shadow_sample_rate": "0",
            "labels-TOTAL_FORMS": "0",
            "labels-INITIAL_FORMS": "1",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "1",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.filter(action="prompt.update").latest("id")
    assert event.actor == admin_user
    assert event.after == {"name": "Renamed", "requires_approval": True}


def test_prompt_page_makes_a_fixed_number_of_queries(
    client, prompt, alice, django_assert_max_num_queries
):
    for index in range(15):
        new_version(prompt, alice, f"v{index} {{{{ name }}}} {{{{ tone }}}}")
    client.force_login(alice)
    with django_assert_max_num_queries(16):
        response = client.get(url("detail", prompt))
    assert response.content.count(b"data-version=") == 16
