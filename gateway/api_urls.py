"""/api/v1/: the prompt run endpoint and the routing explanation (plain async views)."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from core.idempotency import idempotent
from gateway import api
from gateway.http import authenticate
from gateway.schema import PromptRunDoc, RouteExplainDoc, documented

urlpatterns = [
    path(
        "prompts/<slug:slug>/run",
        documented(
            csrf_exempt(idempotent(api.prompt_run, authenticate=authenticate)), PromptRunDoc
        ),
        name="prompt-run",
    ),
    path(
        "route", documented(csrf_exempt(api.route_explain), RouteExplainDoc), name="route-explain"
    ),
]
