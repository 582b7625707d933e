"""`Idempotency-Key`: a retried request returns the first result instead of running again.

Same key + same body → the stored response (status, body, headers) with
`Idempotent-Replayed: true`; same key + different body → 409 `idempotency_key_reused`;
a retry while the first request still runs → 409 `idempotency_in_progress` with Retry-After.

Only successful results (status below 400) are kept. An error response or an exception
releases the key, so that a retry runs again: after a 429 the client waits and retries, after a
402 the budget may have been raised, after a 5xx the upstream may be back. Streams cannot be
replayed: a streaming response releases the key too.

Two ways to use it:
- decorate a view (async or sync, function or `as_view()`): `idempotent(view)`; it works on
  POST/PUT/PATCH and passes other methods through;
- or call `idempotency_begin_sync` / `idempotency_finish_sync` / `idempotency_release_sync`
  around the work.

Keys are scoped per caller (the SHA-256 of the bearer key), so two teams cannot collide, or
read each other's results, by choosing the same Idempotency-Key. Requests without a bearer key
pass through. The stored response is encrypted (AES-GCM) under a key derived from the bearer
key, which the site never stores: the database holds no readable prompt output, so a team
that keeps no content keeps none here either, and a leaked table reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone

from core.bearer import bearer_token
from core.errors import AppError, BadRequest, Conflict
from core.metrics import IDEMPOTENT_REPLAYS
from core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
METHODS = frozenset({"POST", "PUT", "PATCH"})
# Response headers not worth replaying (per-response, or set again by the middleware).
_SKIP_HEADERS = frozenset({"set-cookie", "x-request-id", "date", "content-length", "vary"})


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def as_response(self) -> HttpResponse:
        response = HttpResponse(self.body, status=self.status, content_type=self.content_type)
        for name, value in self.headers.items():
            response[name] = value
        response[REPLAYED_HEADER] = "true"
        return response


@dataclass(frozen=True)
class Caller:
    """Whose key space (`scope`, stored) and the secret that seals its results (never stored)."""

    scope: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_bearer(cls, token: str) -> Caller:
        return cls(
            scope="k:" + hashlib.sha256(token.encode()).hexdigest(),
            secret=hmac.new(token.encode(), b"switchboard idempotency v1", "sha256").digest(),
        )


@dataclass(frozen=True)
class Reservation:
    record_id: int
    caller: Caller
    key: str


def _seal(caller: Caller, key: str, body: str, headers: dict[str, str]) -> str:
    nonce = os.urandom(12)
    plain = json.dumps({"body": body, "headers": headers}).encode()
    sealed = AESGCM(caller.secret).encrypt(nonce, plain, _bound_to(caller, key))
    return base64.b64encode(nonce + sealed).decode()


def _unseal(caller: Caller, key: str, sealed: str) -> dict[str, Any] | None:
    """The stored body and headers; None if they cannot be read (a row written before
    responses were sealed, or altered in the database)."""
    try:
        raw = base64.b64decode(sealed)
        return json.loads(AESGCM(caller.secret).decrypt(raw[:12], raw[12:], _bound_to(caller, key)))
    except (InvalidTag, ValueError):
        return None


def _bound_to(caller: Caller, key: str) -> bytes:
    """Associated data: a sealed response opens only in its own row."""
    return f"{caller.scope}\n{key}".encode()


def idempotency_key_from(request: HttpRequest) -> str | None:
    """The request's Idempotency-Key, None if absent; 400 if it is not a sane token."""
    key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise BadRequest(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters.",
            param=HEADER,
        )
    return key


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    """SHA-256 of method, path (with query) and body; JSON bodies are compared by content, so
    key order and whitespace do not make a retry look different."""
    canonical = body
    if body[:1] in (b"{", b"["):
        try:
            canonical = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), b"\n", path.encode("utf-8", "surrogatepass"), b"\n", canonical):
        digest.update(part)
    return digest.hexdigest()


def idempotency_caller(request: HttpRequest) -> Caller | None:
    """The caller of a request with a bearer key; None without one."""
    token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    return None if token is None else Caller.from_bearer(token)


# --- the service ------------------------------------------------------------------------------


def idempotency_begin_sync(
    *, caller: Caller, key: str, fingerprint: str
) -> StoredResponse | Reservation:
    """Reserve the key, or return the stored response; raises 409 as described above."""
    for _ in range(3):  # a row may expire or be released between our insert and our read
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    scope=caller.scope,
                    key=key,
                    fingerprint=fingerprint,
                    locked_until=now + timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS),
                    expires_at=now + timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS),
                )
            return Reservation(record_id=record.pk, caller=caller, key=key)
        except IntegrityError:
            pass
        found = IdempotencyRecord.objects.filter(scope=caller.scope, key=key).first()
        if found is None:
            continue
        record = found
        if record.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=record.pk, expires_at__lte=now).delete()
            continue
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"This {HEADER} was already used with a different request; use a new key.",
                param=HEADER,
            )
        if record.state == IdempotencyRecord.State.DONE:
            stored = _unseal(caller, key, record.sealed_response)
            if stored is None:
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
                continue
            IDEMPOTENT_REPLAYS.inc()
            return StoredResponse(
                status=record.status_code or 200,
                body=stored["body"],
                content_type=record.content_type or "application/json",
                headers=stored["headers"],
            )
        if record.locked_until > now:
            raise IdempotencyInProgress(
                f"A request with this {HEADER} is still being processed; retry shortly.",
                param=HEADER,
                headers={"Retry-After": "1"},
            )
        # The first attempt's process died holding the key: take the reservation over.
        taken = IdempotencyRecord.objects.filter(
            pk=record.pk,
            state=IdempotencyRecord.State.IN_PROGRESS,
            locked_until=record.locked_until,
        ).update(locked_until=now + timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS))
        if taken:
            return Reservation(record_id=record.pk, caller=caller, key=key)
    raise IdempotencyInProgress(
        f"A request with this {HEADER} is still being processed; retry shortly.",
        param=HEADER,
        headers={"Retry-After": "1"},
    )


