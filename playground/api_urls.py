from django.urls import path

from playground import api

urlpatterns = [
    path("jobs", api.JobListView.as_view(), name="jobs-list"),
    path("jobs/<int:pk>", api.JobDetailView.as_view(), name="jobs-detail"),
    path("jobs/<int:pk>/cancel", api.JobCancelView.as_view(), name="jobs-cancel"),
]
