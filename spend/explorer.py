"""The request explorer's reads: gateway requests one row each, filtered and keyset-paged, and
one request's detail (its attempts, route, cost by component and content).

A request is every usage record sharing a `request_id` (a classifier call, the upstream
attempts, or a refusal). Its row in the list is its *last* record, the one no later attempt
follows: that record carries the outcome (model, tier, status) and the route's final reason.
The list scans the ledger newest first and stops at a page: PostgreSQL walks the
`created_at` index (or the team's, or the partial index of unsuccessful records), so a page
costs about the same at any depth and under inserts (the cursor is the last row's sort key
and id). The page's requests' records are then read in one query by `request_id`: a record
that a later attempt follows is dropped, the others fold their earlier attempts in.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from accounts.models import Role, Team, User
from accounts.selectors import user_has_role, user_teams
from core.money import ZERO
from routing.models import Price
from spend.models import UsageRecord
from spend.pricing import PriceNotFound, cost_components, price_at

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class Status:
    """The explorer's request statuses: the record's status, and a failed output check (an
    error record with the `failed_check` code) apart from other errors."""

    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    FAILED_CHECK = "failed_check"
    REFUSED = "refused"
    CHOICES = [
        (SUCCESS, "Success"),
        (ERROR, "Error"),
        (CANCELLED, "Cancelled"),
        (FAILED_CHECK, "Failed check"),
        (REFUSED, "Refused (budget or rate limit)"),
    ]


class Route:
    ESCALATED = "escalated"
    FELL_BACK = "fell_back"
    CHOICES = [(ESCALATED, "Escalated"), (FELL_BACK, "Fell back")]


# The pipeline's route notes (gateway.pipeline) that mark a fallback or an escalation, as
# the answering attempt's record has them: "<model> failed (<kind>)" when a tier moves on to
# its next model, "every <tier> model failed: fell back to <tier>" between tiers.
_FELL_BACK_NOTES = (" failed (", "fell back to ")
_ESCALATED_NOTE = "escalated to "

SORTS = {"time": "created_at", "cost": "cost_usd", "latency": "latency_ms"}


@dataclass(frozen=True)
class RequestFilters:
    """What the list is asked for; `team_ids` are already access-checked."""

    team_ids: tuple[int, ...]
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    api_key_id: int | None = None
    prompt_ids: tuple[int, ...] = ()
    version: int | None = None
    model: str = ""
    tier: str = ""
    status: str = ""
    purpose: str = ""
    rule: str = ""
    route: str = ""
    min_cost: Decimal | None = None
    min_latency_ms: int | None = None
    search: str = ""
    metadata: tuple[str, str] | None = None  # (key, value): `q=task_tag:invoice`
    sort: str = "time"


def _metadata_values(text: str) -> list[Any]:
    """The JSON values a searched metadata value matches: the string, and the number, boolean
    or null it spells (metadata values are scalars; `42` finds 42 and "42")."""
    values: list[Any] = [text]
    try:
        parsed = json.loads(text)
    except ValueError:
        return values
    if parsed is None or isinstance(parsed, int | float | bool):
        values.append(parsed)
    return values


def _metadata_q(key: str, value: str) -> Q:
    """Records whose metadata has `key` = `value`. PostgreSQL: containment (`@>`), which the
    partial GIN index `usage_metadata` serves; SQLite: the key's JSON value."""
    q = Q()
    for candidate in _metadata_values(value):
        if connection.vendor == "postgresql":
            q |= Q(metadata__contains={key: candidate})
        else:
            q |= Q(metadata_value=candidate)
    return q


