from django.urls import path

from evals import explorer, views

app_name = "evals"

urlpatterns = [
    path("prompts/<int:prompt_id>/", views.prompt_evaluators, name="prompt-evaluators"),
    path("prompts/<int:prompt_id>/new", views.evaluator_create, name="create"),
    path("prompts/<int:prompt_id>/preview", views.judge_preview, name="preview"),
    path("<int:pk>/", views.evaluator_detail, name="evaluator"),
    path("<int:pk>/version", views.evaluator_version, name="version"),
    path("<int:pk>/settings", views.evaluator_settings, name="settings"),
    path("requests/confirm", explorer.requests_confirm, name="requests-confirm"),
    path("requests/run", explorer.requests_run, name="requests-run"),
    path("requests/runs/<int:pk>/", explorer.request_run, name="request-run"),
]
