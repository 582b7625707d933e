"""Mounted at /accounts/teams/<slug>/budgets/ (config/urls.py): each view takes the slug."""

from django.urls import path

from spend import team_views

app_name = "team-budgets"

urlpatterns = [
    path("", team_views.index, name="index"),
    path("preview/", team_views.budget_preview_view, name="preview"),
    path("save/", team_views.budget_save, name="save"),
    path("targets/", team_views.target_add, name="target-add"),
    path("targets/<int:target_id>/test/", team_views.target_test, name="target-test"),
    path("targets/<int:target_id>/delete/", team_views.target_delete, name="target-delete"),
]
