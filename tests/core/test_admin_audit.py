"""Configuration edits made in the Django admin are audit events: actor, object, and the
changed fields before and after; never a secret."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.forms import MultiWidget

from accounts.models import ApiKey, Membership, Team
from accounts.services import api_key_create
from core.models import AuditEvent
from routing.models import Model, Policy, Price, Rule
from spend.models import AlertTarget, Budget


@pytest.fixture
def root(db, django_user_model, client):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


def _form_data(form) -> dict[str, Any]:
    """What a browser would post back for `form` unchanged."""
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        keys = [form.add_prefix(name)]
        if field.show_hidden_initial:  # fields with a callable default, e.g. JSON lists
            keys.append(form.add_initial_prefix(name))
        for key in keys:
            if isinstance(field.widget, MultiWidget):
                parts = value if isinstance(value, list) else field.widget.decompress(value)
                data.update({f"{key}_{i}": "" if v is None else v for i, v in enumerate(parts)})
            elif isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = value
    return data


def _change_page_data(client, url: str) -> dict[str, Any]:
    """The admin change page's form and inline formsets as they would be posted unchanged."""
    response = client.get(url)
    assert response.status_code == 200
    data = _form_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        data[management.add_prefix("TOTAL_FORMS")] = len(formset.initial_forms)
        for form in formset.initial_forms:
            data.update(_form_data(form))
    return data


def _post(client, url: str, data: dict[str, Any]) -> None:
    response = client.post(url, data)
    assert response.status_code == 302, response.context and [
        f.errors for f in [response.context["adminform"].form]
    ]


def _event_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("before", "after", "object_repr")))


def test_saving_an_unchanged_admin_form_records_nothing(client, root, catalog):
    policy = Policy.objects.get(name="default")
    url = f"/admin/routing/policy/{policy.pk}/change/"
    _post(client, url, _change_page_data(client, url))
    assert not AuditEvent.objects.filter(actor=root).exists()


def test_policy_and_inline_rule_edits_are_audited_with_the_changed_fields(client, root, catalog):
    policy = Policy.objects.get(name="default")
    first, last = policy.rules.order_by("position")[0], policy.rules.order_by("position").last()
    url = f"/admin/routing/policy/{policy.pk}/change/"
    data = _change_page_data(client, url)
    data["description"] = "Edited in the admin."
    data["rules-0-name"] = "Computer use: flagship only"
    data["rules-0-enabled"] = ""  # an unchecked box is absent
    del data["rules-0-enabled"]
    last_index = policy.rules.count() - 1
    data[f"rules-{last_index}-DELETE"] = "on"
    _post(client, url, data)

    policy_event = AuditEvent.objects.get(action="policy.update")
    assert policy_event.actor == root
    assert (policy_event.object_type, policy_event.object_id) == ("routing.policy", str(policy.pk))
    assert policy_event.before == {
        "description": "Routine tasks to mini, reasoning to the reasoning tier, the rest by the "
        "classifier."
    }
    assert policy_event.after == {"description": "Edited in the admin."}

    rule_event = AuditEvent.objects.get(action="rule.update")
    assert rule_event.object_id == str(first.pk)
    assert rule_event.before == {"name": "Computer use needs flagship", "enabled": True}
    assert rule_event.after == {"name": "Computer use: flagship only", "enabled": False}

    deleted = AuditEvent.objects.get(action="rule.delete")
    assert deleted.object_id == str(last.pk)
    assert deleted.before["name"] == "Everything else: classifier"
    assert deleted.before["action"] == "classify"
    assert deleted.after is None
    assert not Rule.objects.filter(pk=last.pk).exists()
    assert AuditEvent.objects.filter(actor=root).count() == 3


def test_a_price_added_inline_on_a_model_is_audited_with_its_values(client, root, catalog):
    model = Model.objects.get(name="gpt-5.4-mini")
    url = f"/admin/routing/model/{model.pk}/change/"
    data = _change_page_data(client, url)
    index = len([k for k in data if k.startswith("prices-") and k.endswith("-id")])
    data["prices-TOTAL_FORMS"] = index + 1
    data.update(
        {
            f"prices-{index}-effective_from_0": "2030-01-01",
            f"prices-{index}-effective_from_1": "00:00:00",
            f"prices-{index}-input_per_mtok": "0.70",
            f"prices-{index}-cached_input_per_mtok": "0.07",
            f"prices-{index}-output_per_mtok": "4.20",
            f"prices-{index}-long_context_input_multiplier": "1",
            f"prices-{index}-long_context_output_multiplier": "1",
            f"prices-{index}-source": "admin",
        }
    )
    _post(client, url, data)
    price = Price.objects.get(model=model, source="admin")
    event = AuditEvent.objects.get(action="price.create")
    assert (event.object_id, event.actor) == (str(price.pk), root)
    assert event.before is None
    assert event.after["input_per_mtok"] == "0.70"
    assert event.after["output_per_mtok"] == "4.20"
    assert event.after["model"] == model.pk
    assert event.after["effective_from"].startswith("2030-01-01")
    assert AuditEvent.objects.filter(actor=root).count() == 1  # the model did not change


