from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send


def static_files_app(app: ASGIApp) -> ASGIApp:
    """Wrap the Django ASGI app so that requests under STATIC_URL are served as files."""
    static_root = settings.STATIC_ROOT
    if not (static_root / "staticfiles.json").exists() and not (static_root / "admin").exists():
        return ASGIStaticFilesHandler(app)
    files = StaticFiles(directory=static_root)
    prefix = "/" + settings.STATIC_URL.strip("/") + "/"

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(prefix):
            scope = {**scope, "path": scope["path"][len(prefix) - 1 :], "root_path": ""}
            await files(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
