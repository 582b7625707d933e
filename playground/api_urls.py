from django.urls import path

from playground import api

# Ids are matched as text so that a malformed one reaches the view and gets a JSON 404.
urlpatterns = [
    path("jobs", api.JobListView.as_view(), name="jobs-list"),
    path("jobs/<str:pk>", api.JobDetailView.as_view(), name="jobs-detail"),
    path("jobs/<str:pk>/cancel", api.JobCancelView.as_view(), name="jobs-cancel"),
]
