from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from core.logging import JsonFormatter, scrub
from core.middleware import ContentSecurityPolicyMiddleware, RequestContextMiddleware


def access_lines(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "switchboard.access"
    ]


# --- request id --------------------------------------------------------------------------------


def test_every_response_carries_a_fresh_request_id(client):
    first = client.get("/healthz")["x-request-id"]
    second = client.get("/healthz")["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{24}", first)
    assert first != second


def test_a_callers_request_id_is_kept(client):
    assert (
        client.get("/healthz", HTTP_X_REQUEST_ID="trace-42.a:b")["x-request-id"] == "trace-42.a:b"
    )


@pytest.mark.parametrize("bad", ["has space", "x" * 65, 'quote"', "new\nline"])
def test_an_unsafe_request_id_is_replaced(client, bad):
    assert client.get("/healthz", HTTP_X_REQUEST_ID=bad)["x-request-id"] != bad


# --- size and URL limits --------------------------------------------------------------------------


def test_an_oversized_body_gets_413_in_the_openai_shape_under_v1(client, settings):
    settings.MAX_REQUEST_BYTES = 100
    response = client.post("/v1/chat/completions", "x" * 101, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "message": "The request body is larger than the limit of 100 bytes.",
            "type": "invalid_request_error",
            "code": "payload_too_large",
            "param": None,
        }
    }


@pytest.mark.django_db
def test_an_oversized_body_gets_413_in_our_shape_under_api(client, settings):
    settings.MAX_REQUEST_BYTES = 100
    response = client.post("/api/v1/prompts", "x" * 101, content_type="application/json")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"max_bytes": 100}


def test_a_body_at_the_limit_is_not_refused_for_its_size(client, settings):
    settings.MAX_REQUEST_BYTES = 100
    response = client.post("/healthz", "x" * 100, content_type="text/plain")
    assert response.status_code == 200


async def test_a_chunked_body_over_the_limit_is_cut_off_with_413(settings):
    """Without Content-Length, the ASGI guard counts bytes and stops reading at the limit."""
    from config.asgi import application

    settings.MAX_REQUEST_BYTES = 1000
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(100):
            sent += 100
            yield b"x" * 100

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post("/v1/chat/completions", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert sent <= 1200  # it stopped reading right after the limit


async def test_a_declared_oversized_body_is_refused_before_reading(settings):
    from config.asgi import application

    settings.MAX_REQUEST_BYTES = 1000
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post("/api/v1/prompts", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"max_bytes": 1000}


def test_nul_in_the_query_string_is_a_400(client):
    response = client.get("/healthz?team=%00")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]


def test_a_malformed_content_length_is_a_400(client):
    response = client.generic("POST", "/healthz", b"{}", CONTENT_LENGTH="12abc")
    assert response.status_code == 400


# --- access log ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_json_access_line_per_request_with_its_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="switchboard.access"):
        response = client.get("/healthz", HTTP_X_REQUEST_ID="req-1")
    (line,) = access_lines(caplog)
    assert line["request_id"] == "req-1" == response["x-request-id"]
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["route"] == "healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)


@pytest.mark.django_db
def test_keys_authorization_headers_and_bodies_are_never_logged(client, caplog, api_key):
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/api/v1/prompts",
            {"slug": "x", "name": "secret-body-text"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_key}",
        )
    formatter = JsonFormatter()
    written = "\n".join(formatter.format(record) for record in caplog.records)
    assert written  # something was logged
    assert api_key not in written
    assert api_key[:12] not in written
    assert "secret-body-text" not in written


def test_the_formatter_scrubs_secrets_from_messages_and_extra_fields():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "key %s", ("sb_abcdefghijklmnop",), None
    )
    record.detail = "Authorization: Bearer sk-proj-abcdefghijklmnop"
    record.authorization = "Bearer whatever"  # a forbidden field name is dropped
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "key [redacted]"
    assert "sk-proj" not in line["detail"]
    assert "authorization" not in line


def test_a_line_is_one_line_of_readable_text():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "règle %s", ("a\nb",), None)

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert json.loads(line)["message"] == "règle a\nb"
    assert "règle" in line  # not \u00e8


def test_a_line_is_written_whatever_its_fields_hold():
    """A lone surrogate (no UTF-8 for it) and an integer past 64 bits: escaped, still JSON."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "bad %s", ("\ud800",), None)
    record.count = 2**70

    line = JsonFormatter().format(record)

    assert line.encode("utf-8")
    assert json.loads(line)["count"] == 2**70


def test_scrub_leaves_ordinary_text_alone():
    assert scrub("GET /v1/models 200") == "GET /v1/models 200"


# --- CSP ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_get_a_csp_whose_nonce_is_on_the_htmx_script(client):
    response = client.get("/login/")
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    assert f'nonce="{nonce}"' in response.content.decode()


@pytest.mark.django_db
def test_each_page_gets_its_own_nonce(client):
    first = client.get("/login/")["Content-Security-Policy"]
    assert first != client.get("/login/")["Content-Security-Policy"]


def test_json_responses_get_no_csp(client):
    assert "Content-Security-Policy" not in client.get("/healthz")


# --- /metrics ---------------------------------------------------------------------------------------


def test_metrics_are_served_to_an_allowed_address(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["127.0.0.0/8"]
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'switchboard_http_requests_total{method="GET",route="healthz",status="200"}' in (
        response.content.decode()
    )


def test_metrics_are_hidden_from_other_addresses(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_right_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200


def test_gateway_metrics_functions_show_up_in_the_exposition(client, settings):
    from decimal import Decimal

    from core import metrics

    metrics.record_request(surface="chat", tier="mini", model="m1", status=200, latency_seconds=0.2)
    metrics.record_upstream_error(provider="openai", model="m1", kind="429")
    metrics.record_fallback(from_model="m1", to_model="m2", reason="429")
    metrics.record_budget_block(team="team-a", action="block")
    metrics.record_spend(
        team="team-a", tier="mini", model="m1", cost_usd=Decimal("0.5"), output_tokens=7
    )
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    text = client.get("/metrics").content.decode()
    for name in (
        'switchboard_gateway_requests_total{model="m1",status="2xx",surface="chat",tier="mini"}',
        'switchboard_upstream_errors_total{kind="429",model="m1",provider="openai"}',
        'switchboard_fallbacks_total{from_model="m1",reason="429",to_model="m2"}',
        'switchboard_budget_blocks_total{action="block",team="team-a"}',
        'switchboard_spend_usd_total{model="m1",team="team-a",tier="mini"}',
        'switchboard_tokens_total{kind="output",model="m1",team="team-a"}',
    ):
        assert name in text


# --- configuration ------------------------------------------------------------------------------------


def test_our_middleware_is_async_only_and_outermost():
    assert django_settings.MIDDLEWARE[0] == "core.middleware.RequestContextMiddleware"
    for cls in (RequestContextMiddleware, ContentSecurityPolicyMiddleware):
        assert cls.async_capable is True
        assert cls.sync_capable is False


def test_every_configured_middleware_can_run_async():
    for path in django_settings.MIDDLEWARE:
        assert getattr(import_string(path), "async_capable", False), path
