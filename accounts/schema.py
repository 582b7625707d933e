"""OpenAPI description of team-key auth, so /api/schema/ documents `Authorization: Bearer sb_...`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "teamKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sb_…",
            "description": "A team key: `Authorization: Bearer sb_...`.",
        }