def requests_filtered(filters: RequestFilters) -> QuerySet[UsageRecord]:
    """The records matching `filters` (unordered); `request_page` keeps the requests' last."""
    qs = UsageRecord.objects.filter(team_id__in=filters.team_ids)
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)
    if filters.api_key_id is not None:
        qs = qs.filter(api_key_id=filters.api_key_id)
    if filters.prompt_ids:
        qs = qs.filter(prompt_version__prompt_id__in=filters.prompt_ids)
        if filters.version is not None:
            qs = qs.filter(prompt_version__number=filters.version)
    if filters.model:
        qs = qs.filter(model_name=filters.model)
    if filters.tier:
        qs = qs.filter(tier_name=filters.tier)
    if filters.status == Status.FAILED_CHECK:
        qs = qs.filter(status=UsageRecord.Status.ERROR, error_code="failed_check")
    elif filters.status == Status.ERROR:
        qs = qs.filter(status=UsageRecord.Status.ERROR).exclude(error_code="failed_check")
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.purpose:
        qs = qs.filter(purpose=filters.purpose)
    if filters.rule:
        qs = qs.filter(rule=filters.rule)
    if filters.route == Route.ESCALATED:
        qs = qs.filter(route_reason__contains=_ESCALATED_NOTE)
    elif filters.route == Route.FELL_BACK:
        qs = qs.filter(
            Q(route_reason__contains=_FELL_BACK_NOTES[0])
            | Q(route_reason__contains=_FELL_BACK_NOTES[1])
        )
    if filters.min_cost is not None:
        qs = qs.filter(cost_usd__gte=filters.min_cost)
    if filters.min_latency_ms is not None:
        qs = qs.filter(latency_ms__gte=filters.min_latency_ms)
    if filters.search:
        qs = qs.filter(request_id__startswith=filters.search)
    if filters.metadata:
        key, value = filters.metadata
        if connection.vendor != "postgresql":
            qs = qs.alias(metadata_value=KeyTransform(key, "metadata"))
        qs = qs.filter(_metadata_q(key, value))
    return qs


# --------------------------------------------------------------------------- cursors


def cursor_encode(record: UsageRecord, sort: str) -> str:
    value = getattr(record, SORTS[sort])
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    raw = json.dumps([sort, text, record.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str, sort: str) -> tuple[Any, int]:
    """(sort value, id) of a cursor made for `sort`; ValueError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, text, record_id = json.loads(raw)
        if kind != sort or not isinstance(record_id, int) or not isinstance(text, str):
            raise ValueError
        if sort == "time":
            value: Any = dt.datetime.fromisoformat(text)
            if value.tzinfo is None:
                raise ValueError
        elif sort == "cost":
            value = Decimal(text)
        else:
            value = int(text)
    except (ValueError, TypeError, ArithmeticError, json.JSONDecodeError):
        raise ValueError("Not a cursor of this list.") from None
    return value, record_id


# --------------------------------------------------------------------------- the list


@dataclass
class RequestRow:
    """One request: its last record, and what its other records add."""

    record: UsageRecord
    attempts: list[UsageRecord] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def status(self) -> str:
        record = self.record
        if record.status == UsageRecord.Status.ERROR and record.error_code == "failed_check":
            return Status.FAILED_CHECK
        return record.status

    @property
    def cost_usd(self) -> Decimal:
        return (
            sum((r.cost_usd for r in self.attempts), ZERO)
            if self.attempts
            else self.record.cost_usd
        )

    @property
    def fell_back(self) -> bool:
        return any(note in self.record.route_reason for note in _FELL_BACK_NOTES)

    @property
    def escalated(self) -> bool:
        return _ESCALATED_NOTE in self.record.route_reason

    @property
    def classified(self) -> bool:
        return any(r.purpose == "classifier" for r in self.attempts if r is not self.record)

    @property
    def requested_tier(self) -> str:
        """The tier of the first upstream attempt: where the route first sent it."""
        first = next((r for r in self.attempts if r.purpose != "classifier"), self.record)
        return first.tier_name


@dataclass
class RequestPage:
    rows: list[RequestRow]
    next_cursor: str | None


def _after(column: str, value: Any, record_id: int) -> Q:
    return Q(**{f"{column}__lt": value}) | Q(**{column: value, "id__lt": record_id})


def request_page(
    *, filters: RequestFilters, cursor: str | None = None, size: int = PAGE_SIZE
) -> RequestPage:
    """One page of requests, newest (or costliest, slowest) first. ValueError: bad cursor.

    Matching records are read in the sort order, a few more than a page at a time; the
    records of their requests are read by `request_id` (one query) and a candidate is kept
    when it is its request's last record. Earlier attempts are few (failed attempts and
    classifier calls), so one round is the rule; the batch doubles when it is not."""
    column = SORTS[filters.sort]
    ordered = (
        requests_filtered(filters)
        .select_related("team", "api_key", "prompt_version__prompt")
        .order_by(f"-{column}", "-id")
    )
    if cursor:
        ordered = ordered.filter(_after(column, *cursor_decode(cursor, filters.sort)))
    rows: list[RequestRow] = []
    batch, remaining = size + 1 + size // 4, ordered
    while len(rows) <= size:
        candidates = list(remaining[:batch])
        if not candidates:
            break
        attempts: dict[str, list[UsageRecord]] = {}
        for record in UsageRecord.objects.filter(
            request_id__in={c.request_id for c in candidates}
        ).order_by("attempt", "id"):
            attempts.setdefault(record.request_id, []).append(record)
        for candidate in candidates:
            mine = attempts[candidate.request_id]
            if mine[-1].id == candidate.id:
                mine[-1] = candidate  # the one with its related rows selected
                rows.append(RequestRow(record=candidate, attempts=mine))
        if len(candidates) < batch:
            break
        last = candidates[-1]
        remaining = ordered.filter(_after(column, getattr(last, column), last.id))
        batch *= 2
    more = len(rows) > size
    rows = rows[:size]
    return RequestPage(
        rows=rows, next_cursor=cursor_encode(rows[-1].record, filters.sort) if more else None
    )


# --------------------------------------------------------------------------- access


def explorer_teams(*, user: User) -> list[Team]:
    """Teams whose requests the user may list: their own; finance and admins every team."""
    if user_has_role(user=user, role=Role.FINANCE):
        return list(Team.objects.all())
    return list(user_teams(user=user))


def content_team_ids(*, user: User | None, key_team_id: int | None = None) -> set[int]:
    """Teams whose stored request/response content the caller may read: a key its own team's,
    a person their teams' (admins every team). Finance sees everyone's costs, not content."""
    if key_team_id is not None:
        return {key_team_id}
    if user is None:
        return set()
    return {t.id for t in user_teams(user=user)}


# --------------------------------------------------------------------------- the detail


@dataclass
class CostPart:
    name: str
    tokens: int
    price_per_mtok: Decimal
    multiplier: Decimal
    cost_usd: Decimal


@dataclass
class AttemptCost:
    record: UsageRecord
    price: Price | None
    parts: list[CostPart]
    long_context: bool
    service_tier_multiplier: Decimal


@dataclass
class Content:
    """The request's stored bodies, or why there are none (`reason`)."""

    request: Any = None
    response: Any = None
    reason: str = ""


