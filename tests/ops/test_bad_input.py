"""Hostile and malformed input on every endpoint that reads a body or filters: always a 4xx
with a clear message in the surface's error shape, never a 500, and nothing written.

One table per kind of trouble: bodies any JSON endpoint must refuse (malformed, not an
object, too deep, too many items, NUL, lone surrogates, not UTF-8, too large), then wrong
types and values per endpoint, then template injection. The unit tests of the limits
themselves are in test_jsonlimits.py; this file checks that every endpoint applies them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import AsyncClient

from core.models import AuditEvent, IdempotencyRecord
from playground.models import Job, JobItem
from prompts.models import Label, Prompt, PromptVersion
from spend.models import UsageRecord

# Async tests through AsyncClient, as the views run under uvicorn; transactional, since the
# ORM calls run on another thread and connection.
pytestmark = pytest.mark.django_db(transaction=True)

KEY, EDITOR = "key", "editor"
TABLES = (Prompt, PromptVersion, Label, Job, JobItem, UsageRecord, AuditEvent, IdempotencyRecord)

# (who, method, path, a valid body): every endpoint that parses a JSON body.
JSON_ENDPOINTS = {
    "prompt-create": (EDITOR, "POST", "/api/v1/prompts", {"team": "team-a", "slug": "x"}),
    "version-create": (
        EDITOR,
        "POST",
        "/api/v1/prompts/support-triage/versions",
        {"user_template": "hi"},
    ),
    "label-move": (EDITOR, "PUT", "/api/v1/prompts/support-triage/labels/staging", {}),
    "import": (EDITOR, "POST", "/api/v1/prompts/import", {"prompts": []}),
    "render": (KEY, "POST", "/api/v1/prompts/support-triage/render", {}),
    "run": (KEY, "POST", "/api/v1/prompts/support-triage/run", {}),
    "route": (KEY, "POST", "/api/v1/route", {}),
    "jobs": (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"]}),
    "chat": (KEY, "POST", "/v1/chat/completions", {"messages": []}),
    "responses": (KEY, "POST", "/v1/responses", {"input": "hi"}),
}

# (body, status, error code): what every JSON endpoint answers to these bodies.
BAD_BODIES = {
    "malformed": (b'{"variables": {', 400, "invalid_json"),
    # No fixed status: DRF reads an empty body as {}, then each endpoint's own required fields
    # refuse it (400 or 422), as they do a list where an object belongs.
    "empty": (b"", None, None),
    "not-an-object": (b"[1, 2, 3]", None, None),
    "too-deep": (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", 400, "json_too_deep"),
    "too-many-items": (json.dumps({"a": list(range(10_001))}).encode(), 400, "json_too_large"),
    "nul": (b'{"name": "a\\u0000b"}', 400, "invalid_unicode"),
    "lone-surrogate": (b'{"name": "a\\ud800b"}', 400, "invalid_unicode"),
    "not-utf8": (b'{"name": "\xff\xfe"}', 400, "invalid_unicode"),
    "too-large": (b'{"name": "' + b"x" * 70_000 + b'"}', 413, "payload_too_large"),
    "nan": (b'{"temperature": NaN}', 400, "invalid_json"),
    "infinity": (b'{"limit": -Infinity}', 400, "invalid_json"),
    "overflowing-number": (b'{"temperature": 1e999}', 400, "invalid_json"),
}


@pytest.fixture(autouse=True)
def _limits(settings) -> None:
    settings.JSON_MAX_ITEMS = 10_000
    settings.MAX_REQUEST_BYTES = 64 * 1024


@pytest.fixture(autouse=True)
def _fresh_gateway_cache() -> Iterator[None]:
    """The gateway keeps keys, prompts and the routing snapshot in process: each test's rows
    are new rows."""
    from core.hot import hot_clear

    def forget() -> None:
        cache.clear()
        hot_clear()

    forget()
    yield
    forget()


@pytest.fixture
def prompts(team, alice) -> None:
    """The catalog and DESIGN.md's sample prompts; the upstream is a closed port, so a
    request that wrongly got as far as a model call fails loudly (502)."""
    from prompts.seed import seed_prompts
    from routing.seed import seed_catalog

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")
    seed_prompts(team=team, author=alice)


@pytest.fixture
def simulator(prompts, simulator_url: str) -> None:
    """The simulator as the upstream, for the cases that are meant to reach a model."""
    from routing.models import Provider

    Provider.objects.filter(name="openai").update(base_url=simulator_url)


@pytest.fixture
def call(prompts, alice, api_key):
    """Send a request as the team key or the editor's session; check that it left no row
    behind; return (status, error body). Async, as the gateway's views run under uvicorn."""
    key = {"Authorization": f"Bearer {api_key}"}

    async def send(
        who: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        writes: bool = False,
    ) -> tuple[int, dict]:
        before = await counts()
        client = AsyncClient()
        if who == EDITOR:
            await client.aforce_login(alice)
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        response = await client.generic(
            method,
            path,
            raw or b"",
            content_type=content_type,
            headers=key if who == KEY else None,
        )
        assert response.status_code < 500, response.content
        if not writes:
            assert await counts() == before, f"{method} {path} wrote rows"
        return response.status_code, response.json()

    return send


