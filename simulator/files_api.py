"""/v1/files: upload (multipart), retrieve, content, delete and list, kept in memory.

The Batch API reads its input files from here and writes its output and error files here.
Ids count up from one per server (`file-sim000001`), so a run's ids are reproducible.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.failures import SimulatorError, invalid_request

PURPOSES = frozenset({"batch", "batch_output", "assistants", "fine-tune", "user_data", "evals"})


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self._ids = itertools.count(1)

    def add(self, *, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(
            id=f"file-sim{next(self._ids):06d}",
            filename=filename,
            purpose=purpose,
            content=content,
            created_at=int(time.time()),
        )
        self.files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise SimulatorError(
                404, f"No such File object: {file_id}", code="file_not_found", param="id"
            )
        return stored


def routes(store: FileStore) -> list[tuple[str, Any, list[str]]]:
    """(path, endpoint, methods) for the app's routing table."""

    async def upload(request: Request) -> Response:
        form = await request.form()
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or purpose not in PURPOSES:
            raise invalid_request(f"Invalid purpose {purpose!r}.", param="purpose")
        if upload is None or isinstance(upload, str):
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        content = await upload.read()
        stored = store.add(
            filename=upload.filename or "upload", purpose=purpose, content=bytes(content)
        )
        return JSONResponse(stored.as_dict())

    async def listing(request: Request) -> Response:
        purpose = request.query_params.get("purpose")
        data = [f.as_dict() for f in store.files.values() if purpose in (None, f.purpose)]
        return JSONResponse({"object": "list", "data": data, "has_more": False})

    async def detail(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if request.method == "DELETE":
            store.get(file_id)
            del store.files[file_id]
            return JSONResponse({"id": file_id, "object": "file", "deleted": True})
        return JSONResponse(store.get(file_id).as_dict())

    async def content(request: Request) -> Response:
        stored = store.get(request.path_params["file_id"])
        return Response(stored.content, media_type="application/octet-stream")

    return [
        ("/v1/files", upload, ["POST"]),
        ("/v1/files", listing, ["GET"]),
        ("/v1/files/{file_id}", detail, ["GET", "DELETE"]),
        ("/v1/files/{file_id}/content", content, ["GET"]),
    ]
