from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """The simulator banner is shown while no real provider key is configured."""
    return {"upstream_is_simulator": not settings.OPENAI_API_KEY}
