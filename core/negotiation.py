"""DRF content negotiation where `?format=` picks a renderer only when the view has one by
that name; otherwise the view reads the parameter itself (the prompt export's `yaml`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request


class FormatIfRendered(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        renderers = list(renderers)
        fmt = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if fmt and not any(renderer.format == fmt for renderer in renderers):
            # DRF would answer 404 as if the resource did not exist: let the view decide.
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
