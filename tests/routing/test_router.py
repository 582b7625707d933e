"""The router is a pure function: these tests build snapshots by hand, no database."""

from __future__ import annotations

import pytest

from routing.router import (
    RequestFeatures,
    Skipped,
    UnknownModel,
    UnsupportedCapability,
    downgrade,
    estimate_tokens,
    route,
    rule_matches,
)
from routing.snapshot import (
    CAPABILITIES,
    MetadataCondition,
    ModelInfo,
    ProviderInfo,
    RuleInfo,
    Snapshot,
    TierInfo,
)

PROVIDER = ProviderInfo(
    id=1, name="openai", base_url="http://x/v1", api_key_env="", timeout_seconds=60
)
BASIC = frozenset({"tools", "json_schema", "vision", "reasoning"})


def model(name: str, tier: str, *extra: str, without: tuple[str, ...] = ()) -> ModelInfo:
    return ModelInfo(
        id=hash(name) % 10_000,
        name=name,
        provider=PROVIDER,
        tier=tier,
        context_window=400_000,
        max_output_tokens=128_000,
        capabilities=(BASIC | set(extra)) - set(without),
        timeout_seconds=60,
        shutdown_date=None,
    )


NANO = model("nano-1", "nano")
NANO_2 = model("nano-2", "nano")
MINI = model("mini-1", "mini", "tool_search")
FLAGSHIP = model("flag-1", "flagship", "tool_search", "computer_use")
REASONING = model("reason-1", "reasoning", "tool_search", "computer_use")
TIERS = (
    TierInfo("nano", 0, "", (NANO, NANO_2)),
    TierInfo("mini", 1, "", (MINI,)),
    TierInfo("flagship", 2, "", (FLAGSHIP,)),
    TierInfo("reasoning", 3, "high", (REASONING,)),
)


def snapshot(*rules: RuleInfo) -> Snapshot:
    models = {m.name: m for tier in TIERS for m in tier.models}
    return Snapshot(tiers=TIERS, models=models, rules=rules, policy_name="test")


def rule(name: str, action: str = "tier", target: str | None = "mini", **conditions) -> RuleInfo:
    return RuleInfo(
        id=abs(hash(name)) % 1000,
        name=name,
        position=0,
        action=action,
        target_tier=target if action == "tier" else None,
        target_model=target if action == "model" else None,
        **conditions,
    )


def test_the_first_matching_rule_wins_and_names_itself():
    policy = snapshot(
        rule("classification to nano", target="nano", task_tags=frozenset({"classification"})),
        rule("everything to flagship", target="flagship"),
    )

    decision = route(RequestFeatures(task_tag="classification"), policy)

    assert decision.tier == "nano"
    assert decision.rule == "classification to nano"
    assert "classification to nano" in decision.reason
    assert [m.name for m in decision.plan[0].models] == ["nano-1", "nano-2"]


def test_a_rule_that_does_not_match_lets_the_next_one_decide():
    policy = snapshot(
        rule("extraction to nano", target="nano", task_tags=frozenset({"extraction"})),
        rule("everything to flagship", target="flagship"),
    )

    assert route(RequestFeatures(task_tag="summarization"), policy).tier == "flagship"


def test_no_matching_rule_falls_back_to_the_default_tier():
    decision = route(RequestFeatures(), snapshot())

    assert decision.tier == "mini"
    assert decision.rule == "default"
    assert decision.allow_tier_fallback


def test_the_plan_lists_the_tiers_above_for_escalation():
    policy = snapshot(rule("to mini", target="mini", escalate_on_failed_check=True))

    decision = route(RequestFeatures(), policy)

    assert [plan.tier for plan in decision.plan] == ["mini", "flagship", "reasoning"]
    assert decision.escalate_on_failed_check


