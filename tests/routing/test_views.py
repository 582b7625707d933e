"""Routing pages: tiers, the policy rule editor, the catalog; admin edits, others read."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from routing.models import Model, Policy, Price, Rule, Tier, TierModel

HTMX = {"HTTP_HX_REQUEST": "true"}
pytestmark = pytest.mark.usefixtures("seeded")


def _policy() -> Policy:
    return Policy.objects.get(name="default")


def _rule_post(**overrides) -> dict:
    data = {
        "name": "EU extraction to nano",
        "enabled": "on",
        "task_tags": ["extraction"],
        "tools_present": "",
        "tool_types": "",
        "required_capability": "",
        "action": "tier",
        "target_tier": str(Tier.objects.get(name="nano").pk),
        "allow_tier_fallback": "on",
        "meta-TOTAL_FORMS": "2",
        "meta-INITIAL_FORMS": "0",
        "meta-0-key": "region",
        "meta-0-op": "in",
        "meta-0-value": "eu, uk",
        "meta-1-key": "",
        "meta-1-op": "eq",
        "meta-1-value": "",
    }
    data.update(overrides)
    return data


def _tier_names(tier: str) -> list[str]:
    return list(
        TierModel.objects.filter(tier__name=tier)
        .order_by("position")
        .values_list("model__name", flat=True)
    )


# --- reading --------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("routing:index"))
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_an_admin_sees_the_editing_controls(client, dana):
    client.force_login(dana)
    response = client.get(reverse("routing:index"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Add rule" in html
    assert "data-sortable" in html
    assert "Routine tasks to mini" in html


def test_a_member_reads_the_policy_without_editing_controls(client, bob):
    client.force_login(bob)
    response = client.get(reverse("routing:index"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Routine tasks to mini" in html
    assert "gpt-5.4-mini" in html
    assert "Add rule" not in html
    assert "data-sortable" not in html
    assert "admins edit it" in html


def test_a_rule_scoped_to_another_team_does_not_name_that_team(client, bob, other_team):
    Rule.objects.create(
        policy=_policy(),
        position=9,
        name="Team B to flagship",
        team=other_team,
        action="tier",
        target_tier=Tier.objects.get(name="flagship"),
    )
    client.force_login(bob)
    html = client.get(reverse("routing:index")).content.decode()
    assert "Team B to flagship" in html
    assert "another team" in html
    assert "team-b" not in html


def test_the_catalog_shows_current_prices_and_the_history(client, bob):
    mini = Model.objects.get(name="gpt-5.4-mini")
    Price.objects.create(
        model=mini,
        effective_from=timezone.now() + dt.timedelta(days=10),
        input_per_mtok="0.70",
        cached_input_per_mtok="0.07",
        output_per_mtok="4.20",
        source="test",
    )
    client.force_login(bob)
    response = client.get(reverse("routing:catalog"))
    html = response.content.decode()
    assert response.status_code == 200
    row = html[html.index('id="model-gpt-5.4-mini"') :]
    assert "$0.75" in row[:2000]
    assert "$4.50" in row[:2000]
    assert "scheduled" in row
    assert "$0.70<" in row
    assert "$1.25" in html  # terra's cache write price
    assert "Import a price sheet" not in html


# --- rules ----------------------------------------------------------------------------------


def test_an_admin_adds_a_rule_with_every_kind_of_condition(client, dana, team):
    client.force_login(dana)
    post = _rule_post(
        team=str(team.pk),
        min_input_tokens="10",
        max_input_tokens="5000",
        tools_present="no",
        tool_types="function, web_search",
        required_capability="json_schema",
        **{"meta-1-key": "priority", "meta-1-op": "gt", "meta-1-value": "3"},
    )
    response = client.post(reverse("routing:rule-add", args=[_policy().pk]), post)
    assert response.status_code == 302
    rule = Rule.objects.get(name="EU extraction to nano")
    assert rule.position == 4  # last: after the four seeded rules
    assert rule.team == team
    assert rule.task_tags == ["extraction"]
    assert (rule.min_input_tokens, rule.max_input_tokens, rule.tools_present) == (10, 5000, False)
    assert rule.tool_types == ["function", "web_search"]
    assert rule.required_capability == "json_schema"
    assert rule.metadata_conditions == [
        {"key": "region", "op": "in", "value": ["eu", "uk"]},
        {"key": "priority", "op": "gt", "value": 3},
    ]
    event = AuditEvent.objects.get(action="rule.create")
    assert event.actor == dana
    assert event.after["target_tier"] == "nano"


def test_a_rule_edit_is_audited_with_before_and_after(client, dana):
    rule = Rule.objects.get(name="Reasoning tasks")
    client.force_login(dana)
    response = client.post(
        reverse("routing:rule-edit", args=[rule.pk]),
        _rule_post(
            name="Reasoning tasks",
            task_tags=["reasoning"],
            action="model",
            target_model=str(Model.objects.get(name="gpt-6-astra").pk),
            target_tier="",
        ),
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.action, rule.target_model.name, rule.target_tier) == ("model", "gpt-6-astra", None)
    event = AuditEvent.objects.get(action="rule.update")
    assert event.before["target_tier"] == "reasoning"
    assert event.after["target_model"] == "gpt-6-astra"


def test_the_edit_form_shows_the_rules_values(client, dana):
    rule = Rule.objects.get(name="Routine tasks to mini")
    rule.metadata_conditions = [{"key": "region", "op": "in", "value": ["eu", "uk"]}]
    rule.save()
    client.force_login(dana)
    html = client.get(reverse("routing:rule-edit", args=[rule.pk])).content.decode()
    assert 'value="Routine tasks to mini"' in html
    assert 'value="eu, uk"' in html
    assert re.search(r'value="summarization"[^>]*checked', html)
    assert not re.search(r'value="generation"[^>]*checked', html)


def test_an_invalid_regex_is_rejected_and_nothing_is_saved(client, dana):
    client.force_login(dana)
    response = client.post(
        reverse("routing:rule-add", args=[_policy().pk]),
        _rule_post(**{"meta-0-op": "regex", "meta-0-value": "([unclosed"}),
    )
    assert response.status_code == 400
    assert "Invalid regular expression" in response.content.decode()
    assert not Rule.objects.filter(name="EU extraction to nano").exists()


def test_a_tier_action_needs_a_tier(client, dana):
    client.force_login(dana)
    response = client.post(
        reverse("routing:rule-add", args=[_policy().pk]), _rule_post(target_tier="")
    )
    assert response.status_code == 400
    assert "Choose the tier this rule routes to." in response.content.decode()


def test_a_prompt_of_another_team_than_the_rules_team_is_rejected(client, dana, team, other_team):
    from prompts.models import Prompt

    prompt = Prompt.objects.create(team=other_team, slug="b-prompt", name="B")
    client.force_login(dana)
    response = client.post(
        reverse("routing:rule-add", args=[_policy().pk]),
        _rule_post(team=str(team.pk), prompt=str(prompt.pk)),
    )
    assert response.status_code == 400
    assert "The prompt belongs to another team." in response.content.decode()


@pytest.mark.parametrize("user", ["bob", "charlie", "alice"])
def test_only_admins_add_edit_or_delete_rules(client, request, user):
    client.force_login(request.getfixturevalue(user))
    rule = Rule.objects.get(name="Reasoning tasks")
    assert client.get(reverse("routing:rule-add", args=[_policy().pk])).status_code == 403
    assert (
        client.post(reverse("routing:rule-add", args=[_policy().pk]), _rule_post()).status_code
        == 403
    )
    assert (
        client.post(reverse("routing:rule-edit", args=[rule.pk]), _rule_post()).status_code == 403
    )
    assert client.post(reverse("routing:rule-delete", args=[rule.pk])).status_code == 403
    assert client.post(reverse("routing:rule-toggle", args=[rule.pk])).status_code == 403
    assert (
        client.post(
            reverse("routing:rules-reorder", args=[_policy().pk]), {"order": ""}
        ).status_code
        == 403
    )
    assert Rule.objects.count() == 4
    assert Rule.objects.get(pk=rule.pk).enabled
    assert not AuditEvent.objects.exists()


def test_disabling_a_rule_swaps_the_rules_table_and_is_audited(client, dana):
    rule = Rule.objects.get(name="Reasoning tasks")
    client.force_login(dana)
    response = client.post(reverse("routing:rule-toggle", args=[rule.pk]), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="rules-body"')
    assert "<html" not in html
    rule.refresh_from_db()
    assert not rule.enabled
    assert AuditEvent.objects.filter(action="rule.disable", object_id=str(rule.pk)).exists()
    client.post(reverse("routing:rule-toggle", args=[rule.pk]), **HTMX)
    rule.refresh_from_db()
    assert rule.enabled


def test_deleting_a_rule_closes_the_gap_and_is_audited(client, dana):
    rule = Rule.objects.get(name="Routine tasks to mini")
    client.force_login(dana)
    response = client.post(reverse("routing:rule-delete", args=[rule.pk]), **HTMX)
    assert response.status_code == 200
    assert list(Rule.objects.order_by("position").values_list("position", "name")) == [
        (0, "Computer use needs flagship"),
        (1, "Reasoning tasks"),
        (2, "Everything else: classifier"),
    ]
    event = AuditEvent.objects.get(action="rule.delete")
    assert event.before["name"] == "Routine tasks to mini"


def test_reordering_rules_sets_every_position_and_is_audited(client, dana):
    ids = list(Rule.objects.order_by("position").values_list("pk", flat=True))
    new = [ids[3], ids[0], ids[2], ids[1]]
    client.force_login(dana)
    response = client.post(
        reverse("routing:rules-reorder", args=[_policy().pk]),
        {"order": ",".join(map(str, new))},
        **HTMX,
    )
    assert response.status_code == 200
    assert list(Rule.objects.order_by("position").values_list("pk", flat=True)) == new
    event = AuditEvent.objects.get(action="policy.reorder")
    assert event.after[0] == "Everything else: classifier"


def test_a_reorder_that_drops_a_rule_is_refused(client, dana):
    ids = list(Rule.objects.order_by("position").values_list("pk", flat=True))
    client.force_login(dana)
    response = client.post(
        reverse("routing:rules-reorder", args=[_policy().pk]),
        {"order": ",".join(map(str, ids[:3]))},
        **HTMX,
    )
    assert response.status_code == 400
    assert "exactly once" in response.content.decode()
    assert list(Rule.objects.order_by("position").values_list("pk", flat=True)) == ids


# --- tiers ----------------------------------------------------------------------------------


def test_an_admin_makes_the_fallback_the_primary(client, dana):
    mini, terra = (Model.objects.get(name=n).pk for n in ("gpt-5.4-mini", "gpt-6.1-terra"))
    client.force_login(dana)
    response = client.post(
        reverse("routing:tier-reorder", args=["mini"]), {"order": f"{terra},{mini}"}, **HTMX
    )
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="tiers-body"')
    assert _tier_names("mini") == ["gpt-6.1-terra", "gpt-5.4-mini"]
    event = AuditEvent.objects.get(action="tier.reorder")
    assert (event.before, event.after) == (
        ["gpt-5.4-mini", "gpt-6.1-terra"],
        ["gpt-6.1-terra", "gpt-5.4-mini"],
    )


def test_an_admin_adds_and_removes_a_tier_fallback(client, dana):
    client.force_login(dana)
    sol = Model.objects.get(name="gpt-6.1-sol")
    client.post(reverse("routing:tier-model-add", args=["mini"]), {"model": sol.pk}, **HTMX)
    assert _tier_names("mini") == ["gpt-5.4-mini", "gpt-6.1-terra", "gpt-6.1-sol"]
    mini = Model.objects.get(name="gpt-5.4-mini")
    client.post(reverse("routing:tier-model-remove", args=["mini", mini.pk]), **HTMX)
    assert _tier_names("mini") == ["gpt-6.1-terra", "gpt-6.1-sol"]
    assert list(
        TierModel.objects.filter(tier__name="mini")
        .order_by("position")
        .values_list("position", flat=True)
    ) == [0, 1]
    assert (
        AuditEvent.objects.filter(action__in=["tier.add_model", "tier.remove_model"]).count() == 2
    )


@pytest.mark.parametrize("user", ["bob", "charlie"])
def test_only_admins_change_tiers(client, request, user):
    mini, terra = (Model.objects.get(name=n).pk for n in ("gpt-5.4-mini", "gpt-6.1-terra"))
    client.force_login(request.getfixturevalue(user))
    response = client.post(
        reverse("routing:tier-reorder", args=["mini"]), {"order": f"{terra},{mini}"}
    )
    assert response.status_code == 403
    assert client.post(reverse("routing:tier-model-remove", args=["mini", mini])).status_code == 403
    assert _tier_names("mini") == ["gpt-5.4-mini", "gpt-6.1-terra"]


# --- the 'test the policy' box --------------------------------------------------------------


def _route(client, **data):
    base = {"team": "", "prompt": "", "task_tag": "", "input": "", "tools": "", "metadata": ""}
    return client.post(reverse("routing:route-test"), {**base, **data}, **HTMX)


def test_the_test_box_shows_the_matching_rule_tier_and_models(client, bob, team):
    client.force_login(bob)
    response = _route(
        client, task_tag="extraction", input="Invoice 42 from ACME", team=str(team.pk)
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="route-result"' in html
    assert "rule <strong>Routine tasks to mini</strong> → tier <strong>mini</strong>" in html
    assert "gpt-5.4-mini → gpt-6.1-terra" in html
    assert "<html" not in html


def test_the_test_box_follows_tools_and_metadata_rules(client, dana, team):
    Rule.objects.create(
        policy=_policy(),
        position=0,
        name="EU to nano",
        action="tier",
        target_tier=Tier.objects.get(name="nano"),
        metadata_conditions=[{"key": "region", "op": "in", "value": ["eu"]}],
    )
    client.force_login(dana)
    html = _route(client, tools="computer_use_preview", metadata="region=eu").content.decode()
    # the computer-use rule comes first (same position, older): flagship
    assert (
        "rule <strong>Computer use needs flagship</strong> → tier <strong>flagship</strong>" in html
    )
    assert "needs computer_use, tools" in html
    html = _route(client, metadata="region=eu").content.decode()
    assert "tier <strong>nano</strong>" in html


def test_the_test_box_says_when_the_classifier_decides(client, bob):
    client.force_login(bob)
    html = _route(client, task_tag="generation", input="Write a poem").content.decode()
    assert "the <strong>classifier</strong> picks the tier" in html


def test_the_test_box_rejects_bad_metadata_lines(client, bob):
    client.force_login(bob)
    html = _route(client, metadata="just-a-key").content.decode()
    assert "Line 1: write key=value." in html
    assert 'data-testid="route-result"' not in html


def test_the_test_box_offers_only_the_users_teams(client, bob, other_team):
    client.force_login(bob)
    html = client.get(reverse("routing:index")).content.decode()
    box = html[html.index('id="route-test"') :]
    assert "Team A" in box
    assert "Team B" not in box
    response = _route(client, team=str(other_team.pk))
    assert "Select a valid choice" in response.content.decode()


def test_a_page_for_another_policy_shows_its_rules(client, bob):
    other = Policy.objects.create(name="experiment")
    Rule.objects.create(
        policy=other, name="All to nano", action="tier", target_tier=Tier.objects.get(name="nano")
    )
    client.force_login(bob)
    html = client.get(reverse("routing:index"), {"policy": other.pk}).content.decode()
    assert "All to nano" in html
    assert "Routine tasks to mini" not in html
    assert "inactive" in html
    assert client.get(reverse("routing:index"), {"policy": "abc"}).status_code == 200
