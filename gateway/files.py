"""A team's files (/v1/files): stored, read, listed and deleted, never across teams."""

from __future__ import annotations

import secrets

from django.conf import settings

from core.errors import BadRequest, NotFound, PayloadTooLarge
from gateway.models import StoredFile

UPLOAD_PURPOSES = (StoredFile.Purpose.BATCH, StoredFile.Purpose.USER_DATA)


def new_public_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def file_size_check(size: int) -> None:
    limit = int(settings.GATEWAY_FILE_MAX_BYTES)
    if size > limit:
        raise PayloadTooLarge(f"The file is {size:,} bytes; files are limited to {limit:,} bytes.")


def file_create(
    *, team_id: int, api_key_id: int | None, filename: str, purpose: str, content: bytes
) -> StoredFile:
    """Store an upload (purposes `batch` and `user_data`) or a batch's output."""
    if purpose not in StoredFile.Purpose.values:
        allowed = ", ".join(UPLOAD_PURPOSES)
        raise BadRequest(f"Unknown purpose {purpose!r}; use one of: {allowed}.", param="purpose")
    file_size_check(len(content))
    return StoredFile.objects.create(
        public_id=new_public_id("file-"),
        team_id=team_id,
        api_key_id=api_key_id,
        purpose=purpose,
        filename=(filename or "upload")[:255],
        size_bytes=len(content),
        content=content,
    )


def file_get(*, team_id: int, public_id: str, with_content: bool = False) -> StoredFile:
    """The team's file, or a 404 (another team's file is not there, as far as it can tell)."""
    files = StoredFile.objects.filter(team_id=team_id, public_id=public_id)
    found = (files if with_content else files.defer("content")).first()
    if found is None:
        raise NotFound(f"No such File object: {public_id}", param="file_id")
    return found


def file_list(*, team_id: int, purpose: str = "", limit: int = 100) -> list[StoredFile]:
    files = StoredFile.objects.filter(team_id=team_id).defer("content")
    if purpose:
        files = files.filter(purpose=purpose)
    return list(files[:limit])


def file_delete(*, team_id: int, public_id: str) -> None:
    found = file_get(team_id=team_id, public_id=public_id)
    found.delete()


def file_object(stored: StoredFile) -> dict:
    """The OpenAI file object."""
    return {
        "id": stored.public_id,
        "object": "file",
        "bytes": stored.size_bytes,
        "created_at": int(stored.created_at.timestamp()),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