async def counts() -> dict[str, int]:
    return {table.__name__: await table.objects.acount() for table in TABLES}


def assert_error(path: str, payload: dict, code: str | None = None) -> str:
    """The surface's error shape with a message; returns the message."""
    error = payload["error"]
    if path.startswith("/v1/"):
        assert set(error) == {"message", "type", "param", "code"}
    else:
        assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code
    assert error["message"].strip()
    return error["message"]


# --- bodies every JSON endpoint refuses ------------------------------------------------------


@pytest.mark.parametrize("bad", list(BAD_BODIES))
@pytest.mark.parametrize("endpoint", list(JSON_ENDPOINTS))
async def test_a_hostile_body_is_a_clear_4xx_and_writes_nothing(call, endpoint, bad):
    who, method, path, _ = JSON_ENDPOINTS[endpoint]
    raw, expected_status, code = BAD_BODIES[bad]

    status, payload = await call(who, method, path, raw=raw)

    if expected_status:
        assert status == expected_status, payload
    else:
        assert 400 <= status < 500, payload
    assert_error(path, payload, code)


# RTL override, emoji, a combining accent, a BOM, Hebrew: text, to be kept as it is.
ODD_TEXT = "\u202eevil\u202c \U0001f600 e\u0301 \ufeff \u05e9\u05dc\u05d5\u05dd"


async def test_odd_but_valid_unicode_is_kept_exactly(call):
    status, created = await call(
        EDITOR,
        "POST",
        "/api/v1/prompts",
        {"team": "team-a", "slug": "odd", "name": ODD_TEXT},
        writes=True,
    )
    assert status == 201, created
    status, rendered = await call(
        KEY,
        "POST",
        "/api/v1/prompts/support-triage/render",
        raw=b'{"variables": {"message": "\\ud83d\\ude00 ' + ODD_TEXT.encode() + b'"}}',
    )
    assert status == 200, rendered
    assert created["name"] == ODD_TEXT
    assert f"\U0001f600 {ODD_TEXT}" in rendered["input"][-1]["content"]


async def test_very_long_strings_are_accepted_up_to_the_limits(call):
    status, explained = await call(KEY, "POST", "/api/v1/route", {"input": "word " * 12_000})
    assert status == 200, explained
    assert explained["features"]["estimated_input_tokens"] >= 12_000
    status, rendered = await call(
        KEY,
        "POST",
        "/api/v1/prompts/support-triage/render",
        {"variables": {"message": "\U0001f600" * 4000}},
    )
    assert status == 200, rendered


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": ODD_TEXT}]}),
        ("/v1/responses", {"input": ODD_TEXT, "instructions": ODD_TEXT}),
    ],
)
async def test_odd_unicode_goes_through_the_openai_surface(call, simulator, path, body):
    status, answer = await call(KEY, "POST", path, body, writes=True)
    assert status == 200, answer


# --- wrong types and values, per endpoint ----------------------------------------------------

