"""The fast lane's URLconf: only the gateway's routes (same paths and names as in the site's
URLconf), so resolving a request does not walk every app's patterns."""

from django.urls import include, path

urlpatterns = [
    path("v1/", include("gateway.openai_urls")),
    path("api/v1/", include("gateway.api_urls")),
]

handler404 = "core.views.not_found"
