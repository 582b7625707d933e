from __future__ import annotations

from collections.abc import Iterable

from django import template

from routing.selectors import SHUTDOWN_WARNING_DAYS, models_near_shutdown, user_can_edit_routing

register = template.Library()


@register.inclusion_tag("routing/_lifecycle_warning.html", takes_context=True)
def lifecycle_warnings(
    context,
    models: Iterable[str] | str | None = None,
    days: int = SHUTDOWN_WARNING_DAYS,
    remap: bool = False,
):
    """Warn about models past or within `days` of their shutdown that routing still uses.

    `{% load routing_tags %}{% lifecycle_warnings %}` on any page; `models=` limits the
    warning to the named models (a list, or one comma-separated string), e.g. a playground's
    columns, and then also covers models no tier or rule uses. `remap=True` shows the
    one-step remap button to users who may edit routing."""
    names = None
    if models:
        names = (
            {name.strip() for name in models.split(",")} if isinstance(models, str) else set(models)
        )
    notices = models_near_shutdown(days=days, in_use_only=names is None)
    if names is not None:
        notices = [notice for notice in notices if notice.model.name in names]
    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "notices": notices,
        "days": days,
        "can_remap": remap and user is not None and user_can_edit_routing(user=user),
        "csrf_token": context.get("csrf_token"),
    }
