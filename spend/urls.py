from django.urls import path

from spend import views

app_name = "spend"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("export/usage.csv", views.export_usage, name="export-usage"),
    path("export/daily.csv", views.export_rollups, name="export-rollups"),
    path("what-if/", views.whatif, name="whatif"),
    path("what-if/<int:run_id>/", views.whatif_run, name="whatif-run"),
]
