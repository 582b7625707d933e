"""Comparisons without calling a model: creation, access, votes and their summary."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from core.errors import BadRequest, InvalidVariables, ValidationFailed
from playground import selectors, services
from playground.columns import ColumnSpec
from playground.models import Comparison, RunStatus, Verdict, Vote

MINI_VS_FLAGSHIP = [ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")]


@pytest.fixture
def comparison(team, alice, triage, tiers) -> Comparison:
    return services.comparison_create(
        team=team,
        user=alice,
        columns=MINI_VS_FLAGSHIP,
        prompt_version=triage,
        variables={"message": "I was charged twice"},
    )


def test_a_new_comparison_has_pending_columns_with_tokens(comparison):
    columns = list(comparison.columns.all())
    assert [(c.letter, c.tier, c.status) for c in columns] == [
        ("A", "mini", RunStatus.PENDING),
        ("B", "flagship", RunStatus.PENDING),
    ]
    assert all(len(c.run_token) == 16 for c in columns)


def test_a_comparison_rejects_bad_variables_unknown_tiers_and_five_columns(
    team, alice, triage, tiers
):
    with pytest.raises(InvalidVariables) as caught:
        services.comparison_create(
            team=team, user=alice, columns=MINI_VS_FLAGSHIP, prompt_version=triage, variables={}
        )
    assert "message" in caught.value.details
    with pytest.raises(BadRequest, match="No tier named 'giant'"):
        services.comparison_create(
            team=team,
            user=alice,
            columns=[ColumnSpec(tier="giant")],
            input_text="hi",
        )
    with pytest.raises(BadRequest, match="between 1 and 4"):
        services.comparison_create(
            team=team, user=alice, columns=[ColumnSpec(tier="mini")] * 5, input_text="hi"
        )
    with pytest.raises(ValidationFailed):
        services.comparison_create(team=team, user=alice, columns=MINI_VS_FLAGSHIP, input_text=" ")
    assert not Comparison.objects.exists()


def test_a_column_can_be_rerun_with_new_settings_and_a_fifth_cannot_be_added(comparison, tiers):
    column = services.comparison_column_prepare(
        comparison=comparison, position=1, spec=ColumnSpec(model="gpt-5.5", reasoning_effort="high")
    )
    assert (column.model_name, column.tier, column.reasoning_effort) == ("gpt-5.5", "", "high")
    services.comparison_column_prepare(
        comparison=comparison, position=2, spec=ColumnSpec(tier="nano")
    )
    services.comparison_column_prepare(
        comparison=comparison, position=3, spec=ColumnSpec(tier="reasoning")
    )
    with pytest.raises(BadRequest, match="at most 4"):
        services.comparison_column_prepare(
            comparison=comparison, position=4, spec=ColumnSpec(tier="mini")
        )


def test_votes_replace_earlier_ones_and_sum_into_wins_losses_and_ties(comparison, alice, bob):
    services.vote_cast(comparison=comparison, voter=alice, verdict=Verdict.TIE)
    services.vote_cast(
        comparison=comparison, voter=alice, verdict=Verdict.WINNER, winner_position=0, comment="ok"
    )
    services.vote_cast(comparison=comparison, voter=bob, verdict=Verdict.ALL_BAD)
    assert Vote.objects.count() == 2
    summary = selectors.vote_summary(comparison=comparison)
    assert (summary.total, summary.ties, summary.all_bad) == (2, 0, 1)
    assert summary.wins == {0: 1, 1: 0}
    assert summary.losses == {0: 0, 1: 1}
    with pytest.raises(BadRequest):
        services.vote_cast(
            comparison=comparison, voter=bob, verdict=Verdict.WINNER, winner_position=3
        )


def test_a_teammate_opens_and_votes_on_a_shared_comparison(client, comparison, bob):
    client.force_login(bob)
    url = reverse("playground:comparison", args=[comparison.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        reverse("playground:comparison-vote", args=[comparison.pk]),
        {"choice": "1", "comment": "B is sharper"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert b"B: 1 win" in response.content
    assert b"B is sharper" in response.content
    # the vote survives a reload, with its summary
    page = client.get(url).content.decode()
    assert "1 vote:" in page
    assert "A: 0 wins / 1 loss" in page


def test_an_outsider_gets_404_on_every_comparison_url(client, comparison, charlie):
    client.force_login(charlie)
    urls = [
        reverse("playground:comparison", args=[comparison.pk]),
        reverse("playground:column-stream", args=[comparison.pk, 0]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    for name in ["playground:comparison-vote", "playground:comparison-save"]:
        assert (
            client.post(reverse(name, args=[comparison.pk]), {"choice": "tie"}).status_code == 404
        )
    assert client.post(reverse("playground:column-run", args=[comparison.pk, 0])).status_code == 404
    assert not Vote.objects.exists()


def test_saving_lists_the_comparison_for_the_team(client, comparison, bob, charlie):
    client.force_login(bob)
    client.post(reverse("playground:comparison-save", args=[comparison.pk]), {"title": "Refunds"})
    comparison.refresh_from_db()
    assert comparison.saved
    assert comparison.title == "Refunds"
    assert "Refunds" in client.get(reverse("playground:index")).content.decode()
    client.force_login(charlie)
    assert "Refunds" not in client.get(reverse("playground:index")).content.decode()


def test_the_compare_page_shows_mini_vs_flagship_and_the_variables_form(
    client, alice, triage, tiers
):
    client.force_login(alice)
    page = client.get(reverse("playground:index") + f"?version={triage.pk}").content.decode()
    assert 'value="tier:mini" selected' in page
    assert 'value="tier:flagship" selected' in page
    assert 'name="var-message"' in page
    assert 'name="var-channel"' in page
    partial = client.get(
        reverse("playground:variables") + f"?version={triage.pk}", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert partial.lstrip().startswith('<div id="variables"')
    assert 'name="var-priority"' in partial


def test_running_from_the_form_creates_a_comparison_and_answers_stream_urls(
    client, alice, triage, tiers
):
    client.force_login(alice)
    response = client.post(
        reverse("playground:comparison-create"),
        {
            "team": "team-a",
            "version": triage.pk,
            "var-message": "hello",
            "var-priority": "2",
            "col-0-target": "tier:mini",
            "col-1-target": "model:gpt-5.4",
            "col-1-temperature": "0.3",
        },
    )
    assert response.status_code == 201
    body = response.json()
    comparison = Comparison.objects.get(pk=body["id"])
    assert comparison.variables == {"message": "hello", "priority": 2}
    assert [c["position"] for c in body["columns"]] == [0, 1]
    assert "token=" in body["columns"][0]["stream_url"]
    bad = client.post(
        reverse("playground:comparison-create"),
        {"team": "team-a", "version": triage.pk, "var-priority": "x", "col-0-target": "tier:mini"},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"] == {"priority": "Enter a whole number."}


def test_an_editor_saves_a_column_as_the_prompts_next_version(client, comparison, alice, bob):
    services.comparison_column_prepare(
        comparison=comparison,
        position=1,
        spec=ColumnSpec(model="gpt-5.4-nano", temperature=Decimal("0.7"), reasoning_effort="low"),
    )
    url = reverse("playground:column-save-version", args=[comparison.pk, 1])
    client.force_login(bob)
    assert client.post(url).status_code == 403
    client.force_login(alice)
    assert client.post(url).status_code == 302
    version = comparison.prompt_version.prompt.versions.order_by("-number").first()
    assert version.number == 2
    assert (version.model_name, version.tier) == ("gpt-5.4-nano", "")
    assert (version.temperature, version.reasoning_effort) == (Decimal("0.7"), "low")
    assert version.user_template == comparison.prompt_version.user_template
    assert version.response_schema == comparison.prompt_version.response_schema
    assert "comparison" in version.change_note
