"""/v1/: the OpenAI-compatible surface."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from gateway import batch_views, openai_views

app_name = "openai"

urlpatterns = [
    path("chat/completions", csrf_exempt(openai_views.chat_completions), name="chat-completions"),
    path("responses", csrf_exempt(openai_views.responses), name="responses"),
    path("models", openai_views.models, name="models"),
    path("models/<path:model>", openai_views.model_detail, name="model-detail"),
    path("files", csrf_exempt(batch_views.files_root), name="files"),
    path("files/<str:file_id>", csrf_exempt(batch_views.file_detail), name="file-detail"),
    path("files/<str:file_id>/content", batch_views.file_content, name="file-content"),
    path("batches", csrf_exempt(batch_views.batches_root), name="batches"),
    path("batches/<str:batch_id>", batch_views.batch_detail, name="batch-detail"),
    path(
        "batches/<str:batch_id>/cancel",
        csrf_exempt(batch_views.batch_cancel),
        name="batch-cancel",
    ),
]
