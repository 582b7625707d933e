from django.contrib import admin

from core.admin import AuditedAdmin
from routing.models import (
    Model,
    Policy,
    Price,
    Provider,
    Rule,
    ShutdownAlert,
    Tier,
    TierModel,
)


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "base_url", "api_key_env", "timeout_seconds"]


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0
    readonly_fields = ["created_at"]
    fields = [
        "effective_from",
        "input_per_mtok",
        "cached_input_per_mtok",
        "cache_write_per_mtok",
        "output_per_mtok",
        "long_context_threshold",
        "long_context_input_multiplier",
        "long_context_output_multiplier",
        "source",
        "created_at",
    ]


@admin.register(Model)
class ModelAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "provider", "tier", "context_window", "shutdown_date", "is_active"]
    list_filter = ["provider", "tier", "is_active"]
    search_fields = ["name"]
    inlines = [PriceInline]


class TierModelInline(admin.TabularInline):
    model = TierModel
    extra = 0
    ordering = ["position"]


@admin.register(Tier)
class TierAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "rank", "reasoning_effort", "description"]
    inlines = [TierModelInline]


class RuleInline(admin.StackedInline):
    model = Rule
    extra = 0
    ordering = ["position"]


@admin.register(Policy)
class PolicyAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "is_active", "updated_at"]
    inlines = [RuleInline]


@admin.register(ShutdownAlert)
class ShutdownAlertAdmin(admin.ModelAdmin):
    list_display = ["model", "shutdown_date", "days_before", "sent_at"]
    readonly_fields = ["model", "shutdown_date", "days_before", "sent_at", "recipients"]

    def has_add_permission(self, request):
        return False  # written by the lifecycle task only
