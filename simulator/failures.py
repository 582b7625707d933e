"""OpenAI-style errors and the failures a test can ask for.

A failure is selected by the `x-simulator-fail: <mode>` request header or by a model-name
suffix, `gpt-5.4-mini@429`; the header wins when both are given. Modes:

- `429`: status 429, `Retry-After: 1`, error type `rate_limit_error`, code `rate_limit_exceeded`.
- `500`: status 500, error type `server_error`.
- `400`: status 400, error type `invalid_request_error`.
- `hang`: no answer for 300 s (or until the client disconnects), then a normal answer.
- `cut`: streams send a few events, then the connection closes without the completion
  event or `[DONE]`; non-streamed answers declare their full Content-Length, send half of the
  body and close the connection. The openai SDK raises APIConnectionError for both (its
  cause: httpx2.RemoteProtocolError).

The suffix `@noflex` is not a failure: the model has no flex capacity, so a `service_tier:
"flex"` request is served (and answered) at the `default` tier, as OpenAI may do.

Failures apply to the two create endpoints, not to /v1/models (the readiness probe). Answers
report the model name without its suffix.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

FAIL_HEADER = "x-simulator-fail"
HANG_SECONDS = 300.0


class Failure(StrEnum):
    RATE_LIMIT = "429"
    BAD_REQUEST = "400"
    SERVER_ERROR = "500"
    HANG = "hang"
    CUT = "cut"


class SimulatorError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "code", "param"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> SimulatorError:
    return SimulatorError(400, message, param=param, code=code)


def split_model(model: str) -> tuple[str, str | None]:
    """`gpt-5.4-mini@429` → (`gpt-5.4-mini`, `429`); answers report the base name."""
    base, at, mode = model.partition("@")
    return base, mode if at else None


NO_FLEX = "noflex"


def failure_for(header: str | None, suffix: str | None) -> Failure | None:
    mode = header or (None if suffix == NO_FLEX else suffix)
    if not mode:
        return None
    try:
        return Failure(mode.strip().lower())
    except ValueError:
        modes = ", ".join(failure.value for failure in Failure)
        raise invalid_request(
            f"Unknown simulator failure mode {mode!r}; use one of: {modes}.",
            code="unknown_failure_mode",
        ) from None


def raise_status_failure(failure: Failure, model: str) -> None:
    """Raise the error that an error-status failure mode stands for; other modes pass."""
    if failure is Failure.RATE_LIMIT:
        raise SimulatorError(
            429,
            f"Rate limit reached for {model} on requests per min (RPM): Limit 500, Used 500, "
            "Requested 1. Please try again in 1s. (simulated)",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": "1"},
        )
    if failure is Failure.SERVER_ERROR:
        raise SimulatorError(
            500,
            "The server had an error while processing your request. (simulated)",
            type="server_error",
            code="server_error",
        )
    if failure is Failure.BAD_REQUEST:
        raise invalid_request("Invalid request. (simulated)", code="simulated_bad_request")
