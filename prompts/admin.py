"""Admin for prompts. Settings of a prompt are editable here (and audited); versions are
immutable and labels/approvals follow rules, so those are read-only here: they change
through the prompt pages or the API, which go through prompts.services."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import AuditedAdmin
from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LabelInline(ReadOnlyMixin, admin.TabularInline):
    model = Label
    fk_name = "prompt"
    fields = ["name", "version", "previous_version", "updated_by", "updated_at"]
    readonly_fields = fields
    extra = 0


class VersionInline(ReadOnlyMixin, admin.TabularInline):
    model = PromptVersion
    fields = ["number", "change_note", "author", "tier", "model_name", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Prompt)
class PromptAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["slug", "name", "team", "task_tag", "requires_approval", "page"]
    list_filter = ["team", "task_tag", "requires_approval"]
    search_fields = ["slug", "name", "description"]
    list_select_related = ["team"]
    inlines = [LabelInline, VersionInline]

    def get_readonly_fields(self, request, obj=None):
        # a slug is part of every client's URL and cache key: fixed once created
        return ["team", "slug"] if obj else []

    @admin.display(description="Page")
    def page(self, obj: Prompt) -> str:
        url = reverse("prompts:detail", args=[obj.team.slug, obj.slug])
        return format_html('<a href="{}">open</a>', url)


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["prompt", "number", "author", "created_at", "change_note"]
    list_filter = ["prompt__team"]
    search_fields = ["prompt__slug", "change_note"]
    list_select_related = ["prompt", "author"]

    def has_view_permission(self, request, obj=None):
        return True


@admin.register(Label)
class LabelAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["prompt", "name", "version", "previous_version", "updated_by", "updated_at"]
    list_filter = ["name", "prompt__team"]
    list_select_related = ["prompt", "version__prompt", "previous_version__prompt", "updated_by"]

    def has_view_permission(self, request, obj=None):
        return True


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["version", "label_name", "status", "requested_by", "decided_by", "created_at"]
    list_filter = ["status", "version__prompt__team"]
    list_select_related = ["version__prompt", "requested_by", "decided_by"]

    def has_view_permission(self, request, obj=None):
        return True
