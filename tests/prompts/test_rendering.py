from __future__ import annotations

import os

import pytest

from core.errors import InvalidVariables, ValidationFailed
from core.sizedcache import SizedCache
from prompts.models import PromptVersion
from prompts.render_pool import NICENESS, _Worker
from prompts.rendering import (
    RenderedPrompt,
    arender_version,
    detect_variables,
    render_version,
    validate_version_templates,
)
from prompts.sandbox import ENV, plan

ALL_TYPES = [
    {"name": "text", "type": "string", "required": True, "max_length": 10},
    {"name": "count", "type": "integer", "default": 3},
    {"name": "ratio", "type": "number"},
    {"name": "loud", "type": "boolean", "default": False},
    {"name": "channel", "type": "enum", "enum": ["email", "chat"], "default": "email"},
    {"name": "items", "type": "list", "max_length": 3},
    {"name": "extra", "type": "json"},
]


def version(**fields) -> PromptVersion:
    """An unsaved version: rendering needs no database."""
    fields.setdefault("system_template", "")
    fields.setdefault("user_template", "")
    fields.setdefault("few_shot", [])
    fields.setdefault("variables", [])
    return PromptVersion(number=1, **fields)


def typed_version() -> PromptVersion:
    return version(
        system_template="Be brief.",
        user_template=(
            "{{ text }}|{{ count + 1 }}|{{ ratio * 2 }}|{{ 'LOUD' if loud else 'quiet' }}|"
            "{{ channel }}|{{ items | join(',') }}|{{ extra.key }}"
        ),
        variables=ALL_TYPES,
    )


def test_it_renders_every_variable_type():
    rendered = render_version(
        typed_version(),
        {
            "text": "hi",
            "count": 4,
            "ratio": 1.5,
            "loud": True,
            "channel": "chat",
            "items": ["a", "b"],
            "extra": {"key": "v"},
        },
    )
    assert rendered.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi|5|3.0|LOUD|chat|a,b|v"},
    ]
    assert rendered.instructions == "Be brief."
    assert rendered.input_messages == [rendered.messages[1]]


def test_defaults_are_applied_and_returned():
    rendered = render_version(
        typed_version(), {"text": "x", "ratio": 2, "items": [], "extra": {"key": 1}}
    )
    assert rendered.variables["count"] == 3
    assert rendered.variables["channel"] == "email"
    assert rendered.variables["loud"] is False
    assert rendered.messages[1]["content"] == "x|4|4|quiet|email||1"


def test_optional_variable_left_out_renders_as_nothing():
    v = version(
        user_template="Q: {{ question }}{% if context %} C: {{ context }}{% endif %}.{{ context }}",
        variables=[
            {"name": "question", "type": "string", "required": True},
            {"name": "context", "type": "string"},
        ],
    )
    assert render_version(v, {"question": "why"}).messages == [
        {"role": "user", "content": "Q: why."}
    ]


def test_invalid_variables_give_one_error_per_bad_field():
    with pytest.raises(InvalidVariables) as caught:
        render_version(
            typed_version(),
            {
                "text": "far too long text",
                "count": "three",
                "ratio": True,
                "loud": "yes",
                "channel": "fax",
                "items": [1, 2, 3, 4],
                "surprise": 1,
            },
        )
    error = caught.value
    assert error.status == 422
    assert error.code == "invalid_variables"
    assert set(error.details) == {
        "text",
        "count",
        "ratio",
        "loud",
        "channel",
        "items",
        "surprise",
    }
    assert "10 characters" in error.details["text"]
    assert "integer" in error.details["count"]
    assert "email, chat" in error.details["channel"]
    assert "does not declare" in error.details["surprise"]


def test_missing_required_variable_is_named():
    with pytest.raises(InvalidVariables) as caught:
        render_version(typed_version(), {"ratio": 1, "items": [], "extra": None})
    assert caught.value.details == {"text": "This variable is required."}


def test_variables_must_be_an_object():
    with pytest.raises(InvalidVariables):
        render_version(typed_version(), ["text"])  # type: ignore[arg-type]


def test_few_shot_messages_come_between_system_and_user():
    v = version(
        system_template="sys {{ x }}",
        user_template="user {{ x }}",
        few_shot=[
            {"role": "user", "content": "example {{ x }}"},
            {"role": "assistant", "content": "answer"},
        ],
        variables=[{"name": "x", "type": "string"}],
    )
    rendered = render_version(v, {"x": "1"})
    assert [m["role"] for m in rendered.messages] == ["system", "user", "assistant", "user"]
    assert rendered.messages[1]["content"] == "example 1"
    assert len(rendered.input_messages) == 3


def test_no_system_message_when_the_system_template_is_empty():
    rendered = render_version(version(user_template="hello"), {})
    assert rendered.messages == [{"role": "user", "content": "hello"}]
    assert rendered.instructions == ""
    assert isinstance(rendered, RenderedPrompt)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ x.__class__ }}",
        "{{ x.append(1) }}",
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000 }}",
        "{% for i in range(100000000) %}{% endfor %}",
        "{{ self.__init__.__globals__ }}",
    ],
)
def test_sandbox_escape_attempts_are_refused_with_422(template):
    v = version(user_template=template, variables=[{"name": "x", "type": "list", "default": []}])
    with pytest.raises(ValidationFailed) as caught:
        render_version(v, {})
    assert caught.value.status == 422


def test_an_undeclared_variable_in_a_template_is_a_422_not_a_500():
    with pytest.raises(ValidationFailed) as caught:
        render_version(version(user_template="{{ ghost }}"), {})
    assert "ghost" in caught.value.message


