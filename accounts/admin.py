from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiKey, Membership, Team, User
from core.admin import REDACTED, AuditedAdmin
from core.audit import audit_record


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(User)
class SwitchboardUserAdmin(AuditedAdmin, UserAdmin):
    def user_change_password(self, request, id, form_url=""):
        # the password form saves the user itself, past save_model
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, id)
            audit_record(
                actor=request.user,
                action="user.password_change",
                obj=user,
                after={"password": REDACTED},
            )
        return response


@admin.register(Team)
class TeamAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "store_content", "no_content", "retention_days"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "team", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["team"]
    readonly_fields = ["prefix", "hashed_key", "last_used_at", "created_by"]
    search_fields = ["name", "prefix"]

    def has_add_permission(self, request):
        return (
            False  # keys are created on the team page or by create_api_key, which show the key once
        )
