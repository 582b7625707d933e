from decimal import Decimal

from django import forms
from django.contrib import admin

from core.admin import AuditedAdmin
from core.money import usd_limit_problem
from spend.models import (
    AlertDelivery,
    AlertEvent,
    AlertTarget,
    Budget,
    BudgetReservation,
    DailyRollup,
    UsageRecord,
)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "team",
        "purpose",
        "model_name",
        "tier_name",
        "status",
        "cost_usd",
    ]
    list_filter = ["purpose", "status", "tier_name", "team"]
    search_fields = ["request_id"]

    def has_change_permission(self, request, obj=None):
        return False


class BudgetAdminForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = "__all__"  # noqa: DJ007 - the admin's own form, every field as before

    def clean_limit_usd(self) -> Decimal:
        value = self.cleaned_data["limit_usd"]
        problem = usd_limit_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin, admin.ModelAdmin):
    form = BudgetAdminForm
    list_display = ["team", "api_key", "period", "limit_usd", "spent_usd", "reserved_usd", "action"]


@admin.register(BudgetReservation)
class BudgetReservationAdmin(admin.ModelAdmin):
    list_display = ["budget", "request_id", "amount_usd", "created_at", "settled_at"]


@admin.register(AlertTarget)
class AlertTargetAdmin(AuditedAdmin, admin.ModelAdmin):
    """Where alerts go. The webhook's signing secret is not here: it is read from the
    environment variable named by settings.SPEND_ALERT_WEBHOOK_SECRET_ENV."""

    audit_redacted = ("webhook_url",)  # chat webhooks carry their token in the URL

    list_display = ["name", "team", "emails", "webhook_url", "notify_budget", "notify_error_spike"]
    list_filter = ["is_active", "team"]


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    readonly_fields = ["target", "channel", "status", "attempts", "response_status", "error"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "threshold", "team", "subject", "message"]
    list_filter = ["threshold", "team"]
    inlines = [AlertDeliveryInline]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    """Derived data, rebuilt by the rollup task: read-only."""

    list_display = ["day", "team", "prompt", "model_name", "tier_name", "purpose", "requests"]
    list_filter = ["day", "team", "tier_name", "purpose"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
