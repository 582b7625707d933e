from __future__ import annotations

from playground import checks

SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["bug", "billing"]}},
    "required": ["category"],
}


def test_json_in_a_code_fence_is_read():
    assert checks.parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert not checks.is_json(checks.parse_json("not json"))


def test_json_output_is_pretty_printed_and_text_is_left_alone():
    assert checks.pretty('{"a":1,"b":[1,2]}') == '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}'
    assert checks.pretty("plain words") == "plain words"


def test_json_verdict_names_the_schema_error():
    ok = checks.json_verdict('{"category": "bug"}', SCHEMA)
    assert (ok.json_valid, ok.schema_valid, ok.error) == (True, True, "")
    wrong = checks.json_verdict('{"category": "refund"}', SCHEMA)
    assert (wrong.json_valid, wrong.schema_valid) == (True, False)
    assert "category" in wrong.error
    assert "refund" in wrong.error
    broken = checks.json_verdict("{category: bug", SCHEMA)
    assert (broken.json_valid, broken.schema_valid) == (False, False)
    assert checks.json_verdict("anything", None).json_valid is None


def test_outputs_agree_compares_json_as_values_and_text_loosely():
    assert checks.outputs_agree('{"a": 1, "b": 2}', '{"b":2,"a":1}')
    assert not checks.outputs_agree('{"a": 1}', '{"a": 2}')
    assert checks.outputs_agree("Hello   World\n", "hello world")
    assert not checks.outputs_agree("hello", "goodbye")


def test_each_configured_check_runs_and_missing_expected_is_skipped():
    config = checks.CheckConfig.build(
        has_expected=True, schema=SCHEMA, contains="bug", regex=r'"category":\s*"\w+"'
    )
    run = checks.run_checks('{"category": "bug"}', expected='{"category":"bug"}', config=config)
    assert run.results == {
        "exact": True,
        "json": True,
        "schema": True,
        "contains": True,
        "regex": True,
    }
    assert run.error == ""
    assert checks.passed(run.results) is True
    results = checks.run_checks('{"category": "billing"}', expected=None, config=config).results
    assert "exact" not in results
    assert results["contains"] is False
    assert checks.passed(results) is False
    assert checks.passed({}) is None


def test_a_catastrophic_regex_fails_its_check_with_the_reason_instead_of_hanging():
    config = checks.CheckConfig.build(has_expected=False, schema=None, regex=r"(a|aa)+$")
    # re.search would take ~2^60 steps here; the engine stops after SEARCH_TIMEOUT_SECONDS
    run = checks.run_checks("a" * 60 + "b", expected=None, config=config)
    assert run.results == {"regex": False}
    assert "took longer than" in run.error
    assert checks.passed(run.results) is False


def test_nested_quantifiers_the_engine_handles_get_a_plain_answer():
    config = checks.CheckConfig.build(has_expected=False, schema=None, regex=r"(a+)+$")
    assert checks.run_checks("a" * 40 + "b", expected=None, config=config).results == {
        "regex": False
    }
    assert checks.run_checks("a" * 40, expected=None, config=config).results == {"regex": True}


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert checks.percentile(values, 50) == 50
    assert checks.percentile(values, 95) == 95
    assert checks.percentile(values, 100) == 100
    assert checks.percentile([7], 95) == 7
    assert checks.percentile([], 95) is None