@dataclass(frozen=True)
class RelatedLink:
    """An object a request belongs to or is paired with (a shadow pair, a job, a batch)."""

    kind: str
    label: str
    url: str = ""


# Apps above spend (playground, gateway) own the objects a request can belong to; each
# registers a finder in its AppConfig.ready: (the request's records, the team that owns
# them) -> links. Finders query only that team's objects, and only for records whose
# purpose can have them.
RelatedFinder = Callable[[list[UsageRecord], int], list[RelatedLink]]
_related_finders: list[RelatedFinder] = []


def related_finder_register(finder: RelatedFinder) -> None:
    if finder not in _related_finders:
        _related_finders.append(finder)


def _related(records: list[UsageRecord], *, viewer_team_ids: set[int]) -> list[RelatedLink]:
    """Links to what the request belongs to, when the viewer is in the team owning it
    (finance through the role alone sees costs, not the team's jobs and shadow pairs)."""
    team_id = records[-1].team_id
    if team_id not in viewer_team_ids:
        return []
    return [link for finder in _related_finders for link in finder(records, team_id)]


@dataclass
class RequestDetail:
    row: RequestRow
    costs: list[AttemptCost]
    content: Content
    headers: dict[str, str]
    metadata: dict[str, Any]
    dropped: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    related: list[RelatedLink] = field(default_factory=list)

    @property
    def record(self) -> UsageRecord:
        return self.row.record


def _attempt_cost(record: UsageRecord) -> AttemptCost:
    if record.model_id is None or record.status == UsageRecord.Status.REFUSED:
        return AttemptCost(record, None, [], False, Decimal(1))
    try:
        price = price_at(record.model_id, record.created_at)
    except PriceNotFound:
        return AttemptCost(record, None, [], False, Decimal(1))
    parts, long_context, tier = cost_components(
        price=price,
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        cache_write_tokens=record.cache_write_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
        service_tier=record.service_tier,
    )
    return AttemptCost(record, price, [CostPart(*part) for part in parts], long_context, tier)


def _content(row: RequestRow, *, readable: bool, now: dt.datetime) -> Content:
    record, team = row.record, row.record.team
    if not readable:
        return Content(reason="hidden (your role sees costs, not content)")
    stored = next((r for r in reversed(row.attempts) if r.request_body is not None), None)
    if stored is not None:
        return Content(request=stored.request_body, response=stored.response_body)
    if record.created_at < now - dt.timedelta(days=team.retention_days):
        return Content(reason=f"purged (kept {team.retention_days} days: team setting)")
    if team.store_content:
        return Content(
            reason="not stored for this request (stored only while its team or prompt keeps content)"
        )
    return Content(reason="not stored (team setting)")


