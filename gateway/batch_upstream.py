"""A provider's Files and Batches APIs, through the official SDK's public methods (Celery side).

These calls run in Celery tasks, a few per batch and poll, never on the request path: a
synchronous client per call keeps them free of event loops, and the SDK's own retries
(2, with backoff) cover a provider's passing 429s and 5xx.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

from routing.models import Provider

_TIMEOUT_SECONDS = 60.0


class UpstreamBatchError(Exception):
    """The provider refused or failed a Files/Batches call."""


def _client(provider: Provider) -> openai.OpenAI:
    api_key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    return openai.OpenAI(
        base_url=provider.base_url,
        api_key=api_key or "switchboard-no-key",
        timeout=_TIMEOUT_SECONDS,
        max_retries=2,
    )


def upstream_batch_create(
    *, provider: Provider, endpoint: str, lines: list[dict[str, Any]], metadata: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """Upload the lines as a JSONL file and create a batch on it: (file id, batch object)."""
    content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    client = _client(provider)
    try:
        uploaded = client.files.create(file=("input.jsonl", content.encode()), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
            metadata=metadata or None,
        )
    except openai.OpenAIError as exc:
        raise UpstreamBatchError(str(exc)) from exc
    return uploaded.id, batch.model_dump()


def upstream_batch_retrieve(*, provider: Provider, batch_id: str) -> dict[str, Any]:
    try:
        return _client(provider).batches.retrieve(batch_id).model_dump()
    except openai.OpenAIError as exc:
        raise UpstreamBatchError(str(exc)) from exc


def upstream_batch_cancel(*, provider: Provider, batch_id: str) -> dict[str, Any]:
    try:
        return _client(provider).batches.cancel(batch_id).model_dump()
    except openai.OpenAIError as exc:
        raise UpstreamBatchError(str(exc)) from exc


def upstream_file_lines(*, provider: Provider, file_id: str) -> list[dict[str, Any]]:
    """An output or error file's lines, parsed."""
    try:
        text = _client(provider).files.content(file_id).text
    except openai.OpenAIError as exc:
        raise UpstreamBatchError(str(exc)) from exc
    return [json.loads(line) for line in text.splitlines() if line.strip()]
