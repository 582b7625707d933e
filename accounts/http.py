"""The request type of signed-in pages, for the type checker: `login_required` guarantees a
`User`, and django-htmx's middleware adds `htmx`."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class AuthenticatedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails
