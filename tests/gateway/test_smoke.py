from __future__ import annotations

import pytest

from tests.gateway.conftest import usage_for


@pytest.mark.django_db(transaction=True)
def test_chat_auto_answers_and_records_usage(sdk):
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    request_id = raw.headers["x-request-id"]
    records = usage_for(request_id)
    assert len(records) >= 1
    print(raw.headers, [(r.purpose, r.model_name, r.cost_usd) for r in records])
