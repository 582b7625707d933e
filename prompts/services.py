"""Writes and workflows for prompts: create, version, publish (labels), approve, roll back,
import and export. Every change is an audit event on the prompt, inside the change's
transaction. The hot cache (`core.hot`) hears of every write once it commits.

`actor=None` means the system (management commands, seed data): it skips the role checks
that apply to people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Role, Team, User
from accounts.selectors import user_teams
from core.audit import audit_record
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from prompts.caching import CACHE_KEY_RE
from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion, TaskTag
from prompts.rendering import validate_version_templates
from prompts.selectors import user_can_approve, user_can_edit

REASONING_EFFORTS = ("", "none", "minimal", "low", "medium", "high", "xhigh")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,98}[a-z0-9])?$")
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
EXPORT_FORMAT = "switchboard.prompts/v1"
# URL words next to /prompts/<slug> (API and pages), so no prompt may take them as its slug
RESERVED_SLUGS = frozenset({"export", "import", "new", "approvals"})


class ApprovalRequired(Forbidden):
    code = "approval_required"


def _require_editor(actor: User | None, team: Team) -> None:
    if actor is not None and not user_can_edit(user=actor, team=team):
        raise Forbidden("Only a prompt editor of this team can change its prompts.")


# ---------------------------------------------------------------------------------------------
# Prompts


PROMPT_FIELDS = (
    "name",
    "description",
    "task_tag",
    "requires_approval",
    "store_content",
    "shadow_sample_rate",
    "cache_key",
)


def _clean_prompt_fields(fields: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    unknown = set(fields) - set(PROMPT_FIELDS)
    for name in sorted(unknown):
        errors[name] = "Unknown field."
    if "name" in fields and not (
        isinstance(fields["name"], str) and 0 < len(fields["name"]) <= 200
    ):
        errors["name"] = "A name of 1 to 200 characters is required."
    if "description" in fields and not isinstance(fields["description"], str):
        errors["description"] = "Must be text."
    if "task_tag" in fields and fields["task_tag"] not in TaskTag.values:
        errors["task_tag"] = "Must be one of: " + ", ".join(TaskTag.values) + "."
    for flag in ("requires_approval", "store_content"):
        if flag in fields and not isinstance(fields[flag], bool):
            errors[flag] = "Must be true or false."
    if "cache_key" in fields and not (
        isinstance(fields["cache_key"], str)
        and (fields["cache_key"] == "" or CACHE_KEY_RE.fullmatch(fields["cache_key"]))
    ):
        errors["cache_key"] = "Up to 64 letters, digits, '-', '_', '.' or ':'; or blank."
    if "shadow_sample_rate" in fields:
        try:
            rate = Decimal(str(fields["shadow_sample_rate"]))
            if not Decimal("0") <= rate <= Decimal("1"):
                raise InvalidOperation
            fields = {**fields, "shadow_sample_rate": rate}
        except (InvalidOperation, ValueError):
            errors["shadow_sample_rate"] = "A number between 0 and 1."
    if errors:
        raise ValidationFailed("The prompt is invalid.", details=errors)
    return fields


def _prompt_state(prompt: Prompt) -> dict[str, Any]:
    state = {name: getattr(prompt, name) for name in PROMPT_FIELDS}
    state["shadow_sample_rate"] = str(
        Decimal(str(state["shadow_sample_rate"])).quantize(Decimal("0.001"))
    )
    return state


@transaction.atomic
def prompt_create(*, team: Team, slug: str, name: str, actor: User | None, **fields: Any) -> Prompt:
    _require_editor(actor, team)
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or slug in RESERVED_SLUGS:
        raise ValidationFailed(
            "Invalid slug.",
            details={"slug": "Lowercase letters, digits, '-' and '_' (at most 100)."},
        )
    fields = _clean_prompt_fields({"name": name, **fields})
    if Prompt.objects.filter(team=team, slug=slug).exists():
        raise Conflict(f"Team {team.slug!r} already has a prompt {slug!r}.", param="slug")
    prompt = Prompt.objects.create(team=team, slug=slug, **fields)
    audit_record(
        actor=actor,
        action="prompt.create",
        obj=prompt,
        team=team,
        after={"slug": slug, **_prompt_state(prompt)},
    )
    return prompt


@transaction.atomic
def prompt_update(*, prompt: Prompt, actor: User | None, **fields: Any) -> Prompt:
    """Change a prompt's settings (not its templates: those live in immutable versions)."""
    _require_editor(actor, prompt.team)
    fields = _clean_prompt_fields(fields)
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    before = _prompt_state(prompt)
    for name, value in fields.items():
        setattr(prompt, name, value)
    prompt.save()
    after = _prompt_state(prompt)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        audit_record(
            actor=actor,
            action="prompt.update",
            obj=prompt,
            team=prompt.team,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return prompt


# ---------------------------------------------------------------------------------------------
# Versions


VERSION_FIELDS = (
    "system_template",
    "user_template",
    "few_shot",
    "variables",
    "tier",
    "model_name",
    "temperature",
    "max_output_tokens",
    "reasoning_effort",
    "tools",
    "response_schema",
)


def _clean_settings(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    for text in ("system_template", "user_template", "tier", "model_name", "reasoning_effort"):
        if not isinstance(fields.get(text, ""), str):
            errors[text] = "Must be text."
    if len(fields.get("tier", "") or "") > 32:
        errors["tier"] = "At most 32 characters."
    if len(fields.get("model_name", "") or "") > 100:
        errors["model_name"] = "At most 100 characters."
    if fields.get("reasoning_effort", "") not in REASONING_EFFORTS:
        errors["reasoning_effort"] = "One of: " + ", ".join(e for e in REASONING_EFFORTS if e)
    temperature = fields.get("temperature")
    if temperature is not None and temperature != "":
        try:
            value = Decimal(str(temperature))
            if isinstance(temperature, bool) or not Decimal("0") <= value <= Decimal("2"):
                raise InvalidOperation
            fields["temperature"] = value.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            errors["temperature"] = "A number between 0 and 2."
    else:
        fields["temperature"] = None
    max_tokens = fields.get("max_output_tokens")
    if max_tokens is not None and max_tokens != "":
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            errors["max_output_tokens"] = "A positive whole number."
    else:
        fields["max_output_tokens"] = None
    tools = fields.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        errors["tools"] = "A list of tool definitions (objects)."
    fields["tools"] = tools if isinstance(tools, list) else []
    schema = fields.get("response_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            errors["response_schema"] = "A JSON schema object, or null."
        else:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                errors["response_schema"] = f"Not a valid JSON schema: {exc.message}"
    return fields, errors


def version_content(version: PromptVersion) -> dict[str, Any]:
    """What a version says (its templates, schema and model settings), as plain JSON."""
    return {
        "system_template": version.system_template,
        "user_template": version.user_template,
        "few_shot": version.few_shot or [],
        "variables": version.variables or [],
        "tier": version.tier,
        "model_name": version.model_name,
        "temperature": None if version.temperature is None else str(version.temperature),
        "max_output_tokens": version.max_output_tokens,
        "reasoning_effort": version.reasoning_effort,
        "tools": version.tools or [],
        "response_schema": version.response_schema,
    }


def prompt_version_create(
    *,
    prompt: Prompt,
    author: User | None,
    system_template: str = "",
    user_template: str = "",
    few_shot: list[dict] | None = None,
    variables: list[dict] | None = None,
    tier: str = "",
    model_name: str = "",
    temperature: Decimal | str | float | None = None,
    max_output_tokens: int | None = None,
    reasoning_effort: str = "",
    tools: list[dict] | None = None,
    response_schema: dict | None = None,
    change_note: str = "",
    number: int | None = None,
) -> PromptVersion:
    """Validate and save version N+1 (or `number`, for imports that keep history).

    Raises ValidationFailed (422) with one detail per problem: template syntax (with line),
    variables used but not declared, a bad variable schema or model setting.
    """
    _require_editor(author, prompt.team)
    few_shot = [] if few_shot is None else few_shot
    variables = [] if variables is None else variables
    report = validate_version_templates(
        system_template=system_template if isinstance(system_template, str) else "",
        user_template=user_template if isinstance(user_template, str) else "",
        few_shot=few_shot,
        variables=variables,
    )
    fields, errors = _clean_settings(
        {
            "system_template": system_template,
            "user_template": user_template,
            "tier": tier or "",
            "model_name": model_name or "",
            "temperature": temperature,
            "max_output_tokens": max_output_tokens,
            "reasoning_effort": reasoning_effort or "",
            "tools": tools,
            "response_schema": response_schema,
        }
    )
    if not isinstance(change_note, str) or len(change_note) > 500:
        errors["change_note"] = "At most 500 characters."
    if not (str(system_template).strip() or str(user_template).strip()):
        errors["user_template"] = "A version needs a system or a user template."
    errors = {**report.as_details(), **errors}
    if errors:
        raise ValidationFailed(
            "The version is invalid: " + "; ".join(report.errors or sorted(errors)),
            details=errors,
        )
    with transaction.atomic():
        # Lock the prompt row so two saves cannot both take number N+1 (on SQLite the
        # IMMEDIATE transaction already serializes writers; the unique constraint backs both).
        locked = Prompt.objects.select_for_update().get(pk=prompt.pk)
        latest = locked.versions.aggregate(latest=Max("number"))["latest"] or 0
        if number is None:
            number = latest + 1
        elif PromptVersion.objects.filter(prompt=locked, number=number).exists():
            raise Conflict(f"Version {number} of {prompt.slug!r} already exists.")
        try:
            with transaction.atomic():
                version = PromptVersion.objects.create(
                    prompt=locked,
                    number=number,
                    few_shot=few_shot,
                    variables=variables,
                    author=author,
                    change_note=change_note,
                    **fields,
                )
        except IntegrityError:
            raise Conflict("Another version was saved at the same time; try again.") from None
        audit_record(
            actor=author,
            action="version.create",
            obj=locked,
            team=locked.team,
            after={"version": number, "change_note": change_note},
        )
    version.prompt = prompt
    return version


# ---------------------------------------------------------------------------------------------
# Labels and approvals


@dataclass(frozen=True)
class PublishResult:
    """Either the label moved, or an approval request now waits (and the label stayed)."""

    label: Label | None = None
    approval: ApprovalRequest | None = None

    @property
    def moved(self) -> bool:
        return self.label is not None


def _is_protected(prompt: Prompt, label: str) -> bool:
    return prompt.requires_approval and label == Label.PRODUCTION


def _held_label_before(version: PromptVersion, label: str) -> bool:
    from core.models import AuditEvent

    return AuditEvent.objects.filter(
        object_type=Prompt._meta.label_lower,
        object_id=str(version.prompt_id),
        action__in=("label.move", "label.rollback"),
        after__label=label,
        after__version=version.number,
    ).exists()


def _is_cleared(version: PromptVersion, label: str) -> bool:
    """May this version take a protected label without a new approval?"""
    return ApprovalRequest.objects.filter(
        version=version, label_name=label, status=ApprovalRequest.Status.APPROVED
    ).exists() or _held_label_before(version, label)


def _check_version(prompt: Prompt, version: PromptVersion, label: str) -> None:
    if version.prompt_id != prompt.pk:
        raise NotFound("That version belongs to another prompt.", param="version")
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise ValidationFailed(
            "Invalid label name.",
            details={"label": "Lowercase letters, digits, '-' and '_' (at most 64)."},
        )


def _move(
    *, prompt: Prompt, label: str, version: PromptVersion, actor: User | None, action: str
) -> Label:
    existing = Label.objects.select_for_update().filter(prompt=prompt, name=label).first()
    before = None
    if existing is None:
        moved = Label.objects.create(prompt=prompt, name=label, version=version, updated_by=actor)
    else:
        before = {"label": label, "version": existing.version.number}
        if existing.version_id == version.pk:
            return existing
        existing.previous_version_id = existing.version_id
        existing.version = version
        existing.updated_by = actor
        existing.save()
        moved = existing
    audit_record(
        actor=actor,
        action=action,
        obj=prompt,
        team=prompt.team,
        before=before,
        after={"label": label, "version": version.number},
    )
    return moved


@transaction.atomic
def label_move(*, prompt: Prompt, label: str, version: PromptVersion, actor: User | None) -> Label:
    """Point `label` at `version`. A protected label (production on a prompt that requires
    approval) only takes an approved version: else ApprovalRequired (403)."""
    _require_editor(actor, prompt.team)
    _check_version(prompt, version, label)
    if actor is not None and _is_protected(prompt, label) and not _is_cleared(version, label):
        raise ApprovalRequired(
            f"Version {version.number} needs an approver's OK before it can take {label!r}."
        )
    return _move(prompt=prompt, label=label, version=version, actor=actor, action="label.move")


@transaction.atomic
def version_publish(
    *, prompt: Prompt, version: PromptVersion, label: str, actor: User
) -> PublishResult:
    """What the Publish button does: move the label, or ask for approval when it is
    protected. An approver who is not the version's author publishes directly (their
    publish is the approval); anyone else gets a pending request and the label stays."""
    _require_editor(actor, prompt.team)
    _check_version(prompt, version, label)
    if not _is_protected(prompt, label) or _is_cleared(version, label):
        return PublishResult(
            label=label_move(prompt=prompt, label=label, version=version, actor=actor)
        )
    if user_can_approve(user=actor, team=prompt.team) and version.author_id != actor.pk:
        request = approval_request_create(version=version, label=label, actor=actor)
        request = approval_decide(
            request=request, approver=actor, approve=True, comment="Published by an approver."
        )
        return PublishResult(label=Label.objects.get(prompt=prompt, name=label), approval=request)
    return PublishResult(
        approval=approval_request_create(version=version, label=label, actor=actor)
    )


@transaction.atomic
def label_rollback(
    *, prompt: Prompt, label: str, actor: User | None, version: PromptVersion | None = None
) -> Label:
    """Move `label` back: to `version` if given, else to where it pointed before its last move.

    On a protected label the target must have held the label before or be approved."""
    _require_editor(actor, prompt.team)
    current = Label.objects.select_for_update().filter(prompt=prompt, name=label).first()
    if current is None:
        raise NotFound(f"Prompt {prompt.slug!r} has no label {label!r}.", param="label")
    target = version or current.previous_version
    if target is None:
        raise Conflict(f"Label {label!r} has no earlier version to roll back to.")
    _check_version(prompt, target, label)
    if target.pk == current.version_id:
        raise Conflict(f"Label {label!r} already points at version {target.number}.")
    if actor is not None and _is_protected(prompt, label) and not _is_cleared(target, label):
        raise ApprovalRequired(
            f"Version {target.number} never held {label!r} and is not approved for it."
        )
    return _move(prompt=prompt, label=label, version=target, actor=actor, action="label.rollback")


@transaction.atomic
def approval_request_create(
    *, version: PromptVersion, label: str = Label.PRODUCTION, actor: User
) -> ApprovalRequest:
    """Ask for `version` to take `label`; a request already waiting is returned as it is."""
    prompt = version.prompt
    _require_editor(actor, prompt.team)
    _check_version(prompt, version, label)
    pending = ApprovalRequest.objects.filter(
        version=version, label_name=label, status=ApprovalRequest.Status.PENDING
    ).first()
    if pending is not None:
        return pending
    request = ApprovalRequest.objects.create(version=version, label_name=label, requested_by=actor)
    audit_record(
        actor=actor,
        action="approval.request",
        obj=prompt,
        team=prompt.team,
        after={"label": label, "version": version.number, "request": request.pk},
    )
    return request


@transaction.atomic
def approval_decide(
    *, request: ApprovalRequest, approver: User, approve: bool, comment: str = ""
) -> ApprovalRequest:
    """Approve (the label moves to the version at once) or reject a waiting request.

    The approver needs the prompt_approver role in the prompt's team and may not decide on
    a version they wrote."""
    request = (
        ApprovalRequest.objects.select_for_update()
        .select_related("version__prompt__team")
        .get(pk=request.pk)
    )
    version = request.version
    prompt = version.prompt
    if not user_can_approve(user=approver, team=prompt.team):
        raise Forbidden(f"Only a {Role.PROMPT_APPROVER} of this team can decide on approvals.")
    if version.author_id is not None and version.author_id == approver.pk:
        raise Forbidden("You cannot approve or reject your own version.")
    if request.status != ApprovalRequest.Status.PENDING:
        raise Conflict(f"This request was already {request.status}.")
    request.status = ApprovalRequest.Status.APPROVED if approve else ApprovalRequest.Status.REJECTED
    request.decided_by = approver
    request.decided_at = timezone.now()
    request.comment = comment or ""
    request.save()
    audit_record(
        actor=approver,
        action="approval.approve" if approve else "approval.reject",
        obj=prompt,
        team=prompt.team,
        before={"status": ApprovalRequest.Status.PENDING},
        after={
            "status": request.status,
            "label": request.label_name,
            "version": version.number,
            "request": request.pk,
            "comment": request.comment,
        },
    )
    if approve:
        _move(
            prompt=prompt,
            label=request.label_name,
            version=version,
            actor=approver,
            action="label.move",
        )
    return request


# ---------------------------------------------------------------------------------------------
# Export and import


def prompts_export(*, prompts: Any) -> dict[str, Any]:
    """Prompts with their whole version history and labels, as a plain JSON/YAML document."""
    items = []
    for prompt in prompts.select_related("team").prefetch_related(
        "versions__author", "labels__version"
    ):
        versions = sorted(prompt.versions.all(), key=lambda v: v.number)
        items.append(
            {
                "team": prompt.team.slug,
                "slug": prompt.slug,
                **_prompt_state(prompt),
                "labels": {label.name: label.version.number for label in prompt.labels.all()},
                "versions": [
                    {
                        "number": v.number,
                        **version_content(v),
                        "change_note": v.change_note,
                        "author": v.author.username if v.author else None,
                    }
                    for v in versions
                ],
            }
        )
    return {"format": EXPORT_FORMAT, "prompts": items}


@dataclass
class ImportResult:
    created_prompts: list[str] = field(default_factory=list)
    created_versions: list[str] = field(default_factory=list)
    moved_labels: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created_prompts)} prompts created, "
            f"{len(self.created_versions)} versions created, "
            f"{len(self.moved_labels)} labels moved, {len(self.unchanged)} versions unchanged"
        )


