from django.urls import path

from prompts import views

app_name = "prompts"

urlpatterns = [
    path("", views.list, name="list"),
    path("new/", views.create, name="create"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:pk>/", views.approval, name="approval"),
    path("<slug:team>/<slug:slug>/", views.detail, name="detail"),
    path("<slug:team>/<slug:slug>/settings/", views.prompt_settings, name="settings"),
    path("<slug:team>/<slug:slug>/edit/", views.edit, name="edit"),
    path("<slug:team>/<slug:slug>/preview/", views.preview, name="preview"),
    path("<slug:team>/<slug:slug>/compare/", views.compare, name="compare"),
    path("<slug:team>/<slug:slug>/publish/", views.publish, name="publish"),
    path("<slug:team>/<slug:slug>/rollback/", views.rollback, name="rollback"),
]
