"""Cost levers in a real browser (#18): the usage page's savings split by lever, with the
prompt-caching table, and the prompt editor's cacheable-prefix estimate and warning."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, create_users, screenshot

# Team `levers` (its own, so that other modules' usage in `demo` does not move the figures)
# with one record per lever; the hand-computed figures are tests/spend/test_savings_split.py's.
_SETUP = """
import datetime as dt
from django.utils import timezone
from accounts.models import Team
from prompts.models import Prompt, PromptVersion
from routing.models import Model
from spend.models import UsageRecord
from spend.pricing import cost_usd, price_at
team, _ = Team.objects.get_or_create(slug="levers", defaults={"name": "Levers"})
at = timezone.now() - dt.timedelta(minutes=5)
def version(slug):
    prompt, _ = Prompt.objects.get_or_create(team=team, slug=slug, defaults={"name": slug})
    return prompt.versions.first() or PromptVersion.objects.create(
        prompt=prompt, number=1, user_template="{{ x }}")
rows = [
    ("triage", "gpt-5.4-mini", "mini", "batch", 10000, 4000, 2000),
    ("summary", "gpt-5.4-mini", "mini", "flex", 2000, 0, 1000),
    ("triage", "gpt-5.4", "flagship", "default", 8000, 6000, 500),
    (None, "gpt-5.4-nano", "nano", "priority", 1000, 0, 100),
]
if not UsageRecord.objects.filter(team=team).exists():
    for n, (slug, name, tier, service_tier, tokens_in, cached, tokens_out) in enumerate(rows):
        model = Model.objects.get(name=name)
        UsageRecord.objects.create(
            created_at=at, request_id=f"req_levers_{n}", team=team,
            prompt_version=version(slug) if slug else None, model=model, model_name=name,
            tier_name=tier, service_tier=service_tier, input_tokens=tokens_in,
            cached_input_tokens=cached, output_tokens=tokens_out, latency_ms=700,
            cost_usd=cost_usd(price=price_at(model, at), input_tokens=tokens_in,
                cached_input_tokens=cached, output_tokens=tokens_out, service_tier=service_tier))
demo = Team.objects.get(slug="demo")
prompt, made = Prompt.objects.get_or_create(team=demo, slug="cache-prefix",
    defaults={"name": "Cache prefix"})
if made:
    PromptVersion.objects.create(prompt=prompt, number=1, system_template="You help.",
        user_template="Question: {{ question }}",
        variables=[{"name": "question", "type": "string", "required": True}])
"""

RULES = "".join(f"{n}. Answer in plain words and cite the policy, point {n}.\n" for n in range(80))


@pytest.fixture(scope="module")
def levers(e2e_server: E2EServer) -> None:
    e2e_server.shell(_SETUP)
    create_users(e2e_server, {"lever": (("team_member",), "levers")})


def usd(page: Page, test_id: str) -> Decimal:
    return Decimal(page.get_by_test_id(test_id).locator(".money").get_attribute("data-usd"))


def test_the_usage_page_splits_saved_by_lever(logged_in_page, levers):
    page = logged_in_page("lever")
    page.goto("/usage/?range=7d")  # the team's only records are minutes old
    split = page.get_by_test_id("savings-split")
    expect(split).to_be_visible()
    assert usd(page, "saved-routing") == Decimal("0.03045")
    assert usd(page, "saved-batch") == Decimal("0.0099")
    assert usd(page, "saved-cache") == Decimal("0.01485")
    assert usd(page, "saved-total") == Decimal("0.0552")
    expect(split).to_contain_text("47.6% of input was cached")

    caching = page.get_by_test_id("caching-table")
    first = caching.locator("tbody tr").first
    expect(first).to_contain_text("levers/triage · gpt-5.4")
    expect(first.get_by_test_id("cached-share")).to_have_text("75.0%")
    split.scroll_into_view_if_needed()
    screenshot(page, "usage-savings-by-lever")
    caching.scroll_into_view_if_needed()
    screenshot(page, "usage-prompt-caching")


def test_the_editor_warns_about_a_variable_ahead_of_the_static_text(logged_in_page, levers):
    page = logged_in_page("pm")
    page.goto("/prompts/demo/cache-prefix/edit/")
    estimate = page.get_by_test_id("prefix-estimate")
    system = page.get_by_test_id("system-template")

    system.fill("{{ customer_name }} is the customer.\nRules:\n" + RULES)
    warning = page.get_by_test_id("prefix-warning")
    expect(warning).to_contain_text("{{ customer_name }} (system) comes before")
    expect(warning).to_contain_text("tokens of static text")
    expect(estimate).to_contain_text("of which about 0 cacheable")
    screenshot(page, "editor-prefix-warning")

    # the variable moved after the static text: no warning, and the prefix is cacheable
    system.fill("Rules:\n" + RULES + "The customer is {{ customer_name }}.")
    expect(warning).to_be_hidden()
    expect(estimate).not_to_contain_text("of which about 0 cacheable")
    assert page.get_by_test_id("var-customer_name").is_visible()
