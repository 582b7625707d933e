from django.contrib import admin

from playground.models import Comparison, Dataset, Job, ShadowPair, Vote


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["__str__", "team", "prompt_version", "saved", "created_by", "created_at"]
    list_filter = ["saved", "team"]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["comparison", "voter", "verdict", "winner", "updated_at"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "format", "row_count", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "team", "kind", "status", "done_items", "total_items", "cost_usd"]
    list_filter = ["kind", "status", "team"]
    readonly_fields = ["runner_token", "heartbeat_at", "cost_usd"]


@admin.register(ShadowPair)
class ShadowPairAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "prompt",
        "production_tier",
        "shadow_tier",
        "status",
        "agree",
        "created_at",
    ]
    list_filter = ["status", "team"]
