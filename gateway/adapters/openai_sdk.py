"""What the gateway uses of the `openai` SDK beyond its public API: its mapping of an error
response to the SDK's exception classes (`RateLimitError`, `InternalServerError`, ...)."""

from __future__ import annotations

import httpx2
import openai


def sdk_status_error(
    client: openai.AsyncOpenAI, response: httpx2.Response
) -> openai.APIStatusError:
    """The SDK's exception for an error response whose body has been read."""
    return client._make_status_error_from_response(response)
