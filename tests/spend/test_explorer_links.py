"""The request explorer's metadata search, the candidates the router skipped, and the links
from a request to its shadow pair, job or batch: each scoped to the viewer's team."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group

from accounts.models import Role, User
from gateway.models import Batch
from playground.models import Job, JobItem, ShadowPair
from tests.spend.conftest import prompt_for
from tests.spend.test_api import key_client, user_client
from tests.spend.test_explorer_api import ids

NOW = dt.datetime.now(dt.UTC)


def at(minutes_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


@pytest.fixture
def tagged(make_usage, team, other_team):
    make_usage(team=team, at=at(5), request_id="req_invoice", metadata={"task_tag": "invoice"})
    make_usage(team=team, at=at(4), request_id="req_receipt", metadata={"task_tag": "receipt"})
    make_usage(team=team, at=at(3), request_id="req_customer", metadata={"customer": 42})
    make_usage(team=team, at=at(2), request_id="req_untagged")
    make_usage(
        team=other_team, at=at(1), request_id="req_their_invoice", metadata={"task_tag": "invoice"}
    )


# --------------------------------------------------------------------------- metadata search


def test_a_key_value_search_finds_the_requests_with_that_metadata(tagged, alice):
    client = user_client(alice)

    assert ids(client.get("/api/v1/requests", {"q": "task_tag:invoice"})) == ["req_invoice"]
    assert ids(client.get("/api/v1/requests", {"q": "task_tag:nothing"})) == []
    assert ids(client.get("/api/v1/requests", {"q": "req_rec"})) == ["req_receipt"]


def test_a_numeric_metadata_value_is_found_by_its_text(tagged, alice):
    assert ids(user_client(alice).get("/api/v1/requests", {"q": "customer:42"})) == ["req_customer"]


def test_metadata_search_never_returns_another_teams_requests(tagged, charlie, api_key):
    assert ids(user_client(charlie).get("/api/v1/requests", {"q": "task_tag:invoice"})) == [
        "req_their_invoice"
    ]
    assert ids(key_client(api_key).get("/api/v1/requests", {"q": "task_tag:invoice"})) == [
        "req_invoice"
    ]


def test_the_page_searches_metadata_and_keeps_the_search_in_the_form(tagged, client, alice):
    client.force_login(alice)

    page = client.get("/requests/", {"q": "task_tag:invoice"}).content.decode()

    assert "req_invoice" in page
    assert "req_receipt" not in page
    assert "req_their_invoice" not in page
    assert 'value="task_tag:invoice"' in page


def test_the_detail_shows_the_recorded_metadata_without_stored_content(tagged, alice):
    detail = user_client(alice).get("/api/v1/requests/req_invoice").json()

    assert detail["content"]["stored"] is False
    assert detail["metadata"] == {"task_tag": "invoice"}


# --------------------------------------------------------------------------- skipped


def test_candidates_skipped_before_any_attempt_are_listed_with_their_reason(
    make_usage, team, alice, client
):
    skipped = [
        {"tier": "nano", "model": "gpt-5.4-nano", "reason": "no tool_search"},
        {"tier": "mini", "model": "", "reason": "team budget limit reached: downgraded to nano"},
    ]
    make_usage(team=team, at=at(1), request_id="req_skipping", route_skipped=skipped)

    detail = user_client(alice).get("/api/v1/requests/req_skipping").json()
    client.force_login(alice)
    page = client.get("/requests/req_skipping/").content.decode()

    assert detail["route"]["skipped"] == skipped
    assert "Skipped before any attempt: gpt-5.4-nano (nano): no tool_search" in page
    assert "tier mini: team budget limit reached: downgraded to nano" in page


# --------------------------------------------------------------------------- related


def related(client, request_id: str) -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/requests/{request_id}")
    assert response.status_code == 200, response.content
    return [(link["kind"], link["label"]) for link in response.json()["related"]]


@pytest.fixture
def shadowed(make_usage, team, other_team):
    """A production request of team A shadowed, its shadow run, and team B's pair that
    carries the same (caller-chosen) request id."""
    production = make_usage(team=team, at=at(3), request_id="req_shared", prompt="triage")
    shadow = make_usage(
        team=team, at=at(2), request_id="req_shadow_run", prompt="triage", purpose="shadow"
    )
    version = prompt_for(team, "triage")
    ShadowPair.objects.create(
        team=team,
        prompt=version.prompt,
        prompt_version=version,
        production_usage_record=production,
        shadow_usage_record=shadow,
        production_request_id="req_shared",
        production_model="gpt-5.4-mini",
        shadow_model="gpt-6.1-terra",
        status=ShadowPair.Status.DONE,
    )
    make_usage(team=other_team, at=at(1), request_id="req_shared", prompt="triage")
    theirs = prompt_for(other_team, "triage")
    ShadowPair.objects.create(
        team=other_team,
        prompt=theirs.prompt,
        prompt_version=theirs,
        production_request_id="req_shared",
        production_model="theirs",
        shadow_model="theirs",
    )


def test_a_shadowed_request_links_its_pair_from_both_sides(shadowed, alice, client):
    pair = ShadowPair.objects.get(team__slug="team-a")
    expected = [("shadow", f"Shadow pair #{pair.pk}: gpt-5.4-mini vs gpt-6.1-terra (done)")]

    assert related(user_client(alice), "req_shared") == expected
    assert related(user_client(alice), "req_shadow_run") == expected
    client.force_login(alice)
    page = client.get("/requests/req_shared/").content.decode()
    assert 'href="/playground/shadow/?team=team-a"' in page


def test_another_teams_shadow_pair_is_never_linked(shadowed, charlie):
    theirs = ShadowPair.objects.get(team__slug="team-b")

    assert related(user_client(charlie), "req_shared") == [
        ("shadow", f"Shadow pair #{theirs.pk}: theirs vs theirs (pending)")
    ]


def test_finance_outside_the_team_sees_the_request_but_no_links(shadowed):
    finance = User.objects.create_user("fiona", "f@example.com", "pw")
    finance.groups.set([Group.objects.get_or_create(name=Role.FINANCE)[0]])

    assert related(user_client(finance), "req_shadow_run") == []


def test_a_job_item_request_links_its_job_of_the_same_team_only(
    make_usage, team, other_team, alice, charlie
):
    job = Job.objects.create(team=team, kind=Job.Kind.API, name="nightly")
    JobItem.objects.create(job=job, row_index=2, column_index=0, request_id="req_job_item")
    make_usage(team=team, at=at(2), request_id="req_job_item", purpose="batch")
    their_job = Job.objects.create(team=other_team, kind=Job.Kind.API, name="theirs")
    JobItem.objects.create(job=their_job, row_index=0, request_id="req_their_item")
    make_usage(team=other_team, at=at(1), request_id="req_their_item", purpose="batch")
    # team B's request reusing team A's item's request id is not linked to team A's job
    make_usage(team=other_team, at=at(1), request_id="req_job_item", purpose="batch")

    assert related(user_client(alice), "req_job_item") == [
        ("job", "Jobs API nightly (row 3, column 1)")
    ]
    assert related(user_client(charlie), "req_job_item") == []
    assert related(user_client(charlie), "req_their_item") == [
        ("job", "Jobs API theirs (row 1, column 1)")
    ]


def test_a_batch_line_request_links_its_batch_of_the_same_team_only(
    make_usage, team, other_team, alice, charlie
):
    Batch.objects.create(public_id="batch_abc", team=team, endpoint="/v1/responses")
    make_usage(team=team, at=at(2), request_id="batch_abc-3", service_tier="batch")
    make_usage(team=other_team, at=at(1), request_id="batch_abc-3", service_tier="batch")

    assert related(user_client(alice), "batch_abc-3") == [
        ("batch", "Batch batch_abc, line 3 (validating)")
    ]
    assert related(user_client(charlie), "batch_abc-3") == []


def test_a_plain_request_has_no_related_objects(tagged, alice):
    assert related(user_client(alice), "req_untagged") == []
