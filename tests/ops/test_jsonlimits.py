from __future__ import annotations

import json

import pytest

from core.jsonlimits import (
    InvalidUnicode,
    JsonError,
    JsonTooDeep,
    JsonTooLarge,
    json_loads_limited,
)


def test_ordinary_json_parses():
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert json_loads_limited(body.encode())["model"] == "auto"


@pytest.mark.parametrize("depth", [65, 5_000, 200_000])
def test_nesting_beyond_the_limit_is_a_400_not_a_recursion_error(depth):
    body = b"[" * depth + b"]" * depth
    with pytest.raises(JsonTooDeep) as refused:
        json_loads_limited(body)
    assert refused.value.status == 400
    assert "deeper than the limit of 64" in refused.value.message


def test_nesting_at_the_limit_is_accepted():
    assert json_loads_limited(b"[" * 64 + b"]" * 64) is not None


def test_too_many_items_is_a_400(settings):
    settings.JSON_MAX_ITEMS = 1000
    with pytest.raises(JsonTooLarge):
        json_loads_limited(json.dumps(list(range(1001))).encode())
    with pytest.raises(JsonTooLarge):
        json_loads_limited(json.dumps({str(i): i for i in range(1001)}).encode())


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"a": }', b"{'a': 1}", b'{"a": NaN', b"nul", b'{"a":1}}'],
)
def test_malformed_json_is_a_400_that_says_so(body):
    with pytest.raises(JsonError) as refused:
        json_loads_limited(body)
    assert refused.value.code == "invalid_json"


def test_nul_characters_are_refused():
    with pytest.raises(InvalidUnicode) as refused:
        json_loads_limited(b'{"content": "a\\u0000b"}')
    assert "NUL" in refused.value.message


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\uDFFF", b"x\\udc00y", b"\\ud83d"])
def test_lone_surrogates_are_refused(escape):
    with pytest.raises(InvalidUnicode) as refused:
        json_loads_limited(b'{"content": "' + escape + b'"}')
    assert "surrogate" in refused.value.message


def test_lone_surrogates_in_keys_are_refused():
    with pytest.raises(InvalidUnicode):
        json_loads_limited(b'{"\\ud800": 1}')


def test_escaped_surrogate_pairs_are_real_characters_and_accepted():
    assert json_loads_limited(b'{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f600 emoji",
        "\u202e right-to-left override",
        "e\u0301 combining",
        "\ufeff bom",
        "日本語",
    ],
)
def test_unicode_edge_cases_in_utf8_are_accepted(text):
    assert json_loads_limited(json.dumps({"t": text}, ensure_ascii=False).encode()) == {"t": text}


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(InvalidUnicode) as refused:
        json_loads_limited(b'{"t": "\xff\xfe"}')
    assert "not valid UTF-8" in refused.value.message