def _dropped(row: RequestRow) -> list[str]:
    """Why each model tried before the answer was not kept, from its attempt's record."""
    dropped = []
    for attempt in row.attempts:
        if attempt is row.record or attempt.purpose == "classifier":
            continue
        if attempt.error_code == "failed_check":
            dropped.append(
                f"{attempt.model_name} ({attempt.tier_name}): failed its check, {attempt.error_message}"
            )
        elif attempt.status != UsageRecord.Status.SUCCESS:
            dropped.append(
                f"{attempt.model_name} ({attempt.tier_name}): {attempt.error_code or attempt.status}"
            )
    return dropped


def _skipped(records: list[UsageRecord]) -> list[dict[str, str]]:
    """The candidates the router dropped before any attempt ({"tier", "model", "reason"}), as
    the records keep them: the route of the last attempt, and any earlier one's it dropped."""
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for record in records:
        for item in record.route_skipped or ():
            seen.setdefault((item.get("tier", ""), item.get("model", ""), item["reason"]), item)
    return list(seen.values())


def request_detail(
    *,
    request_id: str,
    team_ids: set[int],
    content_team_ids: set[int],
    now: dt.datetime | None = None,
) -> RequestDetail | None:
    """One request of the given teams, or None (not found, or another team's)."""
    records = list(
        UsageRecord.objects.filter(request_id=request_id, team_id__in=team_ids)
        .select_related("team", "api_key", "prompt_version__prompt", "model")
        .order_by("attempt", "id")
    )
    if not records:
        return None
    row = RequestRow(record=records[-1], attempts=records)
    record = row.record
    content = _content(row, readable=record.team_id in content_team_ids, now=now or timezone.now())
    headers = {"x-request-id": record.request_id}
    if record.status != UsageRecord.Status.REFUSED:
        headers |= {
            "x-switchboard-model": record.model_name,
            "x-switchboard-tier": record.tier_name,
            "x-switchboard-route": f"{record.rule}: {record.route_reason}",
            "x-switchboard-cost-usd": f"{row.cost_usd:f}",
        }
    body = content.request if isinstance(content.request, dict) else {}
    metadata = record.metadata or body.get("metadata")
    return RequestDetail(
        row=row,
        costs=[_attempt_cost(r) for r in records],
        content=content,
        headers=headers,
        metadata=metadata if isinstance(metadata, dict) else {},
        dropped=_dropped(row),
        skipped=_skipped(records),
        related=_related(records, viewer_team_ids=content_team_ids),
    )


# --------------------------------------------------------------------------- replaying


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("text")
        )
    return ""


def request_input_text(body: Any) -> tuple[str, str]:
    """(instructions, input) of a stored request body, Responses or Chat Completions shape:
    system/developer messages make the instructions, the others the input."""
    if not isinstance(body, dict):
        return "", ""
    instructions = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    messages = body.get("messages") or body.get("input") or []
    if isinstance(messages, str):
        return "\n".join(instructions), messages
    texts = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        text = _text_of(message.get("content"))
        if message.get("role") in ("system", "developer"):
            instructions.append(text)
        elif text:
            texts.append(text)
    return "\n".join(instructions), "\n\n".join(texts)


@dataclass
class ReplaySource:
    """What the playground needs to compare a logged request on other tiers."""

    team: Team
    request_id: str
    model_name: str
    tier_name: str
    prompt_version_id: int | None
    instructions: str
    input_text: str
    content_stored: bool


def request_replay_source(
    *, request_id: str, team_ids: set[int], content_team_ids: set[int]
) -> ReplaySource | None:
    detail = request_detail(
        request_id=request_id, team_ids=team_ids, content_team_ids=content_team_ids
    )
    if detail is None:
        return None
    record = detail.record
    answered = next(
        (
            r
            for r in reversed(detail.row.attempts)
            if r.purpose != "classifier" and r.status != UsageRecord.Status.REFUSED
        ),
        record,
    )
    instructions, input_text = request_input_text(detail.content.request)
    return ReplaySource(
        team=record.team,
        request_id=request_id,
        model_name=answered.model_name,
        tier_name=answered.tier_name,
        prompt_version_id=record.prompt_version_id,
        instructions=instructions,
        input_text=input_text,
        content_stored=not detail.content.reason,
    )
