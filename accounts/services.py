from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Membership, Team, User
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


class MembershipError(ValueError):
    """A membership change that cannot be made; the message says why, for the form."""


def _find_user(identifier: str) -> User:
    identifier = identifier.strip()
    user = User.objects.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        matches = list(User.objects.filter(email__iexact=identifier)[:2])
        if len(matches) > 1:
            raise MembershipError(f"Several people use {identifier}: add them by username.")
        user = matches[0] if matches else None
    if user is None or not user.is_active:
        raise MembershipError(f"No one with the username or email {identifier!r}.")
    return user


@transaction.atomic
def membership_add(
    *, team: Team, identifier: str, role: str = Membership.TeamRole.MEMBER, actor: User | None
) -> Membership:
    """Add an existing person to the team, found by username or email."""
    user = _find_user(identifier)
    if Membership.objects.filter(team=team, user=user).exists():
        raise MembershipError(f"{user.username} is already in {team.name}.")
    membership = Membership.objects.create(team=team, user=user, role=role)
    audit_record(
        actor=actor,
        action="membership.add",
        obj=membership,
        team=team,
        after={"user": user.username, "role": role},
    )
    return membership


def _keeps_an_admin(membership: Membership) -> None:
    """A team keeps at least one team admin, so it never locks itself out of its own pages."""
    others = Membership.objects.filter(
        team_id=membership.team_id, role=Membership.TeamRole.ADMIN
    ).exclude(pk=membership.pk)
    if membership.role == Membership.TeamRole.ADMIN and not others.exists():
        raise MembershipError(f"{membership.user.username} is the team's only team admin.")


@transaction.atomic
def membership_role_change(*, membership: Membership, role: str, actor: User | None) -> Membership:
    if role == membership.role:
        return membership
    if role != Membership.TeamRole.ADMIN:
        _keeps_an_admin(membership)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        actor=actor,
        action="membership.role",
        obj=membership,
        team=membership.team,
        before={"user": membership.user.username, "role": before},
        after={"user": membership.user.username, "role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None) -> None:
    _keeps_an_admin(membership)
    audit_record(
        actor=actor,
        action="membership.remove",
        obj=membership,
        team=membership.team,
        before={"user": membership.user.username, "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def api_key_limits_update(
    *,
    api_key: ApiKey,
    rate_limit_rpm: int | None,
    rate_limit_tpm: int | None,
    actor: User | None,
) -> ApiKey:
    """Change a key's requests and tokens per minute (None: no limit)."""
    before = {"rate_limit_rpm": api_key.rate_limit_rpm, "rate_limit_tpm": api_key.rate_limit_tpm}
    after = {"rate_limit_rpm": rate_limit_rpm, "rate_limit_tpm": rate_limit_tpm}
    if before != after:
        api_key.rate_limit_rpm, api_key.rate_limit_tpm = rate_limit_rpm, rate_limit_tpm
        api_key.save(update_fields=["rate_limit_rpm", "rate_limit_tpm", "updated_at"])
        audit_record(
            actor=actor,
            action="api_key.limits",
            obj=api_key,
            team=api_key.team,
            before=before,
            after=after,
        )
    return api_key
