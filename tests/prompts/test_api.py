from __future__ import annotations

import json

import pytest
import yaml
from rest_framework.test import APIClient

from core.models import AuditEvent
from prompts.models import Label, Prompt
from tests.prompts.conftest import GREET_VARIABLES, make_prompt, new_version

pytestmark = pytest.mark.django_db


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)  # session auth, as the browser would
    return client


def as_key(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


V2 = {
    "system_template": "You greet people.",
    "user_template": "Hey {{ name }}, {{ tone }}!",
    "variables": GREET_VARIABLES,
    "temperature": "0.70",
    "change_note": "friendlier",
}


# --- read access ------------------------------------------------------------------------------


def test_anonymous_gets_401(prompt):
    response = APIClient().get("/api/v1/prompts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_team_member_lists_only_their_teams_prompts(prompt, bob, other_team, charlie):
    make_prompt(other_team, charlie, slug="secret")
    body = as_user(bob).get("/api/v1/prompts").json()
    assert [p["slug"] for p in body["results"]] == ["greet"]
    assert body["results"][0]["labels"] == {"production": 1}


def test_a_key_sees_only_its_teams_prompts(prompt, api_key, other_api_key):
    assert as_key(api_key).get("/api/v1/prompts/greet").status_code == 200
    assert as_key(other_api_key).get("/api/v1/prompts/greet").status_code == 404
    assert as_key(other_api_key).get("/api/v1/prompts").json()["results"] == []


def test_an_outsider_gets_404_everywhere(prompt, charlie):
    client = as_user(charlie)
    for url in (
        "/api/v1/prompts/greet",
        "/api/v1/prompts/greet/versions",
        "/api/v1/prompts/greet/versions/1",
        "/api/v1/prompts/greet/labels",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post("/api/v1/prompts/greet/render", {}, format="json").status_code == 404
    assert client.post("/api/v1/prompts/greet/versions", V2, format="json").status_code == 404


def test_list_filters_by_search_tag_and_label(prompt, team, alice):
    make_prompt(team, alice, slug="summarize", task_tag="summarization")
    client = as_user(alice)
    slugs = lambda q: [p["slug"] for p in client.get(f"/api/v1/prompts?{q}").json()["results"]]  # noqa: E731
    assert slugs("q=summ") == ["summarize"]
    assert slugs("tag=summarization") == ["summarize"]
    assert slugs("label=production") == ["greet", "summarize"]
    assert slugs("label=staging") == []


def test_prompt_list_makes_a_fixed_number_of_queries(team, alice, django_assert_max_num_queries):
    for index in range(8):
        make_prompt(team, alice, slug=f"p{index}")
    client = as_user(alice)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/prompts").json()
    assert len(body["results"]) == 8


# --- versions ---------------------------------------------------------------------------------


def test_an_editor_creates_a_version_and_it_is_immutable_over_the_api(prompt, alice):
    client = as_user(alice)
    response = client.post("/api/v1/prompts/greet/versions", V2, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 2
    assert response.json()["author"] == "alice"
    assert response.json()["temperature"] == "0.70"
    for method in (client.put, client.patch, client.delete):
        assert method("/api/v1/prompts/greet/versions/2", V2, format="json").status_code == 405
    assert (
        client.get("/api/v1/prompts/greet/versions/2").json()["user_template"]
        == V2["user_template"]
    )


def test_a_member_without_editor_role_and_a_key_cannot_create_versions(prompt, bob, api_key):
    assert as_user(bob).post("/api/v1/prompts/greet/versions", V2, format="json").status_code == 403
    assert (
        as_key(api_key).post("/api/v1/prompts/greet/versions", V2, format="json").status_code == 403
    )
    assert prompt.versions.count() == 1


def test_a_template_syntax_error_is_a_422_with_the_line(prompt, alice):
    response = as_user(alice).post(
        "/api/v1/prompts/greet/versions",
        {**V2, "user_template": "ok {{ name }}\n{{ tone }}\n{% for x in %}"},
        format="json",
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"]["user"].startswith("line 3")


# --- render -----------------------------------------------------------------------------------


def test_render_with_a_key_returns_the_production_messages(prompt, api_key):
    response = as_key(api_key).post(
        "/api/v1/prompts/greet/render", {"variables": {"name": "Ada"}}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert body["label"] == "production"
    assert body["messages"] == [
        {"role": "system", "content": "You greet people."},
        {"role": "user", "content": "Say hello to Ada in a warm tone."},
    ]
    assert body["instructions"] == "You greet people."
    assert body["variables"] == {"name": "Ada", "tone": "warm"}
    assert body["settings"]["tier"] == "mini"
    assert body["settings"]["temperature"] == "0.20"


def test_render_by_label_or_version(prompt, alice, api_key):
    v2 = new_version(prompt, alice, "v2 {{ name }} {{ tone }}")
    from prompts.services import label_move

    label_move(prompt=prompt, label="staging", version=v2, actor=alice)
    client = as_key(api_key)
    body = {"variables": {"name": "x"}}
    assert (
        client.post(
            "/api/v1/prompts/greet/render", {**body, "label": "staging"}, format="json"
        ).json()["version"]
        == 2
    )
    assert (
        client.post(
            "/api/v1/prompts/greet/render",
            {**body, "version": 1, "label": "staging"},
            format="json",
        ).json()["version"]
        == 1
    )
    missing = client.post("/api/v1/prompts/greet/render", {**body, "label": "nope"}, format="json")
    assert missing.status_code == 404


def test_invalid_variables_are_a_422_with_one_error_per_bad_field(prompt, api_key):
    response = as_key(api_key).post(
        "/api/v1/prompts/greet/render",
        {"variables": {"name": "x" * 51, "tone": "angry", "extra": 1}},
        format="json",
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_variables"
    assert set(error["details"]) == {"name", "tone", "extra"}


def test_a_sandbox_escape_in_a_template_is_a_422_not_a_500(prompt, alice, api_key):
    as_user(alice).post(
        "/api/v1/prompts/greet/versions",
        {
            **V2,
            "user_template": "{{ name }}{{ tone }}{{ ''.__class__.__mro__[1].__subclasses__() }}",
        },
        format="json",
    )
    response = as_key(api_key).post(
        "/api/v1/prompts/greet/render", {"variables": {"name": "x"}, "version": 2}, format="json"
    )
    assert response.status_code == 422
    assert "sandbox" in response.json()["error"]["message"]


def test_a_session_user_in_two_teams_names_the_team(prompt, other_team, alice, charlie):
    from accounts.models import Membership

    Membership.objects.create(user=alice, team=other_team)
    make_prompt(other_team, charlie, slug="greet")
    client = as_user(alice)
    assert (
        client.post(
            "/api/v1/prompts/greet/render", {"variables": {"name": "x"}}, format="json"
        ).status_code
        == 400
    )
    ok = client.post(
        "/api/v1/prompts/greet/render?team=team-b", {"variables": {"name": "x"}}, format="json"
    )
    assert ok.json()["team"] == "team-b"


# --- labels and approvals ---------------------------------------------------------------------


def test_moving_a_label_over_the_api_then_rolling_back(prompt, alice, api_key):
    new_version(prompt, alice, "v2 {{ name }} {{ tone }}")
    client = as_user(alice)
    moved = client.put("/api/v1/prompts/greet/labels/production", {"version": 2}, format="json")
    assert moved.status_code == 200
    assert moved.json()["version"] == 2
    rendered = as_key(api_key).post(
        "/api/v1/prompts/greet/render", {"variables": {"name": "x"}}, format="json"
    )
    assert rendered.json()["version"] == 2  # the resolve cache forgot the old label
    back = client.post("/api/v1/prompts/greet/labels/production/rollback", {}, format="json")
    assert back.json() == {"moved": True, "label": "production", "version": 1, "approval": None}
    assert client.get("/api/v1/prompts/greet/labels").json()[0]["version"] == 1


def test_publishing_a_protected_prompt_answers_202_and_an_approver_decides(
    protected, erin, alice, bob
):
    new_version(protected, erin, "v2 {{ name }} {{ tone }}")
    response = as_user(erin).put(
        "/api/v1/prompts/guarded/labels/production", {"version": 2}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["moved"], body["version"], body["approval"]["status"]) == (False, 1, "pending")
    url = f"/api/v1/prompt-approvals/{body['approval']['id']}/decide"
    assert as_user(bob).post(url, {"approve": True}, format="json").status_code == 403
    decided = as_user(alice).post(url, {"approve": True, "comment": "ok"}, format="json")
    assert decided.status_code == 200
    assert decided.json()["decided_by"] == "alice"
    assert Label.objects.get(prompt=protected, name="production").version.number == 2
    assert as_user(alice).post(url, {"approve": False}, format="json").status_code == 409


def test_an_outsider_cannot_see_or_decide_approvals(protected, erin, charlie):
    new_version(protected, erin, "v2 {{ name }} {{ tone }}")
    body = (
        as_user(erin)
        .put("/api/v1/prompts/guarded/labels/production", {"version": 2}, format="json")
        .json()
    )
    url = f"/api/v1/prompt-approvals/{body['approval']['id']}/decide"
    assert as_user(charlie).post(url, {"approve": True}, format="json").status_code == 404
    assert as_user(charlie).get("/api/v1/prompts/guarded/approvals").status_code == 404


# --- create, export, import -------------------------------------------------------------------


def test_an_editor_creates_a_prompt_and_it_is_audited(team, alice, bob):
    data = {"team": "team-a", "slug": "new-one", "name": "New one", "task_tag": "routing"}
    assert as_user(bob).post("/api/v1/prompts", data, format="json").status_code == 403
    response = as_user(alice).post("/api/v1/prompts", data, format="json")
    assert response.status_code == 201
    assert AuditEvent.objects.filter(action="prompt.create", actor=alice).exists()
    assert as_user(alice).post("/api/v1/prompts", data, format="json").status_code == 409
    reserved = as_user(alice).post("/api/v1/prompts", {**data, "slug": "export"}, format="json")
    assert reserved.status_code == 422


@pytest.mark.parametrize(
    ("fmt", "content_type", "load"),
    [("yaml", "application/yaml", yaml.safe_load), ("json", "application/json", json.loads)],
)
def test_the_export_answers_in_the_format_asked_for(prompt, api_key, fmt, content_type, load):
    exported = as_key(api_key).get(f"/api/v1/prompts/export?format={fmt}")
    assert exported.status_code == 200, exported.content
    assert exported["Content-Type"] == content_type
    assert [p["slug"] for p in load(exported.content)["prompts"]] == [prompt.slug]


@pytest.mark.parametrize("fmt", ["xml", "api", "csv"])
def test_an_unknown_export_format_is_a_json_400(prompt, api_key, fmt):
    response = as_key(api_key).get(f"/api/v1/prompts/export?format={fmt}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "bad_request"


def test_export_and_import_over_the_api(prompt, alice, other_team, api_key):
    exported = as_key(api_key).get("/api/v1/prompts/export")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/yaml"
    document = yaml.safe_load(exported.content)
    assert [p["slug"] for p in document["prompts"]] == ["greet"]
    from accounts.models import Membership

    Membership.objects.create(user=alice, team=other_team)
    response = as_user(alice).generic(
        "POST",
        "/api/v1/prompts/import?team=team-b",
        exported.content,
        content_type="application/yaml",
    )
    assert response.status_code == 200, response.content
    assert response.json()["created_prompts"] == ["team-b/greet"]
    assert Prompt.objects.get(team=other_team).versions.count() == 1


def test_a_bad_import_is_a_422_and_writes_nothing(prompt, alice, api_key):
    document = {
        "prompts": [{"slug": "fresh", "team": "team-a", "versions": [{"user_template": "{{"}]}]
    }
    response = as_user(alice).post("/api/v1/prompts/import", document, format="json")
    assert response.status_code == 422
    assert "prompts[0] (fresh).versions[0]" in response.json()["error"]["details"]
    assert not Prompt.objects.filter(slug="fresh").exists()
    assert (
        as_key(api_key).post("/api/v1/prompts/import", document, format="json").status_code == 403
    )


def test_the_schema_documents_the_prompts_api(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    assert "/api/v1/prompts/{slug}/render" in schema["paths"]
    assert "422" in schema["paths"]["/api/v1/prompts/{slug}/render"]["post"]["responses"]


def test_malformed_path_parts_get_our_json_404(prompt, api_key):
    client = as_key(api_key)
    for path in (
        "/api/v1/prompts/%C2%B9%20x",
        "/api/v1/prompts/greet/versions/%C2%B9",
        "/api/v1/prompts/greet/versions/-1",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    decide = client.post("/api/v1/prompt-approvals/%C2%B9/decide", {"approve": True}, format="json")
    assert decide.status_code == 404
