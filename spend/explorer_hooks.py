"""The request explorer's extension points for the apps above spend, filled in their
`AppConfig.ready`: a panel above the list (given the viewer and the list's filters) and a
section in a request's drawer. Each hook returns HTML from its own app's templates, or ""
when it has nothing to say; spend never imports those apps."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from spend.explorer import RequestDetail, RequestFilters

ListPanel = Callable[[HttpRequest, RequestFilters], str]
DrawerSection = Callable[[HttpRequest, RequestDetail], str]
_list_panels: list[ListPanel] = []
_drawer_sections: list[DrawerSection] = []


def list_panel_register(panel: ListPanel) -> None:
    if panel not in _list_panels:
        _list_panels.append(panel)


def drawer_section_register(section: DrawerSection) -> None:
    if section not in _drawer_sections:
        _drawer_sections.append(section)


def list_panels(request: HttpRequest, filters: RequestFilters) -> list[SafeString]:
    # the hooks render their own templates, which escape what they show
    return [mark_safe(html) for panel in _list_panels if (html := panel(request, filters))]  # noqa: S308


def drawer_sections(request: HttpRequest, detail: RequestDetail) -> list[SafeString]:
    return [
        mark_safe(html)  # noqa: S308
        for section in _drawer_sections
        if (html := section(request, detail))
    ]
