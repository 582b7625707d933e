"""Gateway knobs: a Django setting of the same name wins, then the environment, then the default."""

from __future__ import annotations

import os

from django.conf import settings

DEFAULTS: dict[str, float] = {
    # Retries of the same model on 429/5xx/timeout/connection errors, before its fallbacks.
    "GATEWAY_RETRIES": 1,
    # Backoff before retry n (0-based): base * 2**n, minus up to 25 % jitter, at most MAX.
    "GATEWAY_BACKOFF_SECONDS": 0.2,
    "GATEWAY_BACKOFF_MAX_SECONDS": 2.0,
    # A 429 asking to wait longer than this moves on to the next model at once.
    "GATEWAY_RETRY_AFTER_MAX_SECONDS": 1.0,
    # Connect timeout for upstream calls (the read timeout is the model's timeout).
    "GATEWAY_CONNECT_TIMEOUT_SECONDS": 5.0,
    # How long a classifier answer is reused for the same input text.
    "GATEWAY_CLASSIFIER_CACHE_SECONDS": 24 * 3600,
    # Characters of the request the classifier reads.
    "GATEWAY_CLASSIFIER_MAX_CHARS": 4000,
    # How long the usage writer waits for more finished requests before a transaction.
    "GATEWAY_USAGE_FLUSH_SECONDS": 0.05,
    # Largest accepted request body.
    "GATEWAY_MAX_BODY_BYTES": 20 * 1024 * 1024,
    # Largest file on /v1/files (its bytes are kept in the database).
    "GATEWAY_FILE_MAX_BYTES": 100 * 1024 * 1024,
    # Most request lines in one batch input file (OpenAI's limit).
    "GATEWAY_BATCH_MAX_LINES": 50_000,
    # Seconds between two polls of a running batch's upstream batches.
    "GATEWAY_BATCH_POLL_SECONDS": 30.0,
}


def setting(name: str) -> float:
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name)
    return type(DEFAULTS[name])(raw) if raw not in (None, "") else DEFAULTS[name]