TRIAGE = "/api/v1/prompts/support-triage"
WRONG = [
    # prompts CRUD
    (EDITOR, "POST", "/api/v1/prompts", {"team": "team-a", "slug": 7, "name": "x"}, 400, "slug"),
    (EDITOR, "POST", "/api/v1/prompts", {"team": 1, "slug": "x", "name": "x"}, 400, "team"),
    (EDITOR, "POST", "/api/v1/prompts", {"team": "team-a", "slug": "no spaces", "name": "x"}, 400, "slug"),
    (EDITOR, "POST", "/api/v1/prompts", {"team": "team-a", "slug": "x", "name": "n" * 100_00}, 400, "name"),
    (EDITOR, "POST", "/api/v1/prompts", {"team": "team-a", "slug": "x", "name": ["x"]}, 400, "name"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": 5}, 400, "user_template"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": "hi", "variables": "x"}, 400, "variables"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": "hi", "temperature": "hot"}, 400, "temperature"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": "hi", "max_output_tokens": -1}, 400, "max_output_tokens"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": " ", "system_template": ""}, 422, "user_template"),
    (EDITOR, "POST", f"{TRIAGE}/versions", {"user_template": "hi", "tier": "t" * 33}, 400, "tier"),
    (EDITOR, "PUT", f"{TRIAGE}/labels/staging", {"version": "one"}, 400, "version"),
    (EDITOR, "PUT", f"{TRIAGE}/labels/staging", {"version": 99}, 404, "version"),
    (EDITOR, "POST", "/api/v1/prompts/import", {"prompts": "all"}, 422, "prompts"),
    # render and run
    (KEY, "POST", f"{TRIAGE}/render", {"variables": ["hi"]}, 400, "variables"),
    (KEY, "POST", f"{TRIAGE}/render", {"variables": {"message": 5}}, 422, "message"),
    (KEY, "POST", f"{TRIAGE}/render", {"variables": {"message": "x" * 4001}}, 422, "message"),
    (KEY, "POST", f"{TRIAGE}/render", {"variables": {"message": "hi"}, "version": "two"}, 400, "version"),
    (KEY, "POST", f"{TRIAGE}/render", {"variables": {"message": "hi"}, "label": 3}, 400, "label"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": "message"}, 422, "variables"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": None}}, 422, "message"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "stream": "yes"}, 400, "stream"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "tier": ["mini"]}, 400, "tier"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "tier": "platinum"}, 400, "platinum"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "version": "1"}, 400, "version"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "version": 1, "label": "production"}, 400, "not both"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "metadata": {"task_tag": ["x"]}}, 400, "metadata.task_tag"),
    (KEY, "POST", f"{TRIAGE}/run", {"variables": {"message": "hi"}, "metadata": {"task_tag": {"a": 1}}}, 400, "metadata.task_tag"),
    # route explain
    (KEY, "POST", "/api/v1/route", {"input": 5}, 400, "input"),
    (KEY, "POST", "/api/v1/route", {"input": "hi", "model": 5}, 400, "model"),
    (KEY, "POST", "/api/v1/route", {"input": "hi", "instructions": ["x"]}, 400, "instructions"),
    (KEY, "POST", "/api/v1/route", {"prompt": "support-triage", "variables": {"message": "hi"}, "tier": 5}, 400, "tier"),
    (KEY, "POST", "/api/v1/route", {"input": "hi", "metadata": []}, 400, "metadata"),
    (KEY, "POST", "/api/v1/route", {"input": "hi", "metadata": {"task_tag": ["x"]}}, 400, "metadata.task_tag"),
    (KEY, "POST", "/api/v1/route", {"input": "hi", "max_output_tokens": 10**30}, 400, "max_output_tokens"),
    (KEY, "POST", "/api/v1/route", {"prompt": "support-triage", "variables": {"message": 1}}, 422, "message"),
    # jobs
    (KEY, "POST", "/api/v1/jobs", {"inputs": []}, 400, "inputs"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": "hi"}, 400, "inputs"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": [""]}, 400, "Input 0"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "tier": "platinum"}, 400, "No tier named 'platinum'"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "model": "gpt-0"}, 400, "gpt-0"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "team": 0}, 400, "team"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "tier": 1}, 400, "tier"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "temperature": 9}, 400, "temperature"),
    (KEY, "POST", "/api/v1/jobs", {"inputs": ["hi"], "tier": "mini", "model": "gpt-5.4"}, 400, "not both"),
    (KEY, "POST", "/api/v1/jobs", {"prompt": "support-triage", "inputs": [{"message": 1}]}, 422, "message"),
    (KEY, "POST", "/api/v1/jobs", {"prompt": "support-triage", "inputs": ["hi"]}, 422, "object"),
    # usage and budget filters
    (KEY, "GET", "/api/v1/usage?since=yesterday", None, 400, "since"),
    (KEY, "GET", "/api/v1/usage?until=", None, 400, "until"),
    (KEY, "GET", "/api/v1/usage?since=2026-11-02&until=2026-11-01", None, 400, "until"),
    (KEY, "GET", "/api/v1/usage?status=maybe", None, 400, "status"),
    (KEY, "GET", "/api/v1/usage?page_size=lots", None, 400, "page_size"),
    (KEY, "GET", "/api/v1/usage?page_size=0", None, 400, "page_size"),
    (KEY, "GET", "/api/v1/usage?team=team-b", None, 404, "team-b"),
    (KEY, "GET", "/api/v1/usage?since=9999-12-31", None, 400, "since"),
    (KEY, "GET", "/api/v1/usage?cursor=garbage", None, 400, "cursor"),
    (KEY, "GET", "/api/v1/prompts/export?format=xml", None, 400, "format"),
    (KEY, "GET", "/api/v1/prompts/export?format=api", None, 400, "format"),
    (KEY, "GET", "/api/v1/budget?team=%F0%9F%98%80", None, 404, "\U0001f600"),
    # OpenAI-compatible
    (KEY, "POST", "/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
    (KEY, "POST", "/v1/chat/completions", {"messages": []}, 400, "messages"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "model": 5}, 400, "model"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}, 400, "max_tokens"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": {}}, 400, "tools"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "service_tier": "gold"}, 400, "service_tier"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "max"}, 400, "reasoning_effort"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "model": "tier:platinum"}, 400, "platinum"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "service_tier": ["flex"]}, 400, "service_tier"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "service_tier": {"a": 1}}, 400, "service_tier"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": ["high"]}, 400, "reasoning_effort"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "metadata": {"task_tag": ["x"]}}, 400, "metadata.task_tag"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": 1e308}, 400, "temperature"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_p": "x"}, 400, "top_p"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 10**30}, 400, "n"),
    (KEY, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**30}, 400, "max_tokens"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "service_tier": ["flex"]}, 400, "service_tier"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "reasoning": {"effort": ["high"]}}, 400, "reasoning.effort"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "metadata": {"task_tag": {"a": 1}}}, 400, "metadata.task_tag"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "max_output_tokens": 10**30}, 400, "max_output_tokens"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "temperature": -1}, 400, "temperature"),
    (KEY, "POST", "/v1/responses", {"model": "auto"}, 400, "input"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "stream": 1}, 400, "stream"),
    (KEY, "POST", "/v1/responses", {"input": {"role": "user"}}, 400, "input"),
    (KEY, "POST", "/v1/responses", {"prompt": {"id": "support-triage", "variables": {"message": "hi"}}, "input": 5}, 400, "input"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "metadata": "x"}, 400, "metadata"),
    (KEY, "POST", "/v1/responses", {"input": "hi", "reasoning": "high"}, 400, "reasoning"),
    (KEY, "POST", "/v1/responses", {"prompt": "support-triage"}, 400, "prompt"),
    (KEY, "POST", "/v1/responses", {"prompt": {"id": "support-triage", "version": []}}, 400, "prompt.version"),
    (KEY, "POST", "/v1/responses", {"prompt": {"id": "support-triage", "variables": {"message": 5}}}, 422, "message"),
    (KEY, "POST", "/v1/responses", {"prompt": {"id": "nope"}}, 404, "nope"),
]  # fmt: skip


