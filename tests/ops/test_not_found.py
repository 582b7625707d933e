"""Unmatched URLs and methods under /api/ and /v1/ answer in the surface's JSON error shape;
pages keep the HTML 404. Both lanes: the site's handler (in process) and the gateway's fast
lane, which only the site under uvicorn has (config.asgi)."""

from __future__ import annotations

import httpx
import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI_KEYS = {"message", "type", "param", "code"}
API_KEYS = {"code", "message", "details"}

# (method, path, status, error keys, Allow header)
CASES = [
    ("GET", "/api/v1/nope", 404, API_KEYS, None),
    ("POST", "/api/nothing/here", 404, API_KEYS, None),
    ("GET", "/api/v1/prompts/%C3%AE%29/run", 404, API_KEYS, None),
    ("GET", "/v1/nope", 404, OPENAI_KEYS, None),
    ("POST", "/v1/embeddings", 404, OPENAI_KEYS, None),
    ("GET", "/v1/chat/completions", 405, OPENAI_KEYS, "POST"),
    ("DELETE", "/v1/responses", 405, OPENAI_KEYS, "POST"),
    ("POST", "/v1/models", 405, OPENAI_KEYS, "GET"),
    ("PUT", "/v1/models/auto", 405, OPENAI_KEYS, "GET"),
    ("GET", "/api/v1/route", 405, API_KEYS, "POST"),
    ("GET", "/api/v1/prompts/support-triage/run", 405, API_KEYS, "POST"),
    ("DELETE", "/api/v1/prompts", 405, API_KEYS, "GET, POST, HEAD, OPTIONS"),
]


def check(response, status: int, keys: set[str], allow: str | None) -> None:
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == keys
    assert error["code"] == ("not_found" if status == 404 else "method_not_allowed")
    assert error["message"]
    if allow:
        assert response.headers["Allow"] == allow


@pytest.mark.parametrize(("method", "path", "status", "keys", "allow"), CASES)
async def test_an_unmatched_url_or_method_gets_the_surfaces_json_error(
    api_key, method, path, status, keys, allow
):
    response = await AsyncClient().generic(
        method, path, headers={"Authorization": f"Bearer {api_key}"}
    )
    check(response, status, keys, allow)


async def test_pages_keep_the_html_404():
    response = await AsyncClient().get("/prompts/no/such/page")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


def test_both_lanes_of_the_site_under_uvicorn_answer_in_json(live_site, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=live_site, headers=headers, timeout=20) as client:
        for method, path, status, keys, allow in CASES:
            check(client.request(method, path), status, keys, allow)
        page = client.get("/prompts/no/such/page")
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")
