from django.urls import path

from prompts import api

# `export` and `import` are reserved slugs (prompts.services.RESERVED_SLUGS).
urlpatterns = [
    path("prompts", api.PromptListView.as_view(), name="prompts-list"),
    path("prompts/export", api.ExportView.as_view(), name="prompts-export"),
    path("prompts/import", api.ImportView.as_view(), name="prompts-import"),
    path("prompts/<slug:slug>", api.PromptDetailView.as_view(), name="prompts-detail"),
    path("prompts/<slug:slug>/versions", api.VersionListView.as_view(), name="prompts-versions"),
    path(
        "prompts/<slug:slug>/versions/<int:number>",
        api.VersionDetailView.as_view(),
        name="prompts-version",
    ),
    path("prompts/<slug:slug>/render", api.RenderView.as_view(), name="prompts-render"),
    path("prompts/<slug:slug>/labels", api.LabelListView.as_view(), name="prompts-labels"),
    path(
        "prompts/<slug:slug>/labels/<slug:name>",
        api.LabelMoveView.as_view(),
        name="prompts-label",
    ),
    path(
        "prompts/<slug:slug>/labels/<slug:name>/rollback",
        api.LabelRollbackView.as_view(),
        name="prompts-label-rollback",
    ),
    path("prompts/<slug:slug>/approvals", api.ApprovalListView.as_view(), name="prompts-approvals"),
    path(
        "prompt-approvals/<int:pk>/decide",
        api.ApprovalDecideView.as_view(),
        name="prompts-approval-decide",
    ),
]
