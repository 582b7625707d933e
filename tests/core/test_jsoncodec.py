"""core.jsoncodec: orjson's speed, and the json module's answer wherever orjson refuses."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from core import jsoncodec


@pytest.mark.parametrize(
    "value",
    [
        {"model": "gpt-5.4-mini", "messages": [{"role": "user", "content": "Grüße 👋"}]},
        {"seed": 2**70, "n": 1},  # past 64 bits: orjson refuses, the json module writes it
        {"text": "a\ud800b"},  # a lone surrogate: no UTF-8 for it, so it is escaped
        {1: "integer key"},
        [1.5, 1e16, -0.0, None, True, "tab\tand\nnewline", "\x00"],
    ],
    ids=["unicode", "big-integer", "lone-surrogate", "integer-key", "scalars"],
)
def test_what_is_written_reads_back_as_the_json_module_reads_its_own(value):
    written = jsoncodec.dumps(value)

    assert isinstance(written, bytes)
    assert b": " not in written
    assert b", " not in written
    assert json.loads(written) == json.loads(json.dumps(value))


def test_decimals_and_datetimes_are_written_by_the_callers_default():
    moment = dt.datetime(2026, 12, 7, 4, 30, 0, 123456, tzinfo=dt.UTC)
    value = {"cost": Decimal("0.000144"), "at": moment, "day": moment.date()}

    written = jsoncodec.dumps(value, default=jsoncodec.as_text)

    assert json.loads(written) == {
        "cost": "0.000144",
        "at": "2026-12-07T04:30:00.123456+00:00",
        "day": "2026-12-07",
    }


def test_what_the_default_refuses_is_refused():
    with pytest.raises(TypeError):
        jsoncodec.dumps({"when": object()}, default=jsoncodec.as_text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": "chatcmpl-1", "usage": {"prompt_tokens": 12}}',
        b'{"text": "\\ud83d\\ude00 and a lone \\ud800"}',
        b'{"score": NaN}',
        '{"text": "Grüße"}',
        b'{"usage": {"output_tokens": 18446744073709551616}, "seed": -123456789012345678901}',
        '{"seed": 123456789012345678901234567890}',
        '["a lone \ud800 in a str"]',
    ],
    ids=[
        "plain",
        "lone-surrogate-escape",
        "nan",
        "str",
        "big-integers",
        "big-integer-str",
        "lone-surrogate-str",
    ],
)
def test_what_the_json_module_reads_is_read_the_same(text):
    read = jsoncodec.loads(text)

    assert json.dumps(read) == json.dumps(json.loads(text))


def test_what_neither_reads_raises_a_value_error():
    with pytest.raises(ValueError):
        jsoncodec.loads(b'{"truncated": ')
