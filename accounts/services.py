from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Team, User
from core.audit import audit_record

KEY_PREFIX = "sb_"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    team: Team,
    name: str,
    created_by: User | None = None,
    rate_limit_rpm: int | None = None,
    rate_limit_tpm: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored or shown again."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        team=team,
        name=name,
        prefix=raw_key[:10],
        hashed_key=hash_key(raw_key),
        created_by=created_by,
        rate_limit_rpm=rate_limit_rpm,
        rate_limit_tpm=rate_limit_tpm,
    )
    audit_record(
        actor=created_by,
        action="api_key.create",
        obj=api_key,
        team=team,
        after={
            "name": name,
            "prefix": api_key.prefix,
            "rate_limit_rpm": rate_limit_rpm,
            "rate_limit_tpm": rate_limit_tpm,
        },
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(actor=actor, action="api_key.revoke", obj=api_key, team=api_key.team)
    return api_key


@transaction.atomic
def team_content_settings_update(
    *,
    team: Team,
    store_content: bool,
    retention_days: int,
    actor: User | None,
    no_content: bool = False,
) -> Team:
    """Whether request/response bodies are stored for this team, and for how many days; or
    that no content is stored anywhere (`no_content`, which excludes `store_content`)."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    if no_content and store_content:
        raise ValueError("a team that stores no content stores no bodies")
    fields = ("store_content", "no_content", "retention_days")
    before = {name: getattr(team, name) for name in fields}
    after = {
        "store_content": store_content,
        "no_content": no_content,
        "retention_days": retention_days,
    }
    if before != after:
        for name, value in after.items():
            setattr(team, name, value)
        team.save(update_fields=[*fields, "updated_at"])
        audit_record(
            actor=actor,
            action="team.content_settings",
            obj=team,
            team=team,
            before=before,
            after=after,
        )
    return team
