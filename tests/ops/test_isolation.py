"""Team isolation over every URL the site serves, found by walking the URL resolver.

Every pattern with a parameter is requested with team B's object, by a member of team A
and (for the API) with a team A key: each method must answer 403, 404 or 405, never show
team B's data. A new pattern without an entry in `TEAM_B_OBJECTS` (or `SHARED`) fails
`test_every_url_with_a_parameter_is_covered`, so every future endpoint is checked too.
Every URL also refuses anonymous callers, except the ones in `PUBLIC`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import openai
import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import ApiKey, Membership, Team
from accounts.services import api_key_create
from core.middleware import internal_request_id
from evals.models import Evaluator, RequestRun
from evals.services import evaluator_create
from gateway.models import Batch, StoredFile
from playground.models import Comparison, ComparisonColumn, Job, JobItem, ShadowPair
from prompts.models import ApprovalRequest, Prompt, PromptVersion
from routing.models import Model, Policy, Rule, Tier
from spend.models import AlertTarget, Purpose, ReplayRun, UsageRecord
from tests.gateway.conftest import wait_for
from tests.playground.test_runner import _orphan, _run
from tests.prompts.conftest import make_prompt

pytestmark = pytest.mark.django_db

# In every team B object's text: a response that shows it has leaked team B's data.
MARKER = "zz-team-b-secret"
METHODS = ("get", "post", "put", "patch", "delete")


def _walk(
    resolver: URLResolver, prefix: str = "", namespace: str = "", params: frozenset = frozenset()
) -> Iterator[tuple]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or ""
            name = f"{namespace}:{inner}" if namespace and inner else namespace or inner
            yield from _walk(
                pattern, prefix + str(pattern.pattern), name, {*params, *pattern.pattern.converters}
            )
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield name, prefix + str(pattern.pattern), {*params, *pattern.pattern.converters}


# The admin site checks staff status for all of its URLs at once (admin_view); it is
# covered by `test_the_admin_refuses_team_members_for_every_registered_model`.
URLS = {
    name: (route, params)
    for name, route, params in _walk(get_resolver())
    if not name.startswith("admin:")
}
WITH_PARAMS = sorted(name for name, (_, params) in URLS.items() if params)
WITHOUT_PARAMS = sorted(name for name, (_, params) in URLS.items() if not params)


def is_api(name: str) -> bool:
    route = URLS[name][0]
    return route.startswith(("api/v1/", "v1/"))


@dataclass
class TeamB:
    """Team B's objects of every kind a URL can name, and team A for mixed URLs."""

    team_a: Team
    team: Team
    prompt: Prompt
    version: PromptVersion
    approval: ApprovalRequest
    comparison: Comparison
    batch: Job
    api_job: Job
    shadow: ShadowPair
    replay: ReplayRun
    rule: Rule
    key: ApiKey
    model: Model
    tier: Tier
    policy: Policy
    membership: Membership
    target: AlertTarget
    file: StoredFile
    upstream_batch: Batch
    request_id: str
    evaluator: Evaluator
    request_run: RequestRun


