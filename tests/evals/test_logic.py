"""Pure evaluation logic: the position-swap rule, judge prompts, field normalizers, the
statistics against hand-computed figures, and the simulator's planted quality and judge."""

from __future__ import annotations

import json

import pytest

from core.stats import cohen_kappa, wilson_lower_bound
from evals import judge
from evals.fields import compare_fields
from evals.judge import Task
from simulator import judge as sim_judge
from simulator import quality
from tests.playground.conftest import TRIAGE_SCHEMA

# --- position swap and the tie rule -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cheap_first", "reference_first", "outcome"),
    [
        ("A", "B", "cheap"),  # both orders pick the cheap answer
        ("B", "A", "reference"),  # both orders pick the reference
        ("A", "A", "tie"),  # position bias: each order picks its first answer
        ("B", "B", "tie"),  # each order picks its second answer
        ("A", "tie", "tie"),
        ("tie", "B", "tie"),
        ("tie", "tie", "tie"),
    ],
)
def test_a_win_counts_only_when_both_orders_agree(cheap_first, reference_first, outcome):
    assert judge.combine(cheap_first, reference_first) == outcome


def test_an_unreadable_verdict_is_a_tie_with_the_text_as_its_reason():
    assert judge.parse_verdict('{"verdict": "A", "reason": "complete"}') == ("A", "complete")
    verdict, reason = judge.parse_verdict("I prefer A")
    assert verdict == "tie"
    assert "I prefer A" in reason
    assert judge.parse_score('{"score": 9, "reason": "x"}')[0] is None
    assert judge.parse_score('{"score": 4, "reason": "ok"}') == (4, "ok")


def test_the_pairwise_body_asks_for_the_verdict_schema_and_carries_task_and_answers():
    task = Task("Triage.", "Channel: email\nRefund", TRIAGE_SCHEMA)
    body = judge.pairwise_body(rubric="Be strict.", task=task, answer_a="a", answer_b="b")
    assert body["text"]["format"]["schema"] == judge.PAIRWISE_SCHEMA
    assert "Be strict." in body["instructions"]
    payload = json.loads(body["input"][body["input"].index("{") :])
    assert payload == {"task": task.as_dict(), "answers": {"A": "a", "B": "b"}}


# --- json_fields ------------------------------------------------------------------------------


def test_json_fields_compare_after_each_fields_normalizers():
    answer = '{"vendor": "  ACME  Corp", "total": "1,234.50", "due_date": "05/03/2026", "currency": "usd"}'
    reference = (
        '{"vendor": "acme corp", "total": 1234.5, "due_date": "2026-03-05", "currency": "EUR"}'
    )
    results = compare_fields(
        answer,
        reference,
        fields={
            "vendor": ["case", "whitespace"],
            "total": ["numbers"],
            "due_date": ["dates"],
            "currency": ["case"],
        },
    )
    assert {r.name: r.match for r in results} == {
        "vendor": True,
        "total": True,
        "due_date": True,
        "currency": False,
    }
    # without normalizers the same values differ; a missing field never matches
    raw = compare_fields(answer, reference, fields={"vendor": [], "total": []})
    assert [r.match for r in raw] == [False, False]
    assert [r.match for r in compare_fields("{}", reference, fields={})] == [False] * 4
    assert compare_fields(answer, "not json", fields={}) is None


# --- statistics against hand-computed figures -------------------------------------------------


def test_the_wilson_lower_bound_matches_hand_computed_figures():
    # 380/400 = 0.95: (0.95 + 3.8415/800 - 1.96·sqrt(0.95·0.05/400 + 3.8415/640000))
    #   / (1 + 3.8415/400) = (0.954802 - 0.021964) / 1.009604 = 0.92397
    assert wilson_lower_bound(380, 400) == pytest.approx(0.92397, abs=1e-4)
    # 10/10: n / (n + z²) = 10 / 13.8415 = 0.72246
    assert wilson_lower_bound(10, 10) == pytest.approx(0.72246, abs=1e-4)
    # 0/10 is bounded by 0, and no trials give no bound
    assert wilson_lower_bound(0, 10) == 0.0
    assert wilson_lower_bound(0, 0) is None
    with pytest.raises(ValueError):
        wilson_lower_bound(11, 10)