def _same_content(version: PromptVersion, spec: dict[str, Any]) -> bool:
    stored = version_content(version)
    wanted = {key: spec.get(key, default) for key, default in _VERSION_DEFAULTS.items()}
    if wanted["temperature"] is not None:
        try:
            wanted["temperature"] = str(
                Decimal(str(wanted["temperature"])).quantize(Decimal("0.01"))
            )
        except InvalidOperation:
            return False
    return stored == wanted


_VERSION_DEFAULTS: dict[str, Any] = {
    "system_template": "",
    "user_template": "",
    "few_shot": [],
    "variables": [],
    "tier": "",
    "model_name": "",
    "temperature": None,
    "max_output_tokens": None,
    "reasoning_effort": "",
    "tools": [],
    "response_schema": None,
}


def _import_one(
    *, spec: Any, team: Team | None, actor: User | None, result: ImportResult, where: str
) -> dict[str, str]:
    """Import one prompt; return its errors (keyed by where they are) instead of raising."""
    if not isinstance(spec, dict):
        return {where: "Each prompt must be an object."}
    slug = spec.get("slug")
    where = f"{where} ({slug})" if isinstance(slug, str) else where
    if team is None:
        # A team the actor is not in answers like one that does not exist: an import must not
        # tell anyone which team slugs are taken.
        teams = Team.objects.all() if actor is None else user_teams(user=actor)
        team = teams.filter(slug=str(spec.get("team") or "")).first()
        if team is None:
            return {where: f"Unknown team {spec.get('team')!r}; pass a team to import into."}
    if actor is not None and not user_can_edit(user=actor, team=team):
        return {where: f"You may not edit prompts of team {team.slug!r}."}
    errors: dict[str, str] = {}
    meta = {k: spec[k] for k in PROMPT_FIELDS if k in spec}
    try:
        prompt = Prompt.objects.filter(team=team, slug=slug).first()
        if prompt is None:
            prompt = prompt_create(
                team=team, slug=slug, name=meta.pop("name", slug), actor=actor, **meta
            )
            result.created_prompts.append(f"{team.slug}/{slug}")
        elif meta:
            prompt = prompt_update(prompt=prompt, actor=actor, **meta)
    except (ValidationFailed, Conflict, Forbidden) as exc:
        return {where: f"{exc.message} {exc.details or ''}".strip()}
    versions = spec.get("versions") or []
    if not isinstance(versions, list):
        return {f"{where}.versions": "Must be a list."}
    for index, vspec in enumerate(versions):
        vwhere = f"{where}.versions[{index}]"
        if not isinstance(vspec, dict):
            errors[vwhere] = "Each version must be an object."
            continue
        number = vspec.get("number")
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or number < 1
        ):
            errors[vwhere] = "number must be a positive integer."
            continue
        existing = None
        if number is not None:
            existing = prompt.versions.filter(number=number).first()
        else:
            existing = prompt.versions.order_by("-number").first()
            if existing is not None and not _same_content(existing, vspec):
                existing = None
        if existing is not None:
            if not _same_content(existing, vspec):
                errors[vwhere] = (
                    f"Version {number} already exists with different content; versions are "
                    "immutable, so give the change a new number (or none)."
                )
            else:
                result.unchanged.append(f"{team.slug}/{slug} v{existing.number}")
            continue
        unknown = set(vspec) - set(_VERSION_DEFAULTS) - {"number", "change_note", "author"}
        if unknown:
            errors[vwhere] = "Unknown keys: " + ", ".join(sorted(unknown))
            continue
        content = {key: vspec.get(key, default) for key, default in _VERSION_DEFAULTS.items()}
        try:
            created = prompt_version_create(
                prompt=prompt,
                author=actor,
                number=number,
                change_note=vspec.get("change_note") or "Imported",
                **content,
            )
        except (ValidationFailed, Conflict) as exc:
            errors[vwhere] = f"{exc.message}"
            continue
        result.created_versions.append(f"{team.slug}/{slug} v{created.number}")
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict):
        errors[f"{where}.labels"] = "Must map label names to version numbers."
        labels = {}
    if errors:
        return errors
    for name, number in labels.items():
        lwhere = f"{where}.labels.{name}"
        target = prompt.versions.filter(number=number).first() if isinstance(number, int) else None
        if target is None:
            errors[lwhere] = f"No version {number!r} to point the label at."
            continue
        current = Label.objects.filter(prompt=prompt, name=name).first()
        if current is not None and current.version_id == target.pk:
            continue
        try:
            label_move(prompt=prompt, label=name, version=target, actor=actor)
        except (ValidationFailed, Forbidden, NotFound) as exc:
            errors[lwhere] = exc.message
            continue
        result.moved_labels.append(f"{team.slug}/{slug}@{name} → v{number}")
    return errors


