from __future__ import annotations

import json
import re
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms.models import model_to_dict

from core.audit import audit_record
from core.models import AuditEvent, Heartbeat

# Never written to an audit event, whatever the model: a changed value shows as changed only.
SECRET_FIELDS = frozenset({"password", "hashed_key"})
REDACTED = "[redacted]"


def _action(obj: models.Model, verb: str) -> str:
    """`ApiKey` + "update" -> "api_key.update", like the services' own audit actions."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(obj).__name__).lower() + "." + verb


def _plain(value: Any) -> Any:
    """A form or model value as JSON: related objects by primary key (a many-to-many set as
    sorted keys), Decimals as strings."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, models.QuerySet) or (
        isinstance(value, list) and value and all(isinstance(v, models.Model) for v in value)
    ):
        return sorted(v.pk for v in value)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


# Named, not imported: core sits below accounts.
TEAM_MODEL = "accounts.Team"


def _team(obj: models.Model) -> Any:
    if obj._meta.label == TEAM_MODEL:
        return obj
    field = next((f for f in obj._meta.concrete_fields if f.name == "team"), None)
    related = field.related_model if field is not None else None
    if related is None or isinstance(related, str):
        return None
    return getattr(obj, "team", None) if related._meta.label == TEAM_MODEL else None


class AuditedAdmin:
    """Admin adds, changes and deletes of this model and of its inlines' models become audit
    events (`<model>.create|update|delete`, e.g. `rule.update`) with the actor and, for each
    changed field, its value before and after. Fields in SECRET_FIELDS or `audit_redacted`
    show as changed, never with their values. Put it before `admin.ModelAdmin` in the bases."""

    audit_redacted: tuple[str, ...] = ()

    def _audit_values(self, obj: models.Model, values: dict[str, Any]) -> dict[str, Any]:
        opts = obj._meta
        names = {f.name for f in [*opts.concrete_fields, *opts.many_to_many] if not f.primary_key}
        secret = SECRET_FIELDS | set(self.audit_redacted)
        return {k: REDACTED if k in secret else _plain(v) for k, v in values.items() if k in names}

    def _audit(self, request, obj: models.Model, verb: str, **states: Any) -> None:
        audit_record(
            actor=request.user, action=_action(obj, verb), obj=obj, team=_team(obj), **states
        )

    def _audit_form(self, request, form, obj: models.Model, *, created: bool) -> None:
        if created:
            self._audit(request, obj, "create", after=self._audit_values(obj, form.cleaned_data))
            return
        changed = {k: form.cleaned_data.get(k) for k in form.changed_data}
        if after := self._audit_values(obj, changed):
            before = self._audit_values(obj, {k: form.initial.get(k) for k in changed})
            self._audit(request, obj, "update", before=before, after=after)

    def _audit_delete(self, request, obj: models.Model, values: dict[str, Any]) -> None:
        self._audit(request, obj, "delete", before=self._audit_values(obj, values))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._audit_form(request, form, obj, created=not change)

    def save_formset(self, request, form, formset, change):
        # recorded before the save: a deleted object has no primary key afterwards; a form's
        # initial values are the stored ones (its instance holds what was posted)
        for deleted in formset.deleted_forms:
            if deleted.instance.pk is not None:
                self._audit_delete(request, deleted.instance, deleted.initial)
        super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if inline_form in formset.deleted_forms or not inline_form.has_changed():
                continue
            created = inline_form not in formset.initial_forms
            self._audit_form(request, inline_form, inline_form.instance, created=created)

    def delete_model(self, request, obj):
        self._audit_delete(request, obj, model_to_dict(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._audit_delete(request, obj, model_to_dict(obj))
        super().delete_queryset(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "team", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type", "team"]
    search_fields = ["object_repr", "object_id"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "seen_at"]