@pytest.fixture
def b(team, other_team, charlie, catalog) -> TeamB:
    prompt, version = make_prompt(other_team, charlie, slug="b-only")
    Prompt.objects.filter(pk=prompt.pk).update(name=MARKER, description=MARKER)
    policy = Policy.objects.get(is_active=True)
    model = Model.objects.get(name="gpt-5.4-mini")
    tier = Tier.objects.get(name="mini")
    comparison = Comparison.objects.create(team=other_team, title=MARKER, input_text=MARKER)
    ComparisonColumn.objects.create(comparison=comparison, position=0, tier="mini", output=MARKER)
    batch = Job.objects.create(
        team=other_team, kind=Job.Kind.COMPARE, name=MARKER, columns=[{"tier": "mini"}]
    )
    JobItem.objects.create(job=batch, row_index=0, input={"input": MARKER}, output=MARKER)
    api_job = Job.objects.create(
        team=other_team, kind=Job.Kind.API, name=MARKER, columns=[{"tier": "mini"}]
    )
    JobItem.objects.create(job=api_job, row_index=0, input={"input": MARKER}, output=MARKER)
    stored_file = StoredFile.objects.create(
        public_id="file-zz-team-b",
        team=other_team,
        purpose=StoredFile.Purpose.BATCH,
        filename=MARKER,
        content=MARKER.encode(),
    )
    return TeamB(
        team_a=team,
        team=other_team,
        prompt=prompt,
        version=version,
        approval=ApprovalRequest.objects.create(
            version=version, requested_by=charlie, comment=MARKER
        ),
        comparison=comparison,
        batch=batch,
        api_job=api_job,
        shadow=ShadowPair.objects.create(
            team=other_team,
            prompt=prompt,
            prompt_version=version,
            production_output=MARKER,
            shadow_output=MARKER,
            production_cost_usd=Decimal("0.01"),
        ),
        replay=ReplayRun.objects.create(
            policy=policy, team_ids=[other_team.pk], requested_by=charlie, error=MARKER
        ),
        rule=Rule.objects.create(policy=policy, name=MARKER, team=other_team, prompt=prompt),
        key=api_key_create(team=other_team, name=MARKER)[0],
        model=model,
        tier=tier,
        policy=policy,
        membership=Membership.objects.get(team=other_team, user=charlie),
        target=AlertTarget.objects.create(team=other_team, name=MARKER, emails="b@example.com"),
        file=stored_file,
        upstream_batch=Batch.objects.create(
            public_id="batch_zz_team_b",
            team=other_team,
            input_file=stored_file,
            endpoint="/v1/chat/completions",
            metadata={"note": MARKER},
        ),
        request_id=UsageRecord.objects.create(
            team=other_team,
            created_at=timezone.now(),
            request_id="req_zz_team_b",
            model_name="gpt-5.4-mini",
            tier_name="mini",
            error_message=MARKER,
        ).request_id,
        evaluator=(
            evaluator := evaluator_create(
                prompt=prompt,
                name=MARKER,
                kind=Evaluator.Kind.CHECK,
                config={"check": "contains", "value": MARKER},
                actor=charlie,
            )
        ),
        request_run=RequestRun.objects.create(
            team=other_team,
            prompt=prompt,
            created_by=charlie,
            request_ids=["req_zz_team_b"],
            version_ids=[evaluator.versions.get().pk],
            error=MARKER,
        ),
    )


def _prompt(b: TeamB) -> list[dict]:
    return [
        {"team": b.team.slug, "slug": b.prompt.slug},
        {"team": b.team_a.slug, "slug": b.prompt.slug},
    ]


def _slug(b: TeamB) -> list[dict]:
    return [{"slug": b.prompt.slug}]


def _key(b: TeamB) -> list[dict]:
    return [
        {"slug": b.team.slug, "key_id": b.key.pk},
        {"slug": b.team_a.slug, "key_id": b.key.pk},
    ]


def _member(b: TeamB) -> list[dict]:
    return [
        {"slug": b.team.slug, "member_id": b.membership.pk},
        {"slug": b.team_a.slug, "member_id": b.membership.pk},
    ]


def _target(b: TeamB) -> list[dict]:
    return [
        {"slug": b.team.slug, "target_id": b.target.pk},
        {"slug": b.team_a.slug, "target_id": b.target.pk},
    ]


def _column(b: TeamB) -> list[dict]:
    return [{"pk": b.comparison.pk, "position": 0}]


