"""Batch runs, the rough edges of issue #19: a dataset used again keeps its mapping, runs get
distinct names, a baseline picker, deltas only between columns on the same tier or model, a
limit broken on every row said once, and "save as new version" linking to the version."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from playground import services
from playground.columns import ColumnSpec
from playground.models import Job, JobItem

pytestmark = pytest.mark.django_db


def _dataset(team, alice, data: bytes = b"text,medium,answer\nhello,email,x\nbye,chat,y\n"):
    return services.dataset_create(team=team, user=alice, filename="tickets.csv", data=data)


def _run(team, alice, triage, dataset, **kwargs):
    return services.batch_compare_create(
        team=team,
        user=alice,
        dataset=dataset,
        version=triage,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        mapping=kwargs.pop("mapping", {"message": "text", "channel": "medium"}),
        **kwargs,
    )


def _selected(page: str, select: str) -> str | None:
    block = re.search(rf'<select name="{select}".*?</select>', page, re.S)
    assert block, select
    found = re.search(r'<option value="([^"]*)" selected', block.group(0))
    return found.group(1) if found else None


def test_a_dataset_used_again_comes_back_with_its_last_mapping(client, alice, team, triage, tiers):
    dataset = _dataset(team, alice)
    _run(team, alice, triage, dataset, expected_column="answer")
    client.force_login(alice)
    page = client.get(
        reverse("playground:batch-new"),
        {"team": "team-a", "version": triage.pk, "dataset": dataset.pk},
    ).content.decode()
    # the column names differ from the variables': only the last run knew the mapping
    assert _selected(page, "map-message") == "text"
    assert _selected(page, "map-channel") == "medium"
    assert _selected(page, "expected_column") == "answer"
    assert "Map a column" not in page
    assert not re.search(r'id="batch-run"\s+disabled', page)


def test_a_new_dataset_is_mapped_by_name_and_a_refused_run_keeps_the_posted_mapping(
    client, alice, team, triage, tiers
):
    dataset = _dataset(team, alice, b"message,medium\nhello,fax\nbye,chat\n")
    client.force_login(alice)
    page = client.get(
        reverse("playground:batch-new"),
        {"team": "team-a", "version": triage.pk, "dataset": dataset.pk},
    ).content.decode()
    assert _selected(page, "map-message") == "message"
    assert _selected(page, "map-channel") is None
    response = client.post(
        reverse("playground:batch-run"),
        {
            "team": "team-a",
            "version": triage.pk,
            "dataset": dataset.pk,
            "col-0-target": "tier:mini",
            "map-submitted": "1",
            "map-message": "message",
            "map-channel": "medium",
        },
        follow=True,
    )
    page = response.content.decode()
    assert _selected(page, "map-channel") == "medium"
    # the refusal is said once: a summary above, the line in the list, not both
    assert "The run did not start: see the rows below." in page
    assert page.count("1 row does not fit the prompt's variables") == 1
    assert len(re.findall(r"line 2: channel", page, re.I)) == 1
    assert not Job.objects.exists()


def test_runs_on_a_dataset_get_distinct_names(client, alice, team, triage, tiers):
    dataset = _dataset(team, alice)
    first = _run(team, alice, triage, dataset)
    second = _run(team, alice, triage, dataset)
    assert (first.name, second.name) == ("tickets.csv #1", "tickets.csv #2")
    named = [_run(team, alice, triage, dataset, name="Weekly check") for _ in range(2)]
    assert [j.name for j in named] == ["Weekly check", "Weekly check (2)"]
    client.force_login(alice)
    page = client.get(
        reverse("playground:batch-new"),
        {"team": "team-a", "version": triage.pk, "dataset": dataset.pk},
    ).content.decode()
    assert 'placeholder="tickets.csv #5"' in page


def _finished(team, version, dataset, columns: list[ColumnSpec], costs: list[str]) -> Job:
    """A done run of two rows; column i costs costs[i] per row."""
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        prompt_version=version,
        dataset=dataset,
        columns=[c.to_dict() for c in columns],
        status=Job.Status.DONE,
        total_items=2 * len(columns),
        name=f"run {Job.objects.count() + 1}",
    )
    for row in range(2):
        for column, cost in enumerate(costs):
            JobItem.objects.create(
                job=job,
                row_index=row,
                column_index=column,
                input={"variables": {"message": f"m{row}"}},
                status="done",
                output="ok",
                cost_usd=Decimal(cost),
                latency_ms=100,
            )
    return job


def _header(page: str, letter: str) -> str:
    found = re.search(rf'<th data-column="\d">{letter} · .*?</th>', page, re.S)
    assert found, letter
    return found.group(0)


def test_deltas_compare_only_columns_on_the_same_tier_or_model(client, bob, team, triage):
    dataset = _dataset(team, None, b"message\nm0\nm1\n")
    mini, flagship, nano = (ColumnSpec(tier=t) for t in ("mini", "flagship", "nano"))
    older = _finished(team, triage, dataset, [flagship, mini], ["0.010", "0.001"])
    latest = _finished(team, triage, dataset, [mini, flagship, nano], ["0.002", "0.010", "0.0005"])
    client.force_login(bob)
    page = client.get(reverse("playground:batch-detail", args=[latest.pk])).content.decode()
    assert f'href="/playground/batch/{older.pk}/"' in page  # preselected
    a, b, c = (_header(page, letter) for letter in "ABC")
    # A (mini) against the baseline's B (mini): +0.002 for two rows, not mini vs flagship
    assert "(+$0.002)" in a
    assert "vs baseline B" in a
    assert "vs baseline A" in b
    assert "($0.00)" in b
    # nobody ran nano in the baseline: no delta at all
    assert "no baseline column ran on tier:nano" in c
    assert "pg-delta" not in c


def test_the_baseline_picker_chooses_the_run_or_none(client, bob, team, triage):
    dataset = _dataset(team, None, b"message\nm0\nm1\n")
    mini = ColumnSpec(tier="mini")
    oldest = _finished(team, triage, dataset, [mini], ["0.004"])
    older = _finished(team, triage, dataset, [mini], ["0.003"])
    latest = _finished(team, triage, dataset, [mini], ["0.002"])
    url = reverse("playground:batch-detail", args=[latest.pk])
    client.force_login(bob)
    page = client.get(url).content.decode()
    assert _selected(page, "baseline") == str(older.pk)
    assert "(-$0.002)" in _header(page, "A")
    picked = client.get(url, {"baseline": oldest.pk, "filter": "failures"}).content.decode()
    assert _selected(picked, "baseline") == str(oldest.pk)
    assert f'href="/playground/batch/{oldest.pk}/"' in picked
    assert "(-$0.004)" in _header(picked, "A")
    # the filter form and the picker keep each other's choice
    assert f'<input type="hidden" name="baseline" value="{oldest.pk}">' in picked
    assert '<input type="hidden" name="filter" value="failures">' in picked
    none = client.get(url, {"baseline": "none"}).content.decode()
    assert _selected(none, "baseline") == "none"
    assert "pg-delta" not in _header(none, "A")
    assert "baseline:" not in none
    # another team's run is no choice
    stranger = client.get(url, {"baseline": 999999}).content.decode()
    assert "pg-delta" not in _header(stranger, "A")


def test_a_broken_row_limit_is_said_once(client, alice, triage, tiers, settings):
    settings.PLAYGROUND_DATASET_MAX_ROWS = 5
    client.force_login(alice)
    response = client.post(
        reverse("playground:batch-new"),
        {
            "team": "team-a",
            "version": triage.pk,
            "file": SimpleUploadedFile("d.csv", b"message,channel\n" + b"hi,email\n" * 8),
        },
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    assert response.status_code == 422
    assert page.count("The file has 8 rows; the limit is 5.") == 1
    assert "problem" not in page
    assert "<li>" not in page


def test_a_limit_broken_on_every_row_is_said_once_with_its_lines(client, alice, triage, tiers):
    client.force_login(alice)
    rows = b"".join(b"x" * (2001 + i) + b",email\n" for i in range(4)) + b"fine,fax\n"
    page = client.post(
        reverse("playground:batch-new"),
        {
            "team": "team-a",
            "version": triage.pk,
            "file": SimpleUploadedFile("d.csv", b"message,channel\n" + rows),
        },
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "5 rows do not fit" in page
    assert page.count("At most 2000 characters") == 1
    assert "Lines 2\u20135: message: At most 2000 characters." in page
    assert "Line 6: channel: Must be one of: email, chat, phone." in page


def test_saving_a_batch_column_as_a_new_version_links_to_it(client, alice, team, triage):
    dataset = _dataset(team, alice, b"message\nm0\nm1\n")
    job = _finished(
        team,
        triage,
        dataset,
        [ColumnSpec(tier="mini"), ColumnSpec(model="gpt-5.4-nano")],
        ["0.001", "0.001"],
    )
    client.force_login(alice)
    response = client.post(reverse("playground:batch-save-version", args=[job.pk, 1]), follow=True)
    page = response.content.decode()
    link = re.search(r'<a href="([^"]+)" data-testid="saved-version">triage v2</a>', page)
    assert link, page
    assert link.group(1) == "/prompts/team-a/triage/?version=2"
    assert "Saved as a new version" in page
    shown = client.get(link.group(1)).content.decode()
    assert "gpt-5.4-nano" in shown