@pytest.mark.parametrize(
    ("conditions", "features", "matches"),
    [
        ({"team_id": 7}, RequestFeatures(team_id=7), True),
        ({"team_id": 7}, RequestFeatures(team_id=8), False),
        ({"prompt_id": 3}, RequestFeatures(prompt_id=3), True),
        ({"min_input_tokens": 100}, RequestFeatures(estimated_input_tokens=99), False),
        ({"min_input_tokens": 100}, RequestFeatures(estimated_input_tokens=100), True),
        ({"max_input_tokens": 100}, RequestFeatures(estimated_input_tokens=101), False),
        ({"tools_present": True}, RequestFeatures(), False),
        ({"tools_present": True}, RequestFeatures(tool_types=frozenset({"function"})), True),
        ({"tools_present": False}, RequestFeatures(), True),
        (
            {"tool_types": frozenset({"computer_use"})},
            RequestFeatures(tool_types=frozenset({"function"})),
            False,
        ),
        (
            {"tool_types": frozenset({"computer_use"})},
            RequestFeatures(tool_types=frozenset({"function", "computer_use"})),
            True,
        ),
        (
            {"required_capability": "vision"},
            RequestFeatures(required_capabilities=frozenset({"vision"})),
            True,
        ),
        ({"required_capability": "vision"}, RequestFeatures(), False),
    ],
)
def test_each_rule_condition_must_hold(conditions, features, matches):
    assert rule_matches(rule("r", **conditions), features) is matches


@pytest.mark.parametrize(
    ("op", "expected", "actual", "matches"),
    [
        ("eq", "eu", "eu", True),
        ("eq", "eu", "us", False),
        ("eq", 3, "3", True),
        ("in", ["eu", "uk"], "uk", True),
        ("in", ["eu", "uk"], "us", False),
        ("gt", 10, 11, True),
        ("gt", 10, "10", False),
        ("lt", 10, "9.5", True),
        ("lt", 10, "not a number", False),
        ("regex", r"^acme-\d+$", "acme-42", True),
        ("regex", r"^acme-\d+$", "acme", False),
        ("regex", "(", "anything", False),  # a broken pattern never matches
        ("regex", r"(a|aa)+$", "a" * 60 + "b", False),  # nor one that runs out of time
    ],
)
def test_metadata_conditions(op, expected, actual, matches):
    condition = MetadataCondition(key="k", op=op, value=expected)
    features = RequestFeatures(metadata={"k": actual})

    assert rule_matches(rule("r", metadata_conditions=(condition,)), features) is matches


def test_a_metadata_condition_on_a_missing_key_does_not_match():
    condition = MetadataCondition(key="region", op="eq", value="eu")

    assert not rule_matches(rule("r", metadata_conditions=(condition,)), RequestFeatures())


def test_a_classify_rule_asks_for_the_classifier_then_follows_its_answer():
    policy = snapshot(rule("classify", action="classify", target=None))

    pending = route(RequestFeatures(), policy)
    decided = route(
        RequestFeatures(), policy, classified_tier="flagship", classifier_reason="open-ended"
    )

    assert pending.needs_classifier
    assert pending.plan == ()
    assert decided.tier == "flagship"
    assert "classifier chose flagship (open-ended)" in decided.reason


def test_a_model_without_a_required_capability_is_never_chosen():
    policy = snapshot(rule("cheap", target="nano"))
    mini_only_search = RequestFeatures(required_capabilities=frozenset({"tool_search"}))

    decision = route(mini_only_search, policy)

    assert decision.tier == "mini"
    assert "moved up to mini" in decision.reason
    every_model = [m for plan in decision.plan for m in plan.models]
    assert all("tool_search" in m.capabilities for m in every_model)
    assert [s.as_dict() for s in decision.skipped] == [
        {"tier": "nano", "model": "nano-1", "reason": "no tool_search"},
        {"tier": "nano", "model": "nano-2", "reason": "no tool_search"},
    ]


def test_a_request_every_model_serves_records_no_skipped_candidate():
    assert route(RequestFeatures(), snapshot(rule("cheap", target="nano"))).skipped == ()


def test_computer_use_skips_every_tier_without_it():
    policy = snapshot(rule("cheap", target="nano"))
    features = RequestFeatures(
        tool_types=frozenset({"computer_use"}),
        required_capabilities=frozenset({"tools", "computer_use"}),
    )

    decision = route(features, policy)

    assert decision.tier == "flagship"
    assert [plan.tier for plan in decision.plan] == ["flagship", "reasoning"]


