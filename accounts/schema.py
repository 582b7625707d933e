"""OpenAPI description of team-key authentication (drf-spectacular), so that the schema says
how to authenticate and clients such as schemathesis can send the key."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "teamKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A team key: `Authorization: Bearer sb_...`.",
        }
