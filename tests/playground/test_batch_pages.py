"""Batch pages without a worker: upload and preview, the results matrix (filters, search,
pages, baseline), the drawer, votes and exports, and who may see them."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from playground import services
from playground.columns import ColumnSpec
from playground.models import Dataset, Job, JobItem, RowVote

CSV = b"message,channel,expected\nhello,email,x\n,chat,y\nbye,fax,z\n"


def _upload(client, triage, data: bytes = CSV, name: str = "d.csv"):
    return client.post(
        reverse("playground:batch-new"),
        {"team": "team-a", "version": triage.pk, "file": SimpleUploadedFile(name, data)},
        HTTP_HX_REQUEST="true",
    )


def test_an_upload_with_bad_lines_lists_them_and_stores_nothing(client, alice, triage, tiers):
    client.force_login(alice)
    response = _upload(client, triage, b"message,channel\nok,email\nbroken\n")
    assert response.status_code == 422
    page = response.content.decode()
    assert "Line 3: expected 2 fields, found 1" in page
    assert not Dataset.objects.exists()


def test_a_preview_highlights_mapped_columns_and_lists_rows_that_do_not_fit(
    client, alice, triage, tiers
):
    client.force_login(alice)
    page = _upload(client, triage).content.decode()
    assert re.search(r'<th class="pg-mapped" data-mapped="true">message</th>', page)
    assert re.search(r'<th class="pg-unmapped" >expected</th>', page)
    assert 'value="expected" selected' in page  # proposed as the expected output
    # row 2 has no message, row 3 an unknown channel: both named with their line
    assert "Line 3: message: This variable is required." in page
    assert "Line 4: channel: Must be one of: email, chat, phone." in page
    assert re.search(r'id="batch-run"\s+disabled', page)


def test_an_unmapped_variable_disables_run_and_is_named(client, alice, triage, tiers):
    client.force_login(alice)
    dataset = services.dataset_create(
        team=triage.prompt.team, user=alice, filename="d.csv", data=b"text\nhello\n"
    )
    page = client.post(
        reverse("playground:batch-new") + "?part=mapping",
        {"team": "team-a", "version": triage.pk, "dataset": dataset.pk, "map-submitted": "1"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert page.lstrip().startswith('<section class="card" id="mapping">')
    assert "Map a column to “message” to run." in page
    assert re.search(r'id="batch-run"\s+disabled', page)
    mapped = client.post(
        reverse("playground:batch-new") + "?part=mapping",
        {
            "team": "team-a",
            "version": triage.pk,
            "dataset": dataset.pk,
            "map-submitted": "1",
            "map-message": "text",
        },
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "Map a column" not in mapped
    assert not re.search(r'id="batch-run"\s+disabled', mapped)


def _finished_job(team, version, dataset, outputs: list[tuple[str, str, bool]]) -> Job:
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        prompt_version=version,
        dataset=dataset,
        columns=[ColumnSpec(tier="mini").to_dict(), ColumnSpec(tier="flagship").to_dict()],
        status=Job.Status.DONE,
        total_items=2 * len(outputs),
    )
    for row, (a, b, ok) in enumerate(outputs):
        for column, output in enumerate((a, b)):
            JobItem.objects.create(
                job=job,
                row_index=row,
                column_index=column,
                input={"variables": {"message": f"message {row}"}},
                status="done",
                output=output,
                tier_name=["mini", "flagship"][column],
                cost_usd=Decimal("0.001") * (column + 1),
                latency_ms=100 * (column + 1),
                passed=ok if column == 0 else True,
                checks={"json": True},
            )
    return job


@pytest.fixture
def runs(team, alice, triage, tiers):
    dataset = services.dataset_create(
        team=team,
        user=alice,
        filename="d.csv",
        data=b"message\n" + b"".join(f"m{i}\n".encode() for i in range(120)),
    )
    baseline = _finished_job(team, triage, dataset, [("a", "a", True)] * 120)
    outputs = [("same", "same", True)] * 117 + [
        ("x", "y", True),
        ("p", "p", False),
        ("q", "r", False),
    ]
    latest = _finished_job(team, triage, dataset, outputs)
    return baseline, latest


def test_the_matrix_pages_filters_searches_and_shows_the_baseline(client, bob, runs):
    baseline, job = runs
    client.force_login(bob)
    url = reverse("playground:batch-detail", args=[job.pk])
    page = client.get(url).content.decode()
    assert page.count('class="pg-row"') == 50
    assert f'href="/playground/batch/{baseline.pk}/"' in page  # the baseline is preselected
    assert "pass 118/120" in page
    assert client.get(url + "?size=100&page=2").content.decode().count('class="pg-row"') == 20
    assert client.get(url + "?size=1000").content.decode().count('class="pg-row"') == 50
    failures = client.get(url + "?filter=failures").content.decode()
    assert failures.count('class="pg-row"') == 2
    assert 'value="failures" selected' in failures
    different = client.get(url + "?filter=different").content.decode()
    assert different.count('class="pg-row"') == 2
    search = client.get(url + "?q=message+11").content.decode()
    assert search.count('class="pg-row"') == 11  # message 11, 110..119
    assert 'value="message 11"' in search


def test_the_drawer_votes_and_exports_include_the_votes(client, alice, runs):
    _, job = runs
    client.force_login(alice)
    drawer = client.get(reverse("playground:batch-row", args=[job.pk, 117])).content.decode()
    assert "<pre>x</pre>" in drawer
    assert "<pre>y</pre>" in drawer
    response = client.post(
        reverse("playground:batch-row-vote", args=[job.pk, 117]),
        {"choice": "1", "comment": "B is right"},
    )
    assert "B better" in response.content.decode()
    assert RowVote.objects.get().winner_column == 1
    exported = client.get(reverse("playground:batch-export", args=[job.pk, "csv"])).content
    assert b"alice: B better (B is right)" in exported
    as_json = json.loads(
        client.get(reverse("playground:batch-export", args=[job.pk, "json"])).content
    )
    assert as_json["rows"][117]["votes"] == [
        {"voter": "alice", "verdict": "winner", "winner": "tier:flagship", "comment": "B is right"}
    ]
    assert client.get(f"/playground/batch/{job.pk}/export.xml").status_code == 404


def test_the_batch_csv_never_holds_a_live_spreadsheet_formula(client, alice, team, triage):
    dataset = services.dataset_create(
        team=team, user=alice, filename="d.csv", data=b"message\nhello\n"
    )
    job = _finished_job(team, triage, dataset, [("=HYPERLINK(1)", "@SUM(A1)", True)])
    client.force_login(alice)
    exported = client.get(reverse("playground:batch-export", args=[job.pk, "csv"])).content
    [row] = list(csv.DictReader(io.StringIO(exported.decode())))
    outputs = [value for name, value in row.items() if "output" in name]
    assert outputs == ["'=HYPERLINK(1)", "'@SUM(A1)"]


def test_an_outsider_gets_404_on_every_batch_url(client, charlie, runs):
    _, job = runs
    client.force_login(charlie)
    for url in [
        reverse("playground:batch-detail", args=[job.pk]),
        reverse("playground:batch-progress", args=[job.pk]),
        reverse("playground:batch-row", args=[job.pk, 0]),
        reverse("playground:batch-export", args=[job.pk, "csv"]),
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("playground:batch-cancel", args=[job.pk])).status_code == 404
    assert client.post(reverse("playground:batch-row-vote", args=[job.pk, 0])).status_code == 404
    listing = client.get(reverse("playground:batch-list")).content.decode()
    assert f"/playground/batch/{job.pk}/" not in listing
