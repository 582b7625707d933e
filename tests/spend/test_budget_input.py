"""A budget limit that is not a finite, non-negative amount the ledger can hold (NaN,
Infinity, 1e30, negative) is a field error on every way in: the service, `set_budget`, the
admin; the admin's key form refuses integers its columns cannot hold. Never a 500 or a
traceback, and nothing saved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts.services import api_key_create
from core.errors import BadRequest
from spend.budgets import budget_set
from spend.models import Budget
from tests.core.test_admin_audit import _change_page_data

pytestmark = pytest.mark.django_db

BAD_LIMITS = ["NaN", "Infinity", "-Infinity", "1e30", "-5", "sNaN"]


@pytest.fixture
def root(db, django_user_model, client):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


@pytest.mark.parametrize("limit", BAD_LIMITS)
def test_the_service_refuses_a_limit_that_is_not_a_real_amount(team, limit):
    with pytest.raises(BadRequest) as caught:
        budget_set(team=team, limit_usd=Decimal(limit))
    assert caught.value.param == "limit_usd"
    assert not Budget.objects.exists()


@pytest.mark.parametrize("limit", ["100000000.0000000001", "1000000000"])
def test_a_limit_above_the_ceiling_is_refused_with_the_ceiling_named(team, limit):
    """$100M: a budget's counters stay within SQLite's 64-bit integer units ($922M)."""
    with pytest.raises(BadRequest) as caught:
        budget_set(team=team, limit_usd=Decimal(limit))
    assert caught.value.param == "limit_usd"
    assert caught.value.message == (
        "The limit must be at most $100,000,000.00 (the largest budget limit)."
    )
    assert caught.value.status == 400
    assert not Budget.objects.exists()


def test_a_limit_at_the_ceiling_is_kept_to_the_last_place(team):
    budget_set(team=team, limit_usd=Decimal("99999999.9999999999"))
    assert Budget.objects.get().limit_usd == Decimal("99999999.9999999999")
    budget_set(team=team, limit_usd=Decimal("100000000"))
    assert Budget.objects.get().limit_usd == Decimal("100000000")


@pytest.mark.parametrize("limit", [*BAD_LIMITS, "ten", "1e999999999"])
def test_set_budget_answers_a_bad_limit_with_a_message(team, limit):
    with pytest.raises(CommandError):
        call_command("set_budget", "--team", team.slug, "--limit", limit)
    assert not Budget.objects.exists()


def test_set_budget_refuses_a_soft_threshold_that_is_not_a_fraction(team):
    for soft in ("NaN", "Infinity", "2"):
        with pytest.raises(CommandError):
            call_command(
                "set_budget", "--team", team.slug, "--limit", "10", "--soft-threshold", soft
            )
    assert not Budget.objects.exists()


@pytest.mark.parametrize("limit", ["NaN", "Infinity", "1e30", "-5", "100000000.01"])
def test_the_admin_budget_form_gives_a_field_error(client, root, team, limit):
    url = "/admin/spend/budget/add/"
    data = {**_change_page_data(client, url), "team": team.pk, "limit_usd": limit}
    data.setdefault("period", "monthly")
    data.setdefault("action", "block")
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["limit_usd"]
    assert not Budget.objects.exists()


@pytest.mark.parametrize("value", [str(10**30), "-1", "1e3"])
def test_the_admin_key_form_refuses_integers_its_columns_cannot_hold(client, root, team, value):
    key, _ = api_key_create(team=team, name="k")
    url = f"/admin/accounts/apikey/{key.pk}/change/"
    data = {**_change_page_data(client, url), "rate_limit_rpm": value}
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["rate_limit_rpm"]
    key.refresh_from_db()
    assert key.rate_limit_rpm is None
