from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.keys import api_key_resolve_sync
from accounts.models import ApiKey
from core.bearer import bearer_token


@dataclass
class ApiKeyUser(AnonymousUser):
    """The principal of a request made with a team key: it belongs to exactly one team."""

    api_key: ApiKey

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            return None
        api_key = api_key_resolve_sync(token)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