def test_api_key_edits_and_deletes_never_record_the_key_hash(client, root, team):
    key, secret = api_key_create(team=team, name="ci")
    url = f"/admin/accounts/apikey/{key.pk}/change/"
    data = _change_page_data(client, url)
    data["name"] = "ci runner"
    data["rate_limit_rpm"] = "60"
    _post(client, url, data)
    event = AuditEvent.objects.get(action="api_key.update")
    assert (event.before, event.after) == (
        {"name": "ci", "rate_limit_rpm": None},
        {"name": "ci runner", "rate_limit_rpm": 60},
    )
    assert event.team == team

    response = client.post(f"/admin/accounts/apikey/{key.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEvent.objects.get(action="api_key.delete")
    assert deleted.before["hashed_key"] == "[redacted]"
    assert deleted.before["name"] == "ci runner"
    assert not ApiKey.objects.exists()
    text = _event_text()
    assert key.hashed_key not in text
    assert secret not in text


def test_a_team_added_with_a_member_is_audited_and_the_new_users_password_is_not(
    client, root, alice
):
    response = client.post(
        "/admin/accounts/team/add/",
        {
            "name": "Research",
            "slug": "research",
            "retention_days": "14",
            "is_active": "on",
            "membership_set-TOTAL_FORMS": "1",
            "membership_set-INITIAL_FORMS": "0",
            "membership_set-0-user": str(alice.pk),
            "membership_set-0-role": "member",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    team = Team.objects.get(slug="research")
    created = AuditEvent.objects.get(action="team.create")
    assert created.team == team
    assert created.after == {
        "name": "Research",
        "slug": "research",
        "store_content": False,
        "no_content": False,
        "retention_days": 14,
        "is_active": True,
    }
    membership = AuditEvent.objects.get(action="membership.create")
    assert membership.object_id == str(Membership.objects.get(team=team).pk)
    assert membership.after == {"user": alice.pk, "team": team.pk, "role": "member"}

    response = client.post(
        "/admin/accounts/user/add/",
        {"username": "erin", "password1": "S3cret-pass!x", "password2": "S3cret-pass!x"},
    )
    assert response.status_code == 302, response.content[:3000]
    erin = AuditEvent.objects.get(action="user.create")
    assert erin.after["username"] == "erin"
    response = client.post(
        f"/admin/accounts/user/{erin.object_id}/password/",
        {"password1": "N3w-secret!y", "password2": "N3w-secret!y"},
    )
    assert response.status_code == 302
    changed = AuditEvent.objects.get(action="user.password_change")
    assert (changed.actor, changed.object_id, changed.after) == (
        root,
        erin.object_id,
        {"password": "[redacted]"},
    )
    assert "N3w-secret!y" not in _event_text()
    assert "S3cret-pass!x" not in _event_text()
    assert "pbkdf2" not in _event_text()


def test_a_bulk_delete_of_budgets_audits_each(client, root, team, other_team):
    budgets = [
        Budget.objects.create(team=t, limit_usd="10", period_start="2026-11-01T00:00:00Z")
        for t in (team, other_team)
    ]
    response = client.post(
        "/admin/spend/budget/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [b.pk for b in budgets]},
    )
    assert response.status_code == 302
    events = AuditEvent.objects.filter(action="budget.delete")
    assert sorted(e.object_id for e in events) == sorted(str(b.pk) for b in budgets)
    assert {e.team for e in events} == {team, other_team}
    assert Decimal(events[0].before["limit_usd"]) == Decimal("10")


def test_a_webhook_url_shows_as_changed_but_not_its_value(client, root):
    target = AlertTarget.objects.create(
        name="ops", webhook_url="https://hooks.example.com/services/T0/B0/old-token"
    )
    url = f"/admin/spend/alerttarget/{target.pk}/change/"
    data = _change_page_data(client, url)
    data["webhook_url"] = "https://hooks.example.com/services/T0/B0/new-token"
    _post(client, url, data)
    event = AuditEvent.objects.get(action="alert_target.update")
    assert (event.before, event.after) == (
        {"webhook_url": "[redacted]"},
        {"webhook_url": "[redacted]"},
    )
    assert "token" not in _event_text()


def test_a_role_change_on_a_user_is_audited_as_group_keys(client, root, bob):
    from django.contrib.auth.models import Group

    finance = Group.objects.get_or_create(name="finance")[0]
    before = sorted(bob.groups.values_list("pk", flat=True))
    url = f"/admin/accounts/user/{bob.pk}/change/"
    data = _change_page_data(client, url)
    data["groups"] = [str(pk) for pk in [*before, finance.pk]]
    _post(client, url, data)
    event = AuditEvent.objects.get(action="user.update")
    assert (event.before, event.after) == (
        {"groups": before},
        {"groups": sorted([*before, finance.pk])},
    )
    assert bob.groups.filter(name="finance").exists()
