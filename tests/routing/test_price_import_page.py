"""The price-sheet upload page: a dry run first, then Apply; errors apply nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.models import AuditEvent
from routing.models import Model, Price

from .conftest import DATA

pytestmark = pytest.mark.usefixtures("seeded")


def _upload(name: str, content: bytes | None = None, **extra) -> dict:
    content = content if content is not None else (DATA / name).read_bytes()
    return {"file": SimpleUploadedFile(name, content), **extra}


def test_an_admin_previews_then_applies_a_litellm_map(client, dana):
    client.force_login(dana)
    url = reverse("routing:price-import")
    rows = Price.objects.count()
    preview = client.post(url, _upload("litellm_prices.json", effective_from="2026-12-01 00:00"))
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "Dry run of litellm_prices.json" in html
    assert "gpt-5.4-mini" in html
    assert "Apply 2 changes" in html
    assert Price.objects.count() == rows  # nothing applied yet
    assert not AuditEvent.objects.exists()

    form = {
        "apply": "1",
        "sheet": (DATA / "litellm_prices.json").read_text(),
        "filename": "litellm_prices.json",
        "effective_from": "2026-12-01T00:00:00+00:00",
        "create_models": "",
    }
    applied = client.post(url, form, follow=True)
    assert "Imported litellm_prices.json: 2 change(s)." in applied.content.decode()
    mini = Model.objects.get(name="gpt-5.4-mini")
    new = Price.objects.get(model=mini, effective_from=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert new.input_per_mtok == Decimal("0.7")
    assert new.source == "litellm_prices.json"
    assert AuditEvent.objects.filter(action="price_sheet.price_create", actor=dana).count() == 1


def test_a_malformed_sheet_shows_every_problem_and_applies_nothing(client, dana):
    client.force_login(dana)
    rows = Price.objects.count()
    bad = b"format: switchboard-prices/1\nmodels:\n  - name: gpt-5.4-nano\n    prices:\n      - input: abc\n        output: -1\n"
    response = client.post(reverse("routing:price-import"), _upload("bad.yaml", bad))
    html = response.content.decode()
    assert response.status_code == 400
    assert "bad.yaml was not imported" in html
    assert "line 5, models[0].prices[0].input: not a number: &#x27;abc&#x27;" in html
    assert "line 6, models[0].prices[0].output: must be a non-negative number" in html
    assert Price.objects.count() == rows


def test_a_binary_upload_is_refused(client, dana):
    client.force_login(dana)
    response = client.post(reverse("routing:price-import"), _upload("x.json", b"\xff\xfe\x00"))
    assert response.status_code == 400
    assert "not UTF-8" in response.content.decode()


@pytest.mark.parametrize("user", ["alice", "bob", "charlie"])
def test_only_admins_import_prices(client, request, user):
    client.force_login(request.getfixturevalue(user))
    url = reverse("routing:price-import")
    assert client.get(url).status_code == 403
    rows = Price.objects.count()
    form = {"apply": "1", "sheet": (DATA / "prices.yaml").read_text(), "filename": "prices.yaml"}
    assert client.post(url, form).status_code == 403
    assert Price.objects.count() == rows