def _case_id(case: tuple) -> str:
    _, method, path, body, status, _ = case
    fields = ",".join(body) if isinstance(body, dict) else ""
    return f"{method} {path.split('?')[0]} {fields} -> {status}"


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status", "says"), WRONG, ids=map(_case_id, WRONG)
)
async def test_a_wrong_type_or_value_is_a_clear_4xx_and_writes_nothing(
    call, who, method, path, body, status, says
):
    got, payload = await call(who, method, path, body)

    assert got == status, payload
    message = assert_error(path, payload)
    error = payload["error"]
    # The offending field is named: in the message, the details, or OpenAI's `param`.
    where = message + json.dumps(error.get("details"), ensure_ascii=False) + str(error.get("param"))
    assert says in where, payload


# --- template injection ----------------------------------------------------------------------

INJECTIONS = [
    "{{ 7 * 7 }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "{{ config }}{{ settings.SECRET_KEY }}{{ request }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% include '/etc/passwd' %}",
    "${7*7} #{7*7} <%= 7*7 %>",
]


@pytest.mark.parametrize("payload", INJECTIONS)
async def test_template_syntax_in_a_variable_is_text_not_code(call, simulator, payload):
    variables = {"message": payload}
    status, rendered = await call(
        KEY, "POST", f"{TRIAGE}/render", {"variables": variables}, writes=True
    )
    assert status == 200, rendered
    assert rendered["input"][-1]["content"].endswith(f"Message:\n{payload}")
    status, answer = await call(
        KEY,
        "POST",
        "/v1/responses",
        {"prompt": {"id": "support-triage", "variables": variables}},
        writes=True,
    )
    assert status == 200, answer


