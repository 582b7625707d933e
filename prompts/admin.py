from django.contrib import admin

from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "team", "task_tag", "requires_approval"]
    list_filter = ["team", "task_tag"]
    search_fields = ["slug", "name"]
    inlines = [LabelInline]


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ["prompt", "number", "author", "created_at", "change_note"]
    list_filter = ["prompt__team"]

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["version", "label_name", "status", "requested_by", "decided_by"]
    list_filter = ["status"]
