from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.teams, name="teams"),
    path("teams/<slug:slug>/", views.team_detail, name="team"),
    path("teams/<slug:slug>/members/", views.member_add, name="member-add"),
    path("teams/<slug:slug>/members/<int:member_id>/role/", views.member_role, name="member-role"),
    path(
        "teams/<slug:slug>/members/<int:member_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path("teams/<slug:slug>/keys/", views.key_create, name="key-create"),
    path("teams/<slug:slug>/keys/<int:key_id>/limits/", views.key_limits, name="key-limits"),
    path("teams/<slug:slug>/keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("teams/<slug:slug>/settings/", views.team_settings, name="team-settings"),
]