# URL name -> the URL's parameters pointing at team B's objects (several variants where a URL
# names two objects: team A's team with team B's object must not find it either). Routing
# objects (models, tiers, policies) are global; only admins may change them.
TEAM_B_OBJECTS: dict[str, Callable[[TeamB], list[dict]]] = {
    # /api/v1/
    "prompts-detail": _slug,
    "prompts-versions": _slug,
    "prompts-version": lambda b: [{"slug": b.prompt.slug, "number": "1"}],
    "prompts-render": _slug,
    "prompts-labels": _slug,
    "prompts-label": lambda b: [{"slug": b.prompt.slug, "name": "production"}],
    "prompts-label-rollback": lambda b: [{"slug": b.prompt.slug, "name": "production"}],
    "prompts-approvals": _slug,
    "prompts-approval-decide": lambda b: [{"pk": b.approval.pk}],
    "prompt-run": _slug,
    "jobs-detail": lambda b: [{"pk": b.api_job.pk}, {"pk": b.batch.pk}],
    "jobs-cancel": lambda b: [{"pk": b.api_job.pk}, {"pk": b.batch.pk}],
    # pages
    "prompts:approval": lambda b: [{"pk": b.approval.pk}],
    "prompts:detail": _prompt,
    "prompts:settings": _prompt,
    "prompts:edit": _prompt,
    "prompts:preview": _prompt,
    "prompts:compare": _prompt,
    "prompts:publish": _prompt,
    "prompts:rollback": _prompt,
    "routing:model-remap": lambda b: [{"model_id": b.model.pk}],
    "routing:tier-reorder": lambda b: [{"tier_name": b.tier.name}],
    "routing:tier-model-add": lambda b: [{"tier_name": b.tier.name}],
    "routing:tier-model-remove": lambda b: [{"tier_name": b.tier.name, "model_id": b.model.pk}],
    "routing:rule-add": lambda b: [{"policy_id": b.policy.pk}],
    "routing:rules-reorder": lambda b: [{"policy_id": b.policy.pk}],
    "routing:rule-edit": lambda b: [{"rule_id": b.rule.pk}],
    "routing:rule-toggle": lambda b: [{"rule_id": b.rule.pk}],
    "routing:rule-delete": lambda b: [{"rule_id": b.rule.pk}],
    "spend:whatif-run": lambda b: [{"run_id": b.replay.pk}],
    "playground:comparison": lambda b: [{"pk": b.comparison.pk}],
    "playground:comparison-extras": lambda b: [{"pk": b.comparison.pk}],
    "playground:comparison-save": lambda b: [{"pk": b.comparison.pk}],
    "playground:comparison-vote": lambda b: [{"pk": b.comparison.pk}],
    "playground:column-run": _column,
    "playground:column-stream": _column,
    "playground:column-stop": _column,
    "playground:column-save-version": _column,
    "playground:batch-detail": lambda b: [{"pk": b.batch.pk}, {"pk": b.api_job.pk}],
    "playground:batch-progress": lambda b: [{"pk": b.batch.pk}],
    "playground:batch-cancel": lambda b: [{"pk": b.batch.pk}],
    "playground:batch-row": lambda b: [{"pk": b.batch.pk, "row": 0}],
    "playground:batch-row-vote": lambda b: [{"pk": b.batch.pk, "row": 0}],
    "playground:batch-export": lambda b: [{"pk": b.batch.pk, "fmt": "csv"}],
    "playground:batch-save-version": lambda b: [{"pk": b.batch.pk, "column": 0}],
    "playground:recommendation-apply": lambda b: [{"prompt_id": b.prompt.pk}],
    "playground:shadow-rate": lambda b: [{"prompt_id": b.prompt.pk}],
    "playground:shadow-review": lambda b: [{"pk": b.shadow.pk}],
    "accounts:team": lambda b: [{"slug": b.team.slug}],
    "accounts:key-create": lambda b: [{"slug": b.team.slug}],
    "accounts:team-settings": lambda b: [{"slug": b.team.slug}],
    "accounts:key-revoke": _key,
    "accounts:key-limits": _key,
    "accounts:member-add": lambda b: [{"slug": b.team.slug}],
    "accounts:member-role": _member,
    "accounts:member-remove": _member,
    "team-budgets:index": lambda b: [{"slug": b.team.slug}],
    "team-budgets:preview": lambda b: [{"slug": b.team.slug}],
    "team-budgets:save": lambda b: [{"slug": b.team.slug}],
    "team-budgets:target-add": lambda b: [{"slug": b.team.slug}],
    "team-budgets:target-test": _target,
    "team-budgets:target-delete": _target,
    "openai:file-detail": lambda b: [{"file_id": b.file.public_id}],
    "openai:file-content": lambda b: [{"file_id": b.file.public_id}],
    "openai:batch-detail": lambda b: [{"batch_id": b.upstream_batch.public_id}],
    "openai:batch-cancel": lambda b: [{"batch_id": b.upstream_batch.public_id}],
    "request-detail": lambda b: [{"request_id": b.request_id}],
    "requests:detail": lambda b: [{"request_id": b.request_id}],
    "playground:batch-evaluate": lambda b: [{"pk": b.batch.pk}],
    "evals:prompt-evaluators": lambda b: [{"prompt_id": b.prompt.pk}],
    "evals:create": lambda b: [{"prompt_id": b.prompt.pk}],
    "evals:preview": lambda b: [{"prompt_id": b.prompt.pk}],
    "evals:evaluator": lambda b: [{"pk": b.evaluator.pk}],
    "evals:version": lambda b: [{"pk": b.evaluator.pk}],
    "evals:settings": lambda b: [{"pk": b.evaluator.pk}],
    "evals:request-run": lambda b: [{"pk": b.request_run.pk}],
}

# URLs with a parameter that name no team's object, and why.
SHARED = {
    "openai:model-detail": "the model catalog is global: every key reads the same models",
}

# URLs an anonymous caller may use, and why.
PUBLIC = {
    "healthz": "a liveness probe with no data",
    "readyz": "a readiness probe: dependency names and states only",
    "login": "the way in",
    "logout": "signing out needs no session",
    "schema": "the API's OpenAPI schema is public documentation",
    "api-docs": "the API's documentation page",
    "favicon": "the site's icon",
}


def test_every_url_with_a_parameter_is_covered():
    missing = set(WITH_PARAMS) - set(TEAM_B_OBJECTS) - set(SHARED)
    assert not missing, f"add these URL names to TEAM_B_OBJECTS or SHARED: {sorted(missing)}"
    stale = (set(TEAM_B_OBJECTS) | set(SHARED) | set(PUBLIC)) - set(URLS)
    assert not stale, f"these entries name no URL any more: {sorted(stale)}"


def _refused(response, *, what: str) -> bool:
    """True if the answer is a refusal (401/403/404); fails at once if it is a success, a
    redirect, a server error or shows team B's data. Other 4xx (405, a 400 for a body the
    view cannot use) neither pass nor fail: some method must reach the access check."""
    status = response.status_code
    assert 400 <= status < 500, f"{what}: {status}"
    if not response.streaming:
        assert MARKER not in response.content.decode(errors="replace"), f"{what} shows B's data"
    return status in (401, 403, 404)


def _assert_every_method_refuses(client, name: str, kwargs: dict) -> None:
    url = reverse(name, kwargs=kwargs)
    refused = [
        _refused(
            getattr(client, method)(url, {}, content_type="application/json"),
            what=f"{method.upper()} {url}",
        )
        for method in METHODS
    ]
    assert any(refused), f"{url}: no method was refused, so no access check was reached"


@pytest.mark.parametrize("name", [n for n in WITH_PARAMS if n not in SHARED])
def test_a_member_of_team_a_cannot_reach_team_bs_objects(client, alice, b, name):
    assert name in TEAM_B_OBJECTS, "see test_every_url_with_a_parameter_is_covered"
    client.force_login(alice)
    for kwargs in TEAM_B_OBJECTS[name](b):
        _assert_every_method_refuses(client, name, kwargs)


# Async, as the server runs them: the gateway's views read through asgiref's shared thread
# (outside a test transaction), which the sync test client would block.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", [n for n in WITH_PARAMS if n not in SHARED and is_api(n)])
async def test_a_key_of_team_a_cannot_reach_team_bs_objects(async_client, api_key, b, name):
    headers = {"authorization": f"Bearer {api_key}"}
    for kwargs in TEAM_B_OBJECTS[name](b):
        url = reverse(name, kwargs=kwargs)
        refused = []
        for method in METHODS:
            call = getattr(async_client, method)
            response = await call(url, {}, content_type="application/json", headers=headers)
            refused.append(_refused(response, what=f"{method.upper()} {url}"))
        assert any(refused), f"{url}: no method was refused, so no access check was reached"


@pytest.mark.django_db(transaction=True)
async def test_a_key_sees_the_shared_model_catalog(async_client, api_key, b):
    response = await async_client.get(
        reverse("openai:model-detail", kwargs={"model": b.model.name}),
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == b.model.name


def _sends_to_login(response) -> bool:
    return response.status_code in (401, 403) or (
        response.status_code == 302 and "login" in response.url
    )


@pytest.mark.parametrize("name", [n for n in sorted(URLS) if n not in PUBLIC])
def test_anonymous_callers_are_refused(client, b, settings, name):
    settings.METRICS_ALLOWED_IPS = []  # no token, no allowed address: a stranger
    variants = TEAM_B_OBJECTS[name](b) if name in TEAM_B_OBJECTS else [{}]
    if name in SHARED:
        variants = [{"model": b.model.name}]
    for kwargs in variants:
        url = reverse(name, kwargs=kwargs)
        for method in METHODS:
            response = getattr(client, method)(url, content_type="application/json")
            what = f"anonymous {method.upper()} {url}: {response.status_code}"
            assert response.status_code in (401, 403, 404, 405) or _sends_to_login(response), what
            if not response.streaming:
                assert MARKER not in response.content.decode(errors="replace"), what


def test_the_admin_refuses_team_members_for_every_registered_model(client, alice, b):
    client.force_login(alice)
    for model in admin.site._registry:
        meta = model._meta
        first = model.objects.order_by("pk").values_list("pk", flat=True).first() or 1
        for url in (
            reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
            reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first]),
        ):
            response = client.get(url)
            assert response.status_code == 302, url
            assert response.url.startswith(reverse("admin:login")), url


# --- request ids: a caller's id never names another team's call ------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_item_never_adopts_another_teams_call_named_after_it(
    gateway_env, catalog, live_site, team, other_api_key
):
    job = _orphan(team, items=1)
    item = job.items.get()
    sdk = openai.OpenAI(base_url=f"{live_site}/v1", api_key=other_api_key, max_retries=0)
    forged = [f"job{job.pk}-item{item.pk}", internal_request_id(f"job{job.pk}-item{item.pk}")]
    for request_id in forged:
        raw = sdk.responses.with_raw_response.create(
            model="tier:nano", input=MARKER, extra_headers={"X-Request-ID": request_id}
        )
        assert raw.http_response.status_code == 200
    assert raw.headers["x-request-id"] != forged[1], "a caller chose an internal request id"
    theirs = UsageRecord.objects.filter(team__slug="team-b")
    assert wait_for(lambda: theirs.count() == 2), "team B's calls were not recorded"

    assert _run(job.pk) == Job.Status.DONE
    item.refresh_from_db()
    assert item.status == JobItem.Status.DONE
    assert item.usage_record_id not in set(theirs.values_list("pk", flat=True))
    assert MARKER not in item.output
    assert UsageRecord.objects.filter(team=team, purpose=Purpose.BATCH).count() == 1


# --- existence oracles: another team's object answers exactly like a missing one ---------------

# URL parameters that name an object (the others: positions, rows, formats, label names).
_OBJECT_PARAMS = {"pk", "prompt_id", "run_id", "key_id", "slug", "team"}
# Routing objects are global (the same for every team): no team's secret to reveal.
_GLOBAL = ("routing:",)


def _missing(b: TeamB, kwargs: dict) -> dict:
    """The same URL parameters with team B's objects swapped for ones that do not exist."""
    swapped = dict(kwargs)
    for name, value in kwargs.items():
        if name in _OBJECT_PARAMS and value != b.team_a.slug:
            swapped[name] = 987654 if isinstance(value, int) else "no-such-thing"
    return swapped


def _statuses(client, url: str, **extra) -> list[int]:
    return [
        getattr(client, method)(url, {}, content_type="application/json", **extra).status_code
        for method in METHODS
    ]


@pytest.mark.parametrize(
    "name", [n for n in TEAM_B_OBJECTS if n in URLS and not n.startswith(_GLOBAL)]
)
def test_another_teams_object_answers_like_a_missing_one_for_a_member(client, alice, b, name):
    client.force_login(alice)
    for kwargs in TEAM_B_OBJECTS[name](b):
        theirs = _statuses(client, reverse(name, kwargs=kwargs))
        missing = _statuses(client, reverse(name, kwargs=_missing(b, kwargs)))
        assert theirs == missing, f"{name} {kwargs}: {theirs} for B's, {missing} for none"


def _import_answer(client, team_slug: str) -> tuple[int, str]:
    document = {
        "prompts": [
            {"team": team_slug, "slug": "leak-probe", "name": "Probe", "versions": [], "labels": {}}
        ]
    }
    response = client.post("/api/v1/prompts/import", document, content_type="application/json")
    return response.status_code, response.content.decode().replace(team_slug, "<team>")


def test_importing_into_a_team_you_are_not_in_answers_like_an_unknown_team(client, charlie, b):
    client.force_login(charlie)
    theirs = _import_answer(client, b.team_a.slug)
    assert theirs == _import_answer(client, "no-such-team")
    assert theirs[0] == 422


@pytest.mark.parametrize("path", ["prompts", "prompts/export", "usage", "budget", "jobs"])
def test_a_team_filter_naming_another_team_answers_like_an_unknown_team(client, charlie, b, path):
    client.force_login(charlie)
    theirs = client.get(f"/api/v1/{path}", {"team": b.team_a.slug})
    missing = client.get(f"/api/v1/{path}", {"team": "no-such-team"})
    assert theirs.status_code == missing.status_code
    assert theirs.content.decode().replace(
        b.team_a.slug, "<team>"
    ) == missing.content.decode().replace("no-such-team", "<team>")
