"""Schemathesis over the whole OpenAPI schema, against the site under uvicorn.

Every operation in /api/schema/ is called with generated valid and invalid input (the
examples, coverage and fuzzing phases), once with a team key and once with no credentials.
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
    site: str, tmp_path: Path, *headers: str, phases: str, max_examples: int
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
        ",".join(CHECKS),
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


def test_the_whole_schema_holds_with_a_team_key(site, api_key, tmp_path):
    run = schemathesis(
        site,
        tmp_path,
        f"Authorization: Bearer {api_key}",
        phases="examples,coverage,fuzzing",
        max_examples=8,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_whole_schema_holds_without_credentials(site, tmp_path):
    # Every operation answers 401 before it reads the input: the coverage phase's hundreds of
    # invalid inputs would test nothing more.
    run = schemathesis(site, tmp_path, phases="examples,fuzzing", max_examples=5)
    assert run.returncode == 0, run.stdout + run.stderr