def idempotency_finish_sync(
    reservation: Reservation,
    *,
    status: int,
    body: str,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """Store the result for replay (status < 400), or release the key (errors)."""
    if status >= 400:
        idempotency_release_sync(reservation)
        return
    IdempotencyRecord.objects.filter(pk=reservation.record_id).update(
        state=IdempotencyRecord.State.DONE,
        status_code=status,
        sealed_response=_seal(reservation.caller, reservation.key, body, headers or {}),
        content_type=content_type[:100],
        locked_until=timezone.now(),
    )


def idempotency_release_sync(reservation: Reservation) -> None:
    """Forget the key, so that a retry runs the request again."""
    IdempotencyRecord.objects.filter(
        pk=reservation.record_id, state=IdempotencyRecord.State.IN_PROGRESS
    ).delete()


def idempotency_purge(*, now: Any = None) -> int:
    """Delete expired records; returns how many (the periodic task calls this)."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


# One thread hop per call (not one per query, as the async ORM would take).
idempotency_release = sync_to_async(idempotency_release_sync)


# --- the view decorator --------------------------------------------------------------------------


def _storable(response: HttpResponseBase) -> tuple[str, dict[str, str]] | None:
    if response.streaming:
        return None
    render = getattr(response, "render", None)
    if callable(render):
        render()  # DRF and template responses render lazily; replay needs the bytes now
    try:
        body = response.content.decode("utf-8")  # type: ignore[attr-defined]
    except UnicodeDecodeError:
        return None
    headers = {
        name: value
        for name, value in response.items()
        if name.lower() not in _SKIP_HEADERS and name.lower() != "content-type"
    }
    return body, headers


def _begin_for_request(request: HttpRequest) -> StoredResponse | Reservation | None:
    """None when the request does not ask for idempotency (no key, not a write, no bearer key)."""
    if request.method not in METHODS:
        return None
    key = idempotency_key_from(request)
    caller = idempotency_caller(request) if key else None
    if key is None or caller is None:
        return None
    fingerprint = request_fingerprint(
        method=request.method, path=request.get_full_path(), body=request.body
    )
    return idempotency_begin_sync(caller=caller, key=key, fingerprint=fingerprint)


def _finish_for_response(reservation: Reservation, response: HttpResponseBase) -> None:
    stored = _storable(response)
    if stored is None:
        idempotency_release_sync(reservation)
        return
    idempotency_finish_sync(
        reservation,
        status=response.status_code,
        body=stored[0],
        content_type=response.get("Content-Type", "application/json"),
        headers=stored[1],
    )


def _error_response(request: HttpRequest, error: AppError) -> HttpResponse:
    from core.middleware import error_response

    return error_response(request.path, error)


def idempotent(
    view: Callable[..., Any], *, authenticate: Callable[[HttpRequest], Any] | None = None
) -> Callable[..., Any]:
    """Make a view honour Idempotency-Key (see the module docstring). Async or sync views.

    `authenticate(request)` (awaited for an async view) runs before any replay and raises an
    AppError for a caller it refuses: a stored result is never replayed to a revoked key; the
    view itself then answers the refusal. Requests without the header pass straight through,
    at the cost of one dict lookup."""

    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.META.get("HTTP_IDEMPOTENCY_KEY") is None:
                return await view(request, *args, **kwargs)
            if authenticate is not None:
                try:
                    await authenticate(request)
                except AppError:
                    return await view(request, *args, **kwargs)
            try:
                begun = await sync_to_async(_begin_for_request)(request)
            except AppError as error:
                return _error_response(request, error)
            if begun is None:
                return await view(request, *args, **kwargs)
            if isinstance(begun, StoredResponse):
                return begun.as_response()
            try:
                response = await view(request, *args, **kwargs)
            except BaseException:
                await idempotency_release(begun)
                raise
            await sync_to_async(_finish_for_response)(begun, response)
            return response

        return async_wrapper

    @wraps(view)
    def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.META.get("HTTP_IDEMPOTENCY_KEY") is None:
            return view(request, *args, **kwargs)
        if authenticate is not None:
            try:
                authenticate(request)
            except AppError:
                return view(request, *args, **kwargs)
        try:
            begun = _begin_for_request(request)
        except AppError as error:
            return _error_response(request, error)
        if begun is None:
            return view(request, *args, **kwargs)
        if isinstance(begun, StoredResponse):
            return begun.as_response()
        try:
            response = view(request, *args, **kwargs)
        except BaseException:
            idempotency_release_sync(begun)
            raise
        _finish_for_response(begun, response)
        return response

    return sync_wrapper
