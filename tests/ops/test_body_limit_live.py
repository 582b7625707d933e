"""One body limit, MAX_REQUEST_BYTES (20 MiB), on /v1, REST and pages alike, against the site
under uvicorn: a 19 MiB body is read and answered, a 21 MiB one is a JSON 413 in the
surface's error shape (not Django's 2.5 MB default, nor an HTML 400)."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def chat_body(size: int, **fields) -> bytes:
    """A chat request of exactly `size` bytes: a large image, as clients send them inline."""

    def build(pad: int) -> bytes:
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * pad}}
        content = [{"type": "text", "text": "What is in this picture?"}, image]
        return json.dumps({**fields, "messages": [{"role": "user", "content": content}]}).encode()

    return build(size - len(build(0)))


@pytest.fixture
def client(site, api_key):
    with httpx.Client(
        base_url=site,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=120,
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "fields"),
    [("/v1/chat/completions", {"model": "tier:mini"}), ("/api/v1/route", {})],
)
def test_a_19_mib_chat_body_is_served_and_a_21_mib_one_is_a_json_413(client, path, fields):
    accepted = client.post(path, content=chat_body(19 * MIB, **fields))
    assert accepted.status_code == 200, accepted.text[:500]

    refused = client.post(path, content=chat_body(21 * MIB, **fields))
    assert refused.status_code == 413
    assert refused.headers["Content-Type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["code"] == "payload_too_large"
    assert set(error) == (
        {"message", "type", "param", "code"}
        if path.startswith("/v1/")
        else {
            "code",
            "message",
            "details",
        }
    )


def test_a_19_mib_body_reaches_a_rest_view_that_parses_it_as_json(client):
    document = "x" * (19 * MIB - 100)
    response = client.post(
        "/api/v1/prompts/invoice-extract/render", json={"variables": {"document": document}}
    )
    # Read and parsed: what stops it is the rendered prompt's own size limit.
    assert response.status_code == 422, response.text[:500]
    assert response.json()["error"]["code"] == "template_output_too_large"


def test_pages_read_form_bodies_up_to_the_same_limit(site):
    form = {"username": "a", "password": "x" * (19 * MIB)}
    with httpx.Client(base_url=site, timeout=120) as client:
        read = client.post("/login/", data=form)
        # Django's default would refuse to read it (400); read, it fails the CSRF check.
        assert read.status_code == 403
        refused = client.post("/login/", data={**form, "password": "x" * (21 * MIB)})
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
