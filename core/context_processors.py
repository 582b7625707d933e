from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """The simulator banner is shown while no real provider key is configured; `csp_nonce`
    lets inline scripts run under the Content-Security-Policy (`<script nonce="{{ csp_nonce }}">`);
    django-htmx's `{% htmx_script %}` uses it by itself."""
    return {
        "upstream_is_simulator": not settings.OPENAI_API_KEY,
        "csp_nonce": getattr(request, "csp_nonce", ""),
    }
