from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core import views as core_views
from spend import views as spend_views

urlpatterns = [
    path("", spend_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script, so the CSP holds.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("api/v1/", include("config.api_urls")),
    path("v1/", include("gateway.openai_urls")),
    path("prompts/", include("prompts.urls")),
    path("routing/", include("routing.urls")),
    path("usage/", include("spend.urls")),
    path("requests/", include("spend.explorer_urls")),
    path("playground/", include("playground.urls")),
    path("evaluators/", include("evals.urls")),
    path("accounts/", include("accounts.urls")),
    path("accounts/teams/<slug:slug>/budgets/", include("spend.team_urls")),
]

handler404 = "core.views.not_found"
