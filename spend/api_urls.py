from django.urls import path

from spend import api

urlpatterns = [
    path("usage", api.UsageListView.as_view(), name="usage-list"),
    path("budget", api.BudgetView.as_view(), name="budget"),
]
