"""Schemathesis over the whole OpenAPI schema, against the site under uvicorn.

Every operation in /api/schema/ is called with generated valid and invalid input (the
examples, coverage and fuzzing phases), with a team key, with a signed-in editor's session
(cookie and CSRF header) and with no credentials; usage records with null fields are there to
be listed.
Each response must be a non-5xx answer whose status code is documented and whose body
matches the schema. The run is deterministic and bounded per operation.

The OpenAI-compatible /v1 endpoints are not in this schema (they follow OpenAI's own API);
test_bad_input.py and test_not_found.py cover them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
    "missing_required_header",
    "allow_header_conformance",
]


# Path parameters drawn from the seeded prompts most of the time, so that generated bodies
# reach the views' own validation instead of a 404 for an unknown slug.
CONFIG = """
[dictionaries.slugs]
values = ["support-triage", "invoice-extract", "meeting-summary", "deep-analysis"]

[dictionaries.labels]
values = ["production", "staging"]

[parameters]
"path.slug" = { dictionary = "slugs", probability = 0.8 }
"path.name" = { dictionary = "labels", probability = 0.8 }
"""


def schemathesis(
    site: str,
    tmp_path: Path,
    *headers: str,
    phases: str,
    max_examples: int,
    checks: list[str] = CHECKS,
) -> subprocess.CompletedProcess:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{site}/api/schema/?format=json",
        "--checks",
        ",".join(checks),
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        # The same cases every run (the seed is unused in this mode): no flaky finds.
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    for header in headers:
        command += ["--header", header]
    # cwd: schemathesis writes its report and hypothesis folders into the current directory.
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.fixture
def ledger(team) -> None:
    """Usage records with the fields that can be null left null (a playground call: no key,
    no stored prompt), so that the schema's nullable declarations are checked."""
    from django.utils import timezone

    from spend.models import UsageRecord

    for index in range(3):
        UsageRecord.objects.create(
            team=team,
            created_at=timezone.now(),
            request_id=f"req_schema{index}",
            model_name="gpt-5.4-mini",
            tier_name="mini",
            purpose="playground",
            ttft_ms=None,
        )


def session_headers(user) -> tuple[str, str]:
    """A signed-in browser's cookie and CSRF header, for the site under uvicorn (sessions
    live in the shared test database)."""
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    token = "schemathesis0schemathesis0schema"  # 32 characters: a valid unmasked CSRF secret
    session = browser.cookies["sessionid"].value
    return f"Cookie: sessionid={session}; csrftoken={token}", f"X-CSRFToken: {token}"


def test_the_whole_schema_holds_with_a_team_key(site, ledger, api_key, tmp_path):
    run = schemathesis(
        site,
        tmp_path,
        f"Authorization: Bearer {api_key}",
        phases="examples,coverage,fuzzing",
        max_examples=8,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_whole_schema_holds_for_a_signed_in_editor(site, ledger, alice, tmp_path):
    # Fewer examples than with a key: the session's write endpoints (create, import, labels)
    # each run a save, and CI keeps this file to about a minute.
    # The two checks that hold for a cookie: the auth checks would send the same cookie
    # header again (given with --header, it is not one schemathesis can take away).
    run = schemathesis(
        site,
        tmp_path,
        *session_headers(alice),
        phases="examples,coverage,fuzzing",
        max_examples=4,
        checks=["not_a_server_error", "response_schema_conformance"],
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_whole_schema_holds_without_credentials(site, tmp_path):
    # Every operation answers 401 before it reads the input: the coverage phase's hundreds of
    # invalid inputs would test nothing more.
    run = schemathesis(site, tmp_path, phases="examples,fuzzing", max_examples=5)
    assert run.returncode == 0, run.stdout + run.stderr
