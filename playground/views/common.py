"""Helpers the playground's pages share: a refused form post, saving a column as a version."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from core.errors import AppError
from playground import services
from playground.columns import ColumnSpec


def flash_error(request: HttpRequest, exc: AppError) -> None:
    """A refused form post: 403 when the user lacks the right, else the message on the page
    the view redirects to."""
    if exc.status == 403:
        raise PermissionDenied(exc.message) from None
    messages.error(request, exc.message)


def save_version_response(
    request, *, version, spec: ColumnSpec, note: str, back: str
) -> HttpResponse:
    try:
        created = services.prompt_version_from_column(
            version=version, spec=spec, actor=request.user, note=note
        )
    except AppError as exc:
        flash_error(request, exc)
        return redirect(back)
    url = reverse("prompts:detail", args=[created.prompt.team.slug, created.prompt.slug])
    messages.success(
        request,
        format_html(
            'Saved as a new version: <a href="{}?version={}" data-testid="saved-version">{} v{}</a>'
            " ({}). Publish it from the prompt page.",
            url,
            created.number,
            created.prompt.slug,
            created.number,
            spec.label,
        ),
    )
    return redirect(back)
