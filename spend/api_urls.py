from django.urls import path

from spend import api, explorer_api

urlpatterns = [
    path("usage", api.UsageListView.as_view(), name="usage-list"),
    path("usage/summary", api.UsageSummaryView.as_view(), name="usage-summary"),
    path("budget", api.BudgetView.as_view(), name="budget"),
    path("requests", explorer_api.RequestListView.as_view(), name="request-list"),
    path(
        "requests/<str:request_id>",
        explorer_api.RequestDetailView.as_view(),
        name="request-detail",
    ),
]
