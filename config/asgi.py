"""ASGI entry point: the Django site, with static files served by an async handler.

Static files never pass through Django's middleware, so the gateway's hot path stays
fully async. After `collectstatic` the collected (hashed) files are served from
STATIC_ROOT; before it, the app and project static folders are served directly.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
django_application = get_asgi_application()

from config.static import static_files_app  # noqa: E402  (needs settings loaded)
from core.asgi import body_size_limit  # noqa: E402
from gateway.asgi import with_gateway  # noqa: E402

# Oversized bodies are refused before Django reads them (core/asgi.py); gateway paths take the
# fast lane (gateway/asgi.py), before the static files' prefix is looked at.
application = body_size_limit(with_gateway(static_files_app(django_application)))
