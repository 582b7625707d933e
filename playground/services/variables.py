"""Checking a prompt version's variables before anything runs, with one message per row."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidVariables
from prompts.models import PromptVersion


def variables_check(*, version: PromptVersion, variables: dict[str, Any]) -> None:
    """Raise InvalidVariables (422, one entry per bad field) unless the version renders."""
    from prompts.rendering import render_version

    render_version(version, variables)


def invalid_variables_text(exc: InvalidVariables) -> str:
    details = exc.details
    if isinstance(details, dict):
        return "; ".join(f"{k}: {v}" for k, v in details.items())
    if isinstance(details, list) and details:
        return "; ".join(
            f"{d.get('name') or d.get('field') or d.get('param')}: {d.get('message')}"
            if isinstance(d, dict)
            else str(d)
            for d in details
        )
    return exc.message