def test_cohens_kappa_matches_a_hand_computed_table():
    # 50 items: both say yes 20, both no 15, judge yes/person no 5, judge no/person yes 10.
    # p_o = 35/50 = 0.7; judge yes 25/50, person yes 30/50; p_e = 0.5·0.6 + 0.5·0.4 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    observed, kappa = cohen_kappa(pairs)
    assert observed == pytest.approx(0.7)
    assert kappa == pytest.approx(0.4)
    # three labels: p_o = 6/8, p_e = (3·3 + 3·2 + 2·3)/64 = 21/64, kappa = (48/64-21/64)/(43/64)
    three = [("a", "a")] * 2 + [("b", "b")] * 2 + [("c", "c")] * 2 + [("a", "b"), ("c", "a")]
    assert cohen_kappa(three)[1] == pytest.approx(27 / 43)
    assert cohen_kappa([("t", "t")] * 4) == (1.0, 1.0)
    assert cohen_kappa([]) is None


# --- the simulator's planted quality and its judge --------------------------------------------

INPUTS = [f"Channel: email\nTicket number {i}: my invoice is wrong" for i in range(2000)]


def _flawed_share(model: str) -> float:
    flawed = sum(
        bool(
            quality.flaws(
                TRIAGE_SCHEMA, text, quality.structured_answer(TRIAGE_SCHEMA, model, (text,))
            )
        )
        for text in INPUTS
    )
    return flawed / len(INPUTS)


def test_cheaper_models_miss_fields_at_their_documented_rates():
    assert _flawed_share("gpt-5.4-nano") == pytest.approx(0.40, abs=0.04)
    assert _flawed_share("gpt-5.4-mini") == pytest.approx(0.15, abs=0.03)
    assert _flawed_share("gpt-5.4") == pytest.approx(0.05, abs=0.02)
    # deterministic per (model, input), and always valid enum values
    text = INPUTS[3]
    answer = quality.structured_answer(TRIAGE_SCHEMA, "gpt-5.4-nano", (text,))
    assert answer == quality.structured_answer(TRIAGE_SCHEMA, "gpt-5.4-nano", (text,))
    assert answer["category"] in TRIAGE_SCHEMA["properties"]["category"]["enum"]


def _ask_judge(task_input: str, a: object, b: object) -> dict:
    payload = {
        "task": {"instructions": "", "input": task_input, "output_schema": TRIAGE_SCHEMA},
        "answers": {"A": json.dumps(a), "B": json.dumps(b)},
    }
    text = "The task and the two answers, as JSON:\n" + json.dumps(payload)
    return json.loads(sim_judge.answer(judge.PAIRWISE_SCHEMA, "gpt-5.4", ("rubric", text)))


def test_the_simulated_judge_finds_the_planted_flaw_in_either_position():
    text = INPUTS[0]
    right = quality.right_answer(TRIAGE_SCHEMA, text)
    wrong_urgency = next(u for u in ("low", "medium", "high") if u != right["urgency"])
    flawed = {**right, "urgency": wrong_urgency}
    first = _ask_judge(text, right, flawed)
    second = _ask_judge(text, flawed, right)
    assert (first["verdict"], second["verdict"]) == ("A", "B")
    assert "urgency" in second["reason"]
    assert judge.combine(first["verdict"], second["verdict"]) == "cheap"


def test_the_simulated_judge_favours_the_first_position_on_some_ties_which_the_swap_undoes():
    verdicts = [
        _ask_judge(text, right, right)["verdict"]
        for text in INPUTS[:400]
        for right in [quality.right_answer(TRIAGE_SCHEMA, text)]
    ]
    assert set(verdicts) == {"A", "tie"}
    biased = verdicts.count("A") / len(verdicts)
    assert biased == pytest.approx(sim_judge.FIRST_POSITION_BIAS, abs=0.06)
    # whatever each order says about two equal answers, the combined outcome is never a win
    for text in INPUTS[:200]:
        right = quality.right_answer(TRIAGE_SCHEMA, text)
        one = _ask_judge(text, right, right)["verdict"]
        two = _ask_judge(text, right, right)["verdict"]
        assert judge.combine(one, two) == "tie"


def test_a_request_that_is_not_a_judgement_gets_an_ordinary_answer():
    assert sim_judge.answer(TRIAGE_SCHEMA, "gpt-5.4", ("hello",)) is None
    assert sim_judge.answer(judge.PAIRWISE_SCHEMA, "gpt-5.4", ("no json here",)) is None
