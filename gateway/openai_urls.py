"""/v1/: the OpenAI-compatible surface."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from gateway import openai_views

app_name = "openai"

urlpatterns = [
    path("chat/completions", csrf_exempt(openai_views.chat_completions), name="chat-completions"),
    path("responses", csrf_exempt(openai_views.responses), name="responses"),
    path("models", openai_views.models, name="models"),
    path("models/<path:model>", openai_views.model_detail, name="model-detail"),
]
