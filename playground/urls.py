from django.urls import path

from playground import views

app_name = "playground"

urlpatterns = [
    path("", views.index, name="index"),
    path("variables", views.variables_form, name="variables"),
    path("c/new", views.comparison_create, name="comparison-create"),
    path("c/<int:pk>/", views.comparison_detail, name="comparison"),
    path("c/<int:pk>/extras", views.comparison_extras, name="comparison-extras"),
    path("c/<int:pk>/save", views.comparison_save, name="comparison-save"),
    path("c/<int:pk>/vote", views.comparison_vote, name="comparison-vote"),
    path("c/<int:pk>/col/<int:position>/run", views.column_run, name="column-run"),
    path("c/<int:pk>/col/<int:position>/stream", views.column_stream, name="column-stream"),
    path("c/<int:pk>/col/<int:position>/stop", views.column_stop, name="column-stop"),
    path(
        "c/<int:pk>/col/<int:position>/save-version",
        views.column_save_version,
        name="column-save-version",
    ),
    path("batch/", views.batch_list, name="batch-list"),
    path("batch/new", views.batch_new, name="batch-new"),
    path("batch/run", views.batch_run, name="batch-run"),
    path("batch/<int:pk>/", views.batch_detail, name="batch-detail"),
    path("batch/<int:pk>/progress", views.batch_progress, name="batch-progress"),
    path("batch/<int:pk>/cancel", views.batch_cancel, name="batch-cancel"),
    path("batch/<int:pk>/evaluate", views.batch_evaluate, name="batch-evaluate"),
    path("batch/<int:pk>/rows/<int:row>", views.batch_row, name="batch-row"),
    path("batch/<int:pk>/rows/<int:row>/vote", views.batch_row_vote, name="batch-row-vote"),
    path("batch/<int:pk>/export.<str:fmt>", views.batch_export, name="batch-export"),
    path(
        "batch/<int:pk>/columns/<int:column>/save-version",
        views.batch_save_version,
        name="batch-save-version",
    ),
    path("recommendations/", views.recommendations, name="recommendations"),
    path(
        "recommendations/<int:prompt_id>/apply",
        views.recommendation_apply,
        name="recommendation-apply",
    ),
    path("shadow/", views.shadow, name="shadow"),
    path("shadow/<int:prompt_id>/rate", views.shadow_rate, name="shadow-rate"),
    path("shadow/pairs/<int:pk>/review", views.shadow_review, name="shadow-review"),
]
