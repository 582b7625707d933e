from django.contrib import admin

from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "api_key_env", "timeout_seconds"]


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "tier", "context_window", "shutdown_date", "is_active"]
    list_filter = ["provider", "tier", "is_active"]
    search_fields = ["name"]
    inlines = [PriceInline]


class TierModelInline(admin.TabularInline):
    model = TierModel
    extra = 0
    ordering = ["position"]


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "rank", "reasoning_effort", "description"]
    inlines = [TierModelInline]


class RuleInline(admin.StackedInline):
    model = Rule
    extra = 0
    ordering = ["position"]


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "updated_at"]
    inlines = [RuleInline]
