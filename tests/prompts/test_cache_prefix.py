"""The editor's prompt-caching help: the static prefix in o200k tokens (counted offline),
what a provider would cache of it, and the warning for a variable ahead of static text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from prompts.caching import cacheable_tokens, prefix_report, template_parts
from prompts.tokens import count_tokens

RULES = "Rules:\n" + "".join(f"{n}. Answer in plain words, point {n}.\n" for n in range(1, 40))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("Say hello to {{ name }} in a {{ tone }} tone.", 13),
        ("naïve café — 12345678 tokens?? 日本語のテキスト", 17),
        ("I'm sure they'll've done it. DON'T", 8),
    ],
)
def test_token_counts_match_o200k(text, tokens):
    # figures from OpenAI's tokenizer (o200k_base), the GPT-4o / GPT-5 encoding
    assert count_tokens(text) == tokens


def test_a_template_splits_into_static_text_and_tags():
    parts = template_parts("Hi {# note #}there {{ name }}!{% if x %} yes{% endif %}")
    assert [(p.static, p.text) for p in parts] == [
        (True, "Hi "),
        (True, "there "),
        (False, "{{ name }}"),
        (True, "!"),
        (False, "{% if x %}"),
        (True, " yes"),
        (False, "{% endif %}"),
    ]


@pytest.mark.parametrize(
    ("prefix", "cached"),
    [(0, 0), (1023, 0), (1024, 1024), (1151, 1024), (1152, 1152), (5000, 4992)],
)
def test_providers_cache_from_1024_tokens_in_steps_of_128(prefix, cached):
    assert cacheable_tokens(prefix) == cached


def test_a_variable_ahead_of_the_static_text_is_flagged():
    report = prefix_report([("system", "Dear {{ customer_name }},\n" + RULES), ("user", "x")])
    assert report is not None
    assert report.first_dynamic == "{{ customer_name }}"
    assert report.first_dynamic_in == "system"
    assert report.prefix_tokens == count_tokens("Dear ")
    assert report.static_after_tokens == count_tokens(",\n" + RULES + "x")
    assert report.cacheable_tokens == 0
    assert "{{ customer_name }} (system) comes before" in report.warning
    assert f"{report.static_after_tokens:,} tokens of static text" in report.warning


def test_static_text_first_is_not_flagged_and_its_prefix_is_counted():
    static = RULES * 4
    report = prefix_report([("system", static), ("user", "Message: {{ message }}")])
    assert report is not None
    assert report.warning == ""
    assert report.prefix_tokens == count_tokens(static + "Message: ")
    assert report.prefix_tokens > 1024
    assert report.cacheable_tokens == cacheable_tokens(report.prefix_tokens)


def test_the_prefix_runs_on_through_examples_into_the_user_message():
    report = prefix_report(
        [("system", "Be brief."), ("few_shot[0]", "An example."), ("user", "{{ q }} then a tail")]
    )
    assert report is not None
    assert report.prefix_tokens == count_tokens("Be brief.An example.")
    assert report.first_dynamic_in == "user"
    assert report.warning == ""  # a short tail is no reason to warn


def test_a_template_without_variables_is_all_prefix():
    report = prefix_report([("user", RULES)])
    assert report is not None
    assert report.first_dynamic == ""
    assert report.prefix_tokens == count_tokens(RULES)
    assert report.warning == ""


def test_a_template_that_does_not_lex_gives_no_report():
    assert prefix_report([("user", "ok {{ name")]) is None


def _preview(client, prompt, system: str, user: str) -> str:
    form = {"system_template": system, "user_template": user, "var_name": ["name"]}
    url = reverse("prompts:preview", args=[prompt.team.slug, prompt.slug])
    response = client.post(url, form, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


def test_the_preview_warns_and_estimates_the_prefix(client, prompt, alice):
    client.force_login(alice)
    html = _preview(client, prompt, "{{ name }} is the customer.\n" + RULES, "Answer.")
    assert 'data-testid="prefix-warning"' in html
    assert "{{ name }} (system) comes before" in html
    assert 'data-testid="prefix-estimate"' in html

    static = RULES * 4
    calm = _preview(client, prompt, static, "Customer: {{ name }}")
    assert 'data-testid="prefix-warning"' not in calm
    tokens = count_tokens(static + "Customer: ")
    assert f"<strong>{tokens:,}</strong> tokens" in calm
    assert f"<strong>{cacheable_tokens(tokens):,}</strong> cacheable" in calm
