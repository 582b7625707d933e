"""The demo catalog: DESIGN.md's models and prices, the four tiers and the default policy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import urlsplit

from django.db import transaction

from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel

# Prices per 1M tokens: input, cached input, cache write (None: bills as input), output.
SEED_MODELS = [
    # name, tier, input, cached, cache write, output, capabilities
    (
        "gpt-5.4-nano",
        "nano",
        "0.20",
        "0.02",
        None,
        "1.25",
        {"tool_search": False, "computer_use": False},
    ),
    (
        "gpt-5.4-mini",
        "mini",
        "0.75",
        "0.075",
        None,
        "4.50",
        {"tool_search": True, "computer_use": False},
    ),
    (
        "gpt-5.4",
        "flagship",
        "2.50",
        "0.25",
        None,
        "15.00",
        {"tool_search": True, "computer_use": True},
    ),
    (
        "gpt-5.5",
        "reasoning",
        "5.00",
        "0.50",
        None,
        "30.00",
        {"tool_search": True, "computer_use": True},
    ),
    (
        "gpt-6-luna",
        "nano",
        "0.10",
        "0.01",
        None,
        "0.50",
        {"tool_search": False, "computer_use": False},
    ),
    (
        "gpt-6.1-terra",
        "mini",
        "1.00",
        "0.05",
        "1.25",
        "5.00",
        {"tool_search": True, "computer_use": False},
    ),
    (
        "gpt-6.1-sol",
        "flagship",
        "2.00",
        "0.10",
        "2.50",
        "10.00",
        {"tool_search": True, "computer_use": True},
    ),
    (
        "gpt-6-astra",
        "reasoning",
        "10.00",
        "1.00",
        None,
        "50.00",
        {"tool_search": True, "computer_use": True},
    ),
]
TIERS = [
    ("nano", 0, "Cheapest, for tiny classification and routing tasks", "", "gpt-5.4-nano"),
    ("mini", 1, "Compact model: extraction, summarization, classification", "", "gpt-5.4-mini"),
    ("flagship", 2, "Flagship model for open-ended generation", "", "gpt-5.4"),
    ("reasoning", 3, "Flagship with high reasoning effort", "high", "gpt-5.5"),
]
# Fallback: the next model of the same tier (the late-2026 family).
FALLBACKS = {
    "nano": "gpt-6-luna",
    "mini": "gpt-6.1-terra",
    "flagship": "gpt-6.1-sol",
    "reasoning": "gpt-6-astra",
}
# Lifecycle: the gpt-5.4 family shuts down on 2026-12-11. Each is replaced by the late-2026
# model of the same tier (our choice, by tier and price band; the provider names none):
# nano → gpt-6-luna, mini → gpt-6.1-terra, flagship → gpt-6.1-sol, reasoning → gpt-6-astra.
SHUTDOWN_DATE = dt.date(2026, 12, 11)
REPLACEMENTS = {
    "gpt-5.4-nano": "gpt-6-luna",
    "gpt-5.4-mini": "gpt-6.1-terra",
    "gpt-5.4": "gpt-6.1-sol",
    "gpt-5.5": "gpt-6-astra",
}
PRICES_EFFECTIVE_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LONG_CONTEXT_THRESHOLD = 272_000


@transaction.atomic
def _is_simulator_url(url: str) -> bool:
    """A simulator's address on this machine (what an earlier seed wrote), as opposed to an
    upstream an operator chose."""
    parts = urlsplit(url)
    return (
        parts.scheme == "http"
        and parts.hostname in {"127.0.0.1", "localhost", "::1"}
        and parts.path.rstrip("/") == "/v1"
    )


def seed_provider(*, simulator_url: str) -> Provider:
    """The demo provider, pointed at the simulator: created if missing; moved to
    `simulator_url` only while it still points at a local simulator, so an operator's
    upstream (say, the real API) survives every seed."""
    provider, created = Provider.objects.get_or_create(
        name="openai", defaults={"base_url": simulator_url, "api_key_env": "OPENAI_API_KEY"}
    )
    if not created and provider.base_url != simulator_url and _is_simulator_url(provider.base_url):
        provider.base_url = simulator_url
        provider.save(update_fields=["base_url", "updated_at"])
    return provider


def seed_catalog(*, simulator_url: str) -> None:
    """Create what is missing of the demo catalog; never change what exists (an operator's
    edits win), except the simulator's address (see seed_provider)."""
    provider = seed_provider(simulator_url=simulator_url)
    tiers = {}
    for name, rank, description, effort, _primary in TIERS:
        tiers[name], _ = Tier.objects.get_or_create(
            name=name,
            defaults={"rank": rank, "description": description, "reasoning_effort": effort},
        )
    models = {}
    for name, tier, inp, cached, write, out, caps in SEED_MODELS:
        models[name], _ = Model.objects.get_or_create(
            name=name,
            defaults={
                "provider": provider,
                "tier": tiers[tier],
                "context_window": 400_000,
                "max_output_tokens": 128_000,
                "supports_tool_search": caps["tool_search"],
                "supports_computer_use": caps["computer_use"],
            },
        )
        Price.objects.get_or_create(
            model=models[name],
            effective_from=PRICES_EFFECTIVE_FROM,
            defaults={
                "input_per_mtok": Decimal(inp),
                "cached_input_per_mtok": Decimal(cached),
                "cache_write_per_mtok": Decimal(write) if write else None,
                "output_per_mtok": Decimal(out),
                "long_context_threshold": LONG_CONTEXT_THRESHOLD,
                "long_context_input_multiplier": Decimal("2"),
                "long_context_output_multiplier": Decimal("1.5"),
                "source": "seed",
            },
        )
    for name, replacement in REPLACEMENTS.items():
        # Only fill a blank lifecycle: an operator's later edit wins over the seed.
        Model.objects.filter(name=name, shutdown_date=None).update(
            shutdown_date=SHUTDOWN_DATE, replacement=models[replacement]
        )
    for name, _rank, _description, _effort, primary in TIERS:
        if not TierModel.objects.filter(tier=tiers[name]).exists():
            TierModel.objects.create(tier=tiers[name], model=models[primary], position=0)
            TierModel.objects.create(tier=tiers[name], model=models[FALLBACKS[name]], position=1)
    _seed_default_policy(tiers)
    seed_classifier()


