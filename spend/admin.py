from django.contrib import admin

from spend.models import Budget, BudgetReservation, UsageRecord


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


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["team", "api_key", "period", "limit_usd", "spent_usd", "reserved_usd", "action"]


@admin.register(BudgetReservation)
class BudgetReservationAdmin(admin.ModelAdmin):
    list_display = ["budget", "request_id", "amount_usd", "created_at", "settled_at"]
