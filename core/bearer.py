"""The token of an `Authorization: Bearer <token>` header, the scheme in any case (RFC 7235)."""

from __future__ import annotations


def bearer_token(header: str) -> str | None:
    """The token, or None when the header names another scheme or no token."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
