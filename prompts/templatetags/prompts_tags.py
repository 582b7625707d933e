from __future__ import annotations

from typing import Any

from django import template

from core.models import AuditEvent

register = template.Library()


def _v(data: Any) -> str:
    return f"v{data['version']}" if isinstance(data, dict) and "version" in data else "—"


@register.filter
def audit_summary(event: AuditEvent) -> str:
    """One readable line for a prompt's audit event."""
    before, after = event.before or {}, event.after or {}
    action = event.action
    if action == "prompt.create":
        return "created the prompt"
    if action == "prompt.update":
        return "changed " + ", ".join(f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in after)
    if action == "version.create":
        note = after.get("change_note")
        return f"saved {_v(after)}" + (f" — {note}" if note else "")
    if action in ("label.move", "label.rollback"):
        verb = "rolled back" if action == "label.rollback" else "moved"
        origin = _v(before) if before else "(new)"
        return f"{verb} {after.get('label')}: {origin} → {_v(after)}"
    if action == "approval.request":
        return f"asked for approval: {_v(after)} → {after.get('label')}"
    if action in ("approval.approve", "approval.reject"):
        verb = "approved" if action == "approval.approve" else "rejected"
        comment = after.get("comment")
        return f"{verb} {_v(after)} → {after.get('label')}" + (f" ({comment})" if comment else "")
    return action
