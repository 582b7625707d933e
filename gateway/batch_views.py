"""OpenAI-compatible /v1/files and /v1/batches: a team key's files and batches, nobody else's.

Errors come in OpenAI's shape, so the official SDK raises its usual exception classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.models import ApiKey
from core.errors import AppError, BadRequest, MethodNotAllowed
from gateway import batches, files
from gateway.calls import new_request_id
from gateway.http import authenticate, json_body, openai_error

View = Callable[[HttpRequest, ApiKey], Awaitable[HttpResponse]]


def _serve(methods: dict[str, Callable[..., Awaitable[HttpResponse]]]) -> Callable:
    """An async view: the key first, then the handler for the method; errors as OpenAI's."""

    async def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        request_id = new_request_id()
        handler = methods.get(request.method or "")
        try:
            if handler is None:
                raise MethodNotAllowed(request.method or "", tuple(methods))
            api_key = await authenticate(request)
            response = await handler(request, api_key, **kwargs)
        except AppError as exc:
            return openai_error(exc, request_id)
        response["x-request-id"] = request_id
        return response

    return view


def _limit(request: HttpRequest, default: int, maximum: int) -> int:
    raw = request.GET.get("limit") or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}.", param="limit")
    return int(raw)


# ------------------------------------------------------------------------------ files


async def _file_upload(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        files.file_size_check(int(length) - 1024)  # what the multipart framing adds, about
    try:
        upload = request.FILES.get("file")
        purpose = request.POST.get("purpose", "")
    except Exception as exc:  # a malformed multipart body
        raise BadRequest(f"The upload could not be read: {exc}") from None
    if upload is None:
        raise BadRequest("Send the file as multipart form field `file`.", param="file")
    if purpose not in files.UPLOAD_PURPOSES:
        allowed = ", ".join(files.UPLOAD_PURPOSES)
        raise BadRequest(f"Unknown purpose {purpose!r}; use one of: {allowed}.", param="purpose")
    files.file_size_check(upload.size or 0)
    stored = await sync_to_async(files.file_create)(
        team_id=api_key.team_id,
        api_key_id=api_key.pk,
        filename=upload.name or "upload",
        purpose=purpose,
        content=upload.read(),
    )
    return JsonResponse(files.file_object(stored))


async def _file_list(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    found = await sync_to_async(files.file_list)(
        team_id=api_key.team_id,
        purpose=request.GET.get("purpose", ""),
        limit=_limit(request, 100, 10_000),
    )
    data = [files.file_object(stored) for stored in found]
    return JsonResponse({"object": "list", "data": data, "has_more": False})


async def _file_detail(request: HttpRequest, api_key: ApiKey, file_id: str) -> HttpResponse:
    stored = await sync_to_async(files.file_get)(team_id=api_key.team_id, public_id=file_id)
    return JsonResponse(files.file_object(stored))


async def _file_delete(request: HttpRequest, api_key: ApiKey, file_id: str) -> HttpResponse:
    await sync_to_async(files.file_delete)(team_id=api_key.team_id, public_id=file_id)
    return JsonResponse({"id": file_id, "object": "file", "deleted": True})


async def _file_content(request: HttpRequest, api_key: ApiKey, file_id: str) -> HttpResponse:
    stored = await sync_to_async(files.file_get)(
        team_id=api_key.team_id, public_id=file_id, with_content=True
    )
    return HttpResponse(bytes(stored.content), content_type="application/octet-stream")


files_root = _serve({"POST": _file_upload, "GET": _file_list})
file_detail = _serve({"GET": _file_detail, "DELETE": _file_delete})
file_content = _serve({"GET": _file_content})


# ------------------------------------------------------------------------------ batches


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"Missing required parameter: '{name}'.", param=name)
    return value


async def _batch_create(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    body = json_body(request)
    batch = await batches.batch_create(
        api_key=api_key,
        input_file_id=_string(body, "input_file_id"),
        endpoint=_string(body, "endpoint"),
        completion_window=_string(body, "completion_window"),
        metadata=body.get("metadata") or {},
    )
    batch = await sync_to_async(batches.batch_get)(
        team_id=api_key.team_id, public_id=batch.public_id
    )
    return JsonResponse(await sync_to_async(batches.batch_object)(batch))


async def _batch_list(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    def page() -> list[dict[str, Any]]:
        found = batches.batch_list(
            team_id=api_key.team_id,
            limit=_limit(request, 20, 100),
            after=request.GET.get("after", ""),
        )
        return [batches.batch_object(batch) for batch in found]

    data = await sync_to_async(page)()
    return JsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }
    )


async def _batch_detail(request: HttpRequest, api_key: ApiKey, batch_id: str) -> HttpResponse:
    def read() -> dict[str, Any]:
        return batches.batch_object(batches.batch_get(team_id=api_key.team_id, public_id=batch_id))

    return JsonResponse(await sync_to_async(read)())


async def _batch_cancel(request: HttpRequest, api_key: ApiKey, batch_id: str) -> HttpResponse:
    def cancel() -> dict[str, Any]:
        batches.batch_cancel(team_id=api_key.team_id, public_id=batch_id)
        return batches.batch_object(batches.batch_get(team_id=api_key.team_id, public_id=batch_id))

    return JsonResponse(await sync_to_async(cancel)())


batches_root = _serve({"POST": _batch_create, "GET": _batch_list})
batch_detail = _serve({"GET": _batch_detail})
batch_cancel = _serve({"POST": _batch_cancel})
