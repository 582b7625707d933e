from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import ApiKey, Team, User
from accounts.services import hash_key
from prompts.models import Label, Prompt
from routing.models import Model, Policy, Tier


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_prints_the_admin_password_once_and_is_idempotent():
    first = _seed()
    assert "password '" in first
    password = first.split("password '")[1].split("'")[0]
    assert User.objects.get(username="admin").check_password(password)
    second = _seed()
    assert "password" not in second.split("admin user")[0]
    assert User.objects.filter(username="admin").count() == 1
    assert Model.objects.count() == 8
    assert Prompt.objects.filter(team__slug="demo").count() == 4


@pytest.mark.django_db
def test_seed_demo_loads_the_real_prices_and_four_tiers():
    _seed()
    mini = Model.objects.get(name="gpt-5.4-mini").prices.get()
    assert (mini.input_per_mtok, mini.cached_input_per_mtok, mini.output_per_mtok) == (
        Decimal("0.75"),
        Decimal("0.075"),
        Decimal("4.50"),
    )
    terra = Model.objects.get(name="gpt-6.1-terra").prices.get()
    assert terra.cache_write_per_mtok == Decimal("1.25")
    assert list(Tier.objects.values_list("name", flat=True)) == [
        "nano",
        "mini",
        "flagship",
        "reasoning",
    ]
    primaries = {t.name: t.members.get(position=0).model.name for t in Tier.objects.all()}
    assert primaries == {
        "nano": "gpt-5.4-nano",
        "mini": "gpt-5.4-mini",
        "flagship": "gpt-5.4",
        "reasoning": "gpt-5.5",
    }
    assert Policy.objects.get(is_active=True).rules.count() == 4


@pytest.mark.django_db
def test_seed_demo_publishes_the_sample_prompts_to_production():
    _seed()
    slugs = set(
        Label.objects.filter(name="production", prompt__team__slug="demo").values_list(
            "prompt__slug", flat=True
        )
    )
    assert slugs == {"support-triage", "invoice-extract", "meeting-summary", "deep-analysis"}


@pytest.mark.django_db
def test_create_api_key_prints_the_key_alone_on_the_last_line():
    Team.objects.create(slug="demo", name="Demo")
    out = StringIO()
    call_command("create_api_key", "--team", "demo", "--name", "ci", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("sb_")
    key = ApiKey.objects.get(name="ci")
    assert key.hashed_key == hash_key(raw)
    assert raw not in (key.prefix, key.hashed_key)