def _seed_default_policy(tiers: dict[str, Tier]) -> None:
    if Policy.objects.filter(name="default").exists():
        return
    policy = Policy.objects.create(
        name="default",
        description="Routine tasks to mini, reasoning to the reasoning tier, the rest by the classifier.",
        is_active=not Policy.objects.filter(is_active=True).exists(),
    )
    rules = [
        (
            "Computer use needs flagship",
            {"tool_types": ["computer_use"]},
            Rule.Action.TIER,
            "flagship",
        ),
        (
            "Routine tasks to mini",
            {"task_tags": ["classification", "extraction", "summarization", "routing"]},
            Rule.Action.TIER,
            "mini",
        ),
        ("Reasoning tasks", {"task_tags": ["reasoning"]}, Rule.Action.TIER, "reasoning"),
        ("Everything else: classifier", {}, Rule.Action.CLASSIFY, None),
    ]
    for position, (name, conditions, action, tier) in enumerate(rules):
        Rule.objects.create(
            policy=policy,
            position=position,
            name=name,
            action=action,
            target_tier=tiers[tier] if tier else None,
            escalate_on_failed_check=action == Rule.Action.TIER and tier == "mini",
            **conditions,
        )


def seed_classifier() -> None:
    """The `tier-classifier` prompt (policy action `classify`), in the `platform` team.

    It is an ordinary prompt, so it is edited, versioned and published like any other; the
    `platform` team owns the prompts Switchboard itself runs. Idempotent."""
    from accounts.models import Team
    from prompts.models import Label, Prompt
    from prompts.services import label_move, prompt_create, prompt_version_create
    from routing.classifier import PLATFORM_TEAM_SLUG, PROMPT_SPEC

    team, _ = Team.objects.get_or_create(
        slug=PLATFORM_TEAM_SLUG, defaults={"name": "Platform (Switchboard's own prompts)"}
    )
    if Prompt.objects.filter(team=team, slug=PROMPT_SPEC["slug"]).exists():
        return
    prompt = prompt_create(
        team=team,
        slug=PROMPT_SPEC["slug"],
        name=PROMPT_SPEC["name"],
        task_tag=PROMPT_SPEC["task_tag"],
        description=PROMPT_SPEC["description"],
        actor=None,
    )
    version = prompt_version_create(
        prompt=prompt,
        author=None,
        system_template=PROMPT_SPEC["system_template"],
        user_template=PROMPT_SPEC["user_template"],
        variables=PROMPT_SPEC["variables"],
        tier=PROMPT_SPEC["tier"],
        max_output_tokens=PROMPT_SPEC["max_output_tokens"],
        response_schema=PROMPT_SPEC["response_schema"],
        change_note="Seeded by Switchboard",
    )
    label_move(prompt=prompt, label=Label.PRODUCTION, version=version, actor=None)
