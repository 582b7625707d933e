"""One hierarchy of application errors with stable codes, rendered in one shape per surface.

`/api/...` answers `{"error": {"code", "message", "details"}}`; `/v1/...` answers OpenAI's
`{"error": {"message", "type", "code", "param"}}` (see gateway.openai_errors).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class AppError(Exception):
    status = 400
    code = "bad_request"
    openai_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.param = param
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(AppError):
    pass


class Unauthenticated(AppError):
    status, code, openai_type = 401, "invalid_api_key", "authentication_error"


class BudgetExceeded(AppError):
    status, code, openai_type = 402, "budget_exceeded", "insufficient_quota"


class Forbidden(AppError):
    status, code, openai_type = 403, "forbidden", "permission_error"


class NotFound(AppError):
    status, code, openai_type = 404, "not_found", "invalid_request_error"


class MethodNotAllowed(AppError):
    status, code = 405, "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"{method} is not allowed here; use {' or '.join(allowed)}.",
            headers={"Allow": ", ".join(allowed)},
        )


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class InvalidVariables(AppError):
    status, code = 422, "invalid_variables"


class ValidationFailed(AppError):
    status, code = 422, "validation_failed"


class RateLimited(AppError):
    status, code, openai_type = 429, "rate_limited", "rate_limit_error"


class UpstreamFailed(AppError):
    status, code, openai_type = 502, "upstream_failed", "api_error"


class ServiceUnavailable(AppError):
    status, code, openai_type = 503, "service_unavailable", "api_error"


class UpstreamTimeout(AppError):
    status, code, openai_type = 504, "upstream_timeout", "timeout"


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every /api error in our one shape."""
    if isinstance(exc, AppError):
        return Response(exc.as_dict(), status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None
    code = exc.get_codes() if isinstance(exc.detail, dict | list) else exc.default_code
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message, details = "invalid_request", "The request is invalid.", exc.detail
    elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        code, message, details = "invalid_api_key", str(exc.detail), None
        exc.status_code = 401
    else:
        message, details = str(exc.detail), None
    headers = {}
    if wait := getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(wait))
    return Response(
        {"error": {"code": code, "message": message, "details": details}},
        status=exc.status_code,
        headers=headers,
    )
