"""Every /api/v1/ endpoint, gathered from the apps' api_urls modules."""

from django.urls import include, path

urlpatterns = [
    path("", include("prompts.api_urls")),
    path("", include("routing.api_urls")),
    path("", include("spend.api_urls")),
    path("", include("gateway.api_urls")),
    path("", include("playground.api_urls")),
]