def prompts_import(*, document: Any, actor: User | None, team: Team | None = None) -> ImportResult:
    """Import an exported document, all or nothing: one transaction, and every problem in
    one ValidationFailed whose details are keyed by item (`prompts[1] (slug).versions[0]`).

    Versions are matched by number: an identical one is left alone, a different one is an
    error (versions are immutable), a missing one is created. Labels are moved to match.
    With `team`, every prompt goes into that team; else each names its team's slug."""
    if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
        raise ValidationFailed(
            "Not a prompts document.", details={"prompts": "Expected {format, prompts: [...]}."}
        )
    if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise ValidationFailed(
            "Unknown document format.", details={"format": f"Expected {EXPORT_FORMAT!r}."}
        )
    result = ImportResult()
    errors: dict[str, str] = {}
    with transaction.atomic():
        seen: set[tuple[str, str]] = set()
        for index, spec in enumerate(document["prompts"]):
            where = f"prompts[{index}]"
            key = (
                team.slug if team else str((spec or {}).get("team")),
                str((spec or {}).get("slug")),
            )
            if key in seen:
                errors[where] = f"Prompt {key[1]!r} appears twice."
                continue
            seen.add(key)
            errors.update(
                _import_one(spec=spec, team=team, actor=actor, result=result, where=where)
            )
        if errors:
            # Raising inside the atomic block rolls every earlier item back.
            raise ValidationFailed(
                f"Import failed with {len(errors)} problem(s); nothing was changed.",
                details=errors,
            )
    return result