def test_syntax_errors_are_reported_with_template_and_line():
    report = validate_version_templates(
        system_template="line one\nline two {{ oops\n",
        user_template="fine {{ x }}",
        few_shot=[{"role": "user", "content": "{% if x %}never closed"}],
        variables=[{"name": "x", "type": "string"}],
    )
    assert not report.ok
    where = {(issue.template, issue.line) for issue in report.syntax_errors}
    assert ("system", 2) in where
    assert ("few_shot[0]", 1) in where
    assert "system" in report.as_details()
    assert "line 2" in report.as_details()["system"]


def test_report_lists_undeclared_and_unused_variables():
    report = validate_version_templates(
        system_template="{{ b }} {% set local = 1 %}{{ local }}",
        user_template="{{ a }} {{ b }} {{ range(2) | list }}",
        few_shot=[],
        variables=[{"name": "a", "type": "string"}, {"name": "unused", "type": "string"}],
    )
    assert report.undeclared == ["b"]
    assert report.unused == ["unused"]
    assert report.used == ["b", "a"]
    assert not report.ok
    assert "unused" in report.warnings[0]


def test_the_variable_schema_itself_is_checked():
    report = validate_version_templates(
        system_template="",
        user_template="{{ a }}",
        few_shot=[],
        variables=[
            {"name": "a", "type": "integer", "default": "ten"},
            {"name": "not a name", "type": "string"},
            {"name": "c", "type": "colour"},
            {"name": "d", "type": "enum"},
            {"name": "e", "type": "string", "max_length": 0},
        ],
    )
    problems = {issue.template: issue.message for issue in report.schema_errors}
    assert "Default does not fit" in problems["variables.a"]
    assert "not a valid variable name" in problems["variables[1]"]
    assert "Unknown type" in problems["variables.c"]
    assert "enum" in problems["variables.d"]
    assert "max_length" in problems["variables.e"]


def test_detect_variables_keeps_first_use_order_and_accepts_digits():
    names, issues = detect_variables("{{ item_2 }} {{ customer_name }} {{ item_2 }}", "{{ z }}")
    assert names == ["item_2", "customer_name", "z"]
    assert issues == []


# --- limits -----------------------------------------------------------------------------------

PATHOLOGICAL = {
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "template_loop_limit",
    ),
    "a slow loop": (
        "{% for i in range(1000) %}{% for j in range(90) %}"
        "{{ ('x' * 100000)|replace('x', 'yy')|length }}{% endfor %}{% endfor %}",
        "template_timeout",
    ),
    "deep recursion": (
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "template_recursion_limit",
    ),
    "a giant filter argument": ("{{ ''|center(10**12) }}", "template_output_too_large"),
    "a giant method argument": ("{{ ''.zfill(10**12) }}", "template_output_too_large"),
    "a giant format width": ("{{ '%0999999999d' % 1 }}", "template_output_too_large"),
    "huge output": (
        "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
        "template_output_too_large",
    ),
    "repeated variables": ("{{ text ~ text ~ text }}", "template_output_too_large"),
}


@pytest.mark.parametrize("case", list(PATHOLOGICAL))
def test_a_pathological_template_is_a_422_with_the_limit_it_hit(case):
    template, code = PATHOLOGICAL[case]
    v = version(user_template=template, variables=[{"name": "text", "type": "string"}])
    with pytest.raises(ValidationFailed) as caught:
        render_version(v, {"text": "x" * 400_000})
    assert caught.value.status == 422
    assert caught.value.code == code
    assert caught.value.details == {"user": caught.value.message.split(": ", 1)[1]}


async def test_a_template_that_loops_renders_in_a_worker_for_async_callers():
    v = version(
        user_template="{% for item in items %}{{ loop.index }}. {{ item }}\n{% endfor %}",
        variables=[{"name": "items", "type": "list"}],
    )
    rendered = await arender_version(v, {"items": ["a", "b"]})
    assert rendered.messages == [{"role": "user", "content": "1. a\n2. b\n"}]


def test_render_workers_run_at_a_lower_cpu_priority_than_the_server():
    worker = _Worker(memory_mb=256)
    try:
        with open(f"/proc/{worker.process.pid}/stat") as stat:
            niceness = int(stat.read().rsplit(")", 1)[1].split()[16])
    finally:
        worker.kill()
    assert niceness == os.nice(0) + NICENESS


def test_plain_templates_are_told_apart_from_those_that_can_loop():
    assert plan(ENV.parse("Hi {{ name|upper }}{% if x %}{{ items|join(', ') }}{% endif %}")).plain
    for source in (
        "{% for i in x %}{% endfor %}",
        "{% macro m() %}{% endmacro %}",
        "{{ name.upper() }}",
        "{% set y = x ~ x %}",
        "{{ x * 3 }}",
        "{{ '%s' % x }}",
        "{{ x|center(80) }}",
        "{{ items|join(sep) }}",
    ):
        assert not plan(ENV.parse(source)).plain, source


def test_the_template_cache_is_bounded_by_the_size_of_its_templates():
    built: list[str] = []
    cache = SizedCache(1000, lambda source: built.append(source) or source)
    for index in range(10):
        cache.get(f"{index}" * 200)
    assert cache.chars <= 1000
    assert len(cache.entries) == 5
    cache.get("9" * 200)
    assert built.count("9" * 200) == 1  # the newest are kept
    cache.get("x" * 600)  # larger than a quarter of the cache: rendered, never kept
    assert "x" * 600 not in cache.entries
