from __future__ import annotations

from typing import Any

from django.db import models

from core.models import AuditEvent


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model,
    team: Any = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append an audit event for a change to `obj`. Call inside the write's transaction."""
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        team=team,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )
