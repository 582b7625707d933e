"""A team that stores no content: no prompt or answer text of it is kept anywhere, by any path
(/v1, the REST run, comparisons, batch and job items, shadow pairs), even where a prompt opts
in to storing content; a live comparison still shows its answers while it runs."""

from __future__ import annotations

import httpx
import openai
import pytest
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django.urls import reverse

from accounts.models import Team
from playground import services
from playground.columns import ColumnSpec
from playground.models import Comparison, ComparisonColumn, Job, JobItem, ShadowPair
from prompts.models import Prompt
from spend.models import UsageRecord
from tests.gateway.conftest import wait_for
from tests.playground.conftest import make_triage
from tests.playground.test_compare_stream import _run as stream_columns
from tests.playground.test_compare_stream import _session_cookie, _stream_urls
from tests.playground.test_runner import _orphan
from tests.playground.test_runner import _run as run_job
from tests.playground.test_shadow import _run as run_shadow

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "zz-private-words"


def _rows_holding(text: str) -> list[str]:
    """Every row of every table whose text or JSON columns contain `text`."""
    found = []
    for model in apps.get_models():
        fields = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        for name in fields:
            # JSON as its text, so that one lookup works on every database
            rows = model.objects.annotate(as_text=Cast(name, models.TextField()))
            if rows.filter(as_text__contains=text).exists():
                found.append(f"{model._meta.label}.{name}")
    return found


def test_a_team_that_stores_no_content_keeps_no_text_from_any_path(
    live_site, team, alice, api_key, catalog
):
    Team.objects.filter(pk=team.pk).update(no_content=True)
    team.refresh_from_db()
    version = make_triage(team, alice)
    # a prompt that opts in to storing content and shadows every request
    Prompt.objects.filter(pk=version.prompt_id).update(store_content=True, shadow_sample_rate=1)
    variables = {"message": MARKER, "channel": "email"}

    sdk = openai.OpenAI(base_url=f"{live_site}/v1", api_key=api_key, max_retries=0)
    sdk.chat.completions.create(
        model="tier:mini", messages=[{"role": "user", "content": f"Say {MARKER}"}]
    )
    sdk.responses.create(model="auto", prompt={"id": version.prompt.slug, "variables": variables})
    run = httpx.post(
        f"{live_site}/api/v1/prompts/{version.prompt.slug}/run",
        json={"variables": variables},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert run.status_code == 200
    assert wait_for(lambda: UsageRecord.objects.count() >= 3)
    # the two prompt calls are offered to shadow sampling once answered
    assert wait_for(lambda: ShadowPair.objects.count() >= 2)
    for pair in ShadowPair.objects.all():
        run_shadow(pair.pk)

    comparison = services.comparison_create(
        team=team,
        user=alice,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        instructions=f"Repeat {MARKER}",
        input_text=f"Say {MARKER}",
    )
    results, _ = stream_columns(
        live_site, _session_cookie(alice), _stream_urls(live_site, comparison)
    )
    for result in results:
        name, done = result["events"][-1]
        assert name == "done"
        assert done["output"], "the live comparison shows its answer"

    job = _orphan(team, items=2)
    JobItem.objects.filter(job=job).update(input={"input": f"Say {MARKER}"})
    assert run_job(job.pk) == Job.Status.DONE

    assert _rows_holding(MARKER) == []
    assert not UsageRecord.objects.exclude(request_body=None, response_body=None).exists()
    assert set(ComparisonColumn.objects.values_list("status", "output")) == {("done", "")}
    assert set(JobItem.objects.values_list("status", "output")) == {("done", "")}
    assert ShadowPair.objects.exists()
    assert not ShadowPair.objects.exclude(production_output="", shadow_output="").exists()
    comparison = Comparison.objects.get(pk=comparison.pk)
    assert comparison.content_purged_at is not None
    assert Job.objects.get(pk=job.pk).content_purged_at is not None

    # the comparison's page says why its answers are gone
    from django.test import Client

    page = Client()
    page.force_login(alice)
    html = page.get(reverse("playground:comparison", kwargs={"pk": comparison.pk})).content
    assert b"not stored (team setting)" in html
    assert b"stores no content" in html