def test_a_capability_no_model_has_is_a_clear_error():
    features = RequestFeatures(required_capabilities=frozenset({"teleportation"}))

    with pytest.raises(UnsupportedCapability, match="teleportation"):
        route(features, snapshot())


def test_a_pinned_tier_lacking_a_capability_is_refused_not_moved():
    features = RequestFeatures(
        requested="tier:mini", required_capabilities=frozenset({"computer_use"})
    )

    with pytest.raises(UnsupportedCapability):
        route(features, snapshot())


def test_a_pinned_tier_keeps_its_fallback_models_but_no_other_tier():
    decision = route(RequestFeatures(requested="tier:nano"), snapshot(rule("x", target="flagship")))

    assert decision.rule == "pinned"
    assert [plan.tier for plan in decision.plan] == ["nano"]
    assert [m.name for m in decision.plan[0].models] == ["nano-1", "nano-2"]
    assert not decision.allow_tier_fallback


def test_a_pinned_model_is_used_alone():
    decision = route(RequestFeatures(requested="flag-1", pinned_by="prompt version"), snapshot())

    assert decision.model is FLAGSHIP
    assert decision.plan[0].models == (FLAGSHIP,)
    assert decision.reason == "model flag-1 set by the prompt version"


def test_unknown_models_and_tiers_are_refused_with_model_not_found():
    with pytest.raises(UnknownModel) as unknown_model:
        route(RequestFeatures(requested="gpt-9000"), snapshot())
    with pytest.raises(UnknownModel):
        route(RequestFeatures(requested="tier:platinum"), snapshot())

    assert unknown_model.value.code == "model_not_found"
    assert unknown_model.value.param == "model"
    assert unknown_model.value.status == 400


def test_a_pinned_model_lacking_a_capability_is_refused():
    features = RequestFeatures(
        requested="mini-1", required_capabilities=frozenset({"computer_use"})
    )

    with pytest.raises(UnsupportedCapability, match="computer_use"):
        route(features, snapshot())


def test_a_model_rule_is_skipped_when_its_model_lacks_a_capability():
    policy = snapshot(
        rule("to mini model", action="model", target="mini-1"), rule("else", target="flagship")
    )
    features = RequestFeatures(required_capabilities=frozenset({"computer_use"}))

    decision = route(features, policy)

    assert decision.tier == "flagship"
    assert decision.skipped[0] == Skipped(
        "mini", "mini-1", "rule 'to mini model' skipped: no computer_use"
    )


def test_downgrade_moves_to_a_cheaper_tier_and_says_why():
    decision = route(RequestFeatures(), snapshot(rule("to flagship", target="flagship")))

    lowered = downgrade(
        decision, "nano", snapshot(), RequestFeatures(), "team budget limit reached"
    )

    assert lowered is not None
    assert lowered.tier == "nano"
    assert lowered.reason.endswith("team budget limit reached: downgraded from flagship to nano")
    assert len(lowered.plan) == 1
    assert lowered.skipped == (
        Skipped("flagship", "", "team budget limit reached: downgraded to nano"),
    )


def test_downgrade_refuses_a_tier_that_is_not_cheaper_or_lacks_a_capability():
    decision = route(RequestFeatures(), snapshot(rule("to mini", target="mini")))
    search = RequestFeatures(required_capabilities=frozenset({"tool_search"}))

    assert downgrade(decision, "flagship", snapshot(), RequestFeatures(), "why") is None
    assert downgrade(decision, "nano", snapshot(), search, "why") is None
    assert downgrade(decision, "platinum", snapshot(), RequestFeatures(), "why") is None


def test_estimate_tokens_is_about_four_characters_per_token():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000) == 1000


def test_capability_names_are_the_catalog_flags():
    assert {
        "tools",
        "tool_search",
        "computer_use",
        "json_schema",
        "vision",
        "reasoning",
    } == CAPABILITIES
