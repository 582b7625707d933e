from django.urls import path

from prompts import api

# `export` and `import` are reserved slugs (prompts.services.RESERVED_SLUGS). Path parts are
# `str` so that any malformed slug or number reaches a view and gets our JSON 404, not an
# HTML page from the URL resolver.
urlpatterns = [
    path("prompts", api.PromptListView.as_view(), name="prompts-list"),
    path("prompts/export", api.ExportView.as_view(), name="prompts-export"),
    path("prompts/import", api.ImportView.as_view(), name="prompts-import"),
    path("prompts/<str:slug>", api.PromptDetailView.as_view(), name="prompts-detail"),
    path("prompts/<str:slug>/versions", api.VersionListView.as_view(), name="prompts-versions"),
    path(
        "prompts/<str:slug>/versions/<str:number>",
        api.VersionDetailView.as_view(),
        name="prompts-version",
    ),
    path("prompts/<str:slug>/render", api.RenderView.as_view(), name="prompts-render"),
    path("prompts/<str:slug>/labels", api.LabelListView.as_view(), name="prompts-labels"),
    path(
        "prompts/<str:slug>/labels/<str:name>",
        api.LabelMoveView.as_view(),
        name="prompts-label",
    ),
    path(
        "prompts/<str:slug>/labels/<str:name>/rollback",
        api.LabelRollbackView.as_view(),
        name="prompts-label-rollback",
    ),
    path("prompts/<str:slug>/approvals", api.ApprovalListView.as_view(), name="prompts-approvals"),
    path(
        "prompt-approvals/<str:pk>/decide",
        api.ApprovalDecideView.as_view(),
        name="prompts-approval-decide",
    ),
]