TEMPLATE_ATTACKS = [
    "{{ message.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ self._TemplateReference__context }}",
    "{{ settings.SECRET_KEY }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os }}",
    "{% extends 'base.html' %}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{% for i in range(100000000) %}{% endfor %}",
    "{{ message|attr('__class__') }}",
    "{% if %}",
]


@pytest.mark.parametrize("attack", TEMPLATE_ATTACKS)
async def test_a_hostile_template_is_refused_on_save_or_render_and_leaks_nothing(
    call, settings, attack
):
    """Saving may refuse it (422: syntax, undeclared names); if saved, rendering refuses it
    (422: the sandbox). Either way nothing of the server's state shows in the answer."""
    version = {
        "user_template": "{{ message }} " + attack,
        "variables": [{"name": "message", "type": "string", "required": True}],
    }
    status, saved = await call(EDITOR, "POST", f"{TRIAGE}/versions", version, writes=True)
    answers = [saved]
    assert status in (201, 422), saved
    if status == 201:
        status, rendered = await call(
            KEY,
            "POST",
            f"{TRIAGE}/render",
            {"variables": {"message": "hi"}, "version": saved["number"]},
        )
        answers.append(rendered)
        assert status == 422, rendered
        assert_error("/api/", rendered, "validation_failed")
    else:
        assert_error("/api/", saved, "validation_failed")
    text = json.dumps(answers)
    for secret in (settings.SECRET_KEY, "uid=", "root:", "<class", "environ(", "Context {"):
        assert secret not in text


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
YAML_BODIES = {
    "too-deep": (b"a: " + b"[" * 5000 + b"]" * 5000, 400, "json_too_deep"),
    "alias-bomb": (LAUGHS.encode(), 400, "json_too_large"),
    "not-utf8": (b"a: \xff\xfe", 400, "invalid_unicode"),
    "nul": (b'a: "x\\0y"', 400, "invalid_unicode"),
    "not-yaml": (b"prompts: [", 422, "validation_failed"),
}


@pytest.mark.parametrize("bad", list(YAML_BODIES))
async def test_a_hostile_yaml_import_is_a_clear_4xx_and_writes_nothing(call, bad):
    raw, status, code = YAML_BODIES[bad]
    got, payload = await call(
        EDITOR, "POST", "/api/v1/prompts/import", raw=raw, content_type="application/yaml"
    )
    assert got == status, payload
    assert_error("/api/", payload, code)
