"""Price sheets: LiteLLM's map and our format, dry runs, round trips, malformed files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from routing.models import Model, Price
from routing.pricesheet import PriceSheetError, price_sheet_parse
from routing.services import price_sheet_export, price_sheet_import
from spend.pricing import price_at

from .conftest import DATA

D = Decimal
DEC_1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _litellm(**kwargs):
    return price_sheet_import(
        text=(DATA / "litellm_prices.json").read_text(),
        filename="litellm_prices.json",
        effective_from=DEC_1,
        **kwargs,
    )


def _ours(**kwargs):
    return price_sheet_import(
        text=(DATA / "prices.yaml").read_text(), filename="prices.yaml", **kwargs
    )


def _price_rows() -> list[tuple]:
    return list(
        Price.objects.order_by("model__name", "effective_from").values_list(
            "model__name",
            "effective_from",
            "input_per_mtok",
            "cached_input_per_mtok",
            "cache_write_per_mtok",
            "output_per_mtok",
            "long_context_threshold",
            "long_context_input_multiplier",
            "long_context_output_multiplier",
        )
    )


def test_litellm_per_token_costs_become_exact_per_million_prices():
    sheet = price_sheet_parse((DATA / "litellm_prices.json").read_text(), filename="x.json")
    by_name = {model.name: model for model in sheet.models if model.where == model.name}
    mini = by_name["gpt-5.4-mini"].prices[0]
    # 7e-07 * 1 000 000 = 0.7 exactly (float would give 0.7000000000000001)
    assert mini.input_per_mtok == D("0.7")
    assert mini.cached_input_per_mtok == D("0.07")
    assert mini.output_per_mtok == D("4.2")
    assert mini.cache_write_per_mtok is None
    assert mini.long_context_threshold == 272_000
    assert (mini.long_context_input_multiplier, mini.long_context_output_multiplier) == (
        D("2"),
        D("1.5"),
    )
    terra = by_name["gpt-6.1-terra"].prices[0]
    assert terra.cache_write_per_mtok == D("1.25")
    assert by_name["gpt-6.1-terra"].fields["context_window"] == 1_050_000
    flagship = by_name["gpt-5.4"]
    assert flagship.fields["shutdown_date"] == dt.date(2026, 12, 11)
    assert flagship.fields["supports_computer_use"] is True
    assert flagship.fields["supports_json_schema"] is True


def test_litellm_non_chat_entries_and_the_sample_spec_are_skipped():
    sheet = price_sheet_parse((DATA / "litellm_prices.json").read_text(), filename="x.json")
    names = {model.name for model in sheet.models}
    assert "sample_spec" not in names
    assert "text-embedding-3-large" not in names
    assert any("text-embedding-3-large" in line for line in sheet.skipped)


def test_litellm_float_artifacts_are_rounded_to_price_precision_with_a_warning():
    sheet = price_sheet_parse((DATA / "litellm_prices.json").read_text(), filename="x.json")
    o9 = next(model for model in sheet.models if model.name == "o9-mini")
    assert o9.prices[0].input_per_mtok == D("0.150000")
    assert any("o9-mini.input_cost_per_token" in warning for warning in sheet.warnings)


def test_litellm_dry_run_shows_the_changes_and_applies_nothing(seeded):
    before = _price_rows()
    result = _litellm(dry_run=True)
    assert not result.applied
    assert [(c.action, c.model) for c in result.changes] == [
        ("price.create", "gpt-5.4-mini"),
        ("model.update", "gpt-6.1-terra"),
    ]
    mini = result.changes[0]
    assert "in $0.70 / cached $0.07" in mini.summary
    assert "was in $0.75" in mini.summary
    assert _price_rows() == before
    assert Model.objects.get(name="gpt-6.1-terra").context_window == 400_000
    assert not AuditEvent.objects.filter(action__startswith="price_sheet").exists()


def test_litellm_import_updates_only_the_catalogs_own_models_by_default(seeded):
    result = _litellm()
    assert result.applied
    skipped = "\n".join(result.skipped)
    assert "gpt-6.2-nova: not in the catalog" in skipped
    assert "azure/gpt-5.4: gpt-5.4 in the catalog is served by openai" in skipped
    assert not Model.objects.filter(name="gpt-6.2-nova").exists()
    mini = Model.objects.get(name="gpt-5.4-mini")
    assert price_at(mini, DEC_1).input_per_mtok == D("0.7")
    assert price_at(mini, DEC_1 - dt.timedelta(seconds=1)).input_per_mtok == D("0.75")
    # the azure entry did not touch our gpt-5.4
    assert price_at(Model.objects.get(name="gpt-5.4"), DEC_1).input_per_mtok == D("2.5")
    assert Model.objects.get(name="gpt-6.1-terra").context_window == 1_050_000


def test_litellm_import_can_add_new_models_of_configured_providers(seeded):
    result = _litellm(create_models=True)
    nova = Model.objects.get(name="gpt-6.2-nova")
    assert nova.provider.name == "openai"
    assert price_at(nova, DEC_1).output_per_mtok == D("2.4")
    assert not Model.objects.filter(name="text-embedding-3-large").exists()
    assert "azure/gpt-5.4" in "\n".join(result.skipped)


def test_importing_the_same_litellm_map_twice_changes_nothing_the_second_time(seeded):
    _litellm()
    again = price_sheet_import(
        text=(DATA / "litellm_prices.json").read_text(),
        filename="litellm_prices.json",
        effective_from=DEC_1 + dt.timedelta(days=3),
    )
    assert again.changes == []


def test_the_import_is_audited(seeded, alice):
    _litellm(actor=alice)
    events = AuditEvent.objects.filter(action__startswith="price_sheet.")
    assert {(e.action, e.object_repr.split(" ")[0]) for e in events} == {
        ("price_sheet.price_create", "gpt-5.4-mini"),
        ("price_sheet.model_update", "gpt-6.1-terra"),
    }
    assert all(event.actor == alice for event in events)
    created = events.get(action="price_sheet.price_create")
    assert created.before["input_per_mtok"] == "0.75"
    assert created.after["input_per_mtok"] == "0.7"


def test_our_format_adds_a_model_a_price_change_and_a_replacement(seeded):
    result = _ours()
    assert [(c.action, c.model) for c in result.changes] == [
        ("model.create", "gpt-6.2-nova"),
        ("price.create", "gpt-6.2-nova"),
        ("model.update", "gpt-5.4-nano"),
        ("price.create", "gpt-5.4-nano"),
    ]
    nova = Model.objects.get(name="gpt-6.2-nova")
    assert nova.tier.name == "mini"
    assert nova.supports_computer_use is False
    price = price_at(nova, DEC_1)
    # YAML numbers are read as exact decimals, never floats
    assert (price.input_per_mtok, price.cache_write_per_mtok) == (D("0.3"), D("0.375"))
    nano = Model.objects.get(name="gpt-5.4-nano")
    assert nano.replacement == nova
    mid_november = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)
    assert price_at(nano, mid_november).input_per_mtok == D("0.15")
    assert price_at(nano, mid_november - dt.timedelta(seconds=1)).input_per_mtok == D("0.2")


def test_export_then_import_round_trips_exactly(seeded, tmp_path):
    _ours()
    _litellm()
    before = _price_rows()
    for name in ("prices.yaml", "prices.json"):
        text = price_sheet_export(filename=name)
        assert "e-0" not in text.lower()  # no float notation anywhere
        assert price_sheet_import(text=text, filename=name).changes == []
    # wipe the prices and rebuild them from the export
    text = price_sheet_export(filename="prices.json")
    Price.objects.all().delete()
    price_sheet_import(text=text, filename="prices.json")
    assert _price_rows() == before


def test_export_keeps_the_lifecycle_and_capabilities(seeded):
    text = price_sheet_export(filename="prices.yaml")
    sheet = price_sheet_parse(text, filename="prices.yaml")
    mini = next(model for model in sheet.models if model.name == "gpt-5.4-mini")
    assert mini.fields["shutdown_date"] == dt.date(2026, 12, 11)
    assert mini.replacement == "gpt-6.1-terra"
    assert mini.fields["supports_tool_search"] is True
    assert mini.prices[0].output_per_mtok == D("4.5")


def test_the_commands_export_and_dry_run_import(seeded, tmp_path):
    path = tmp_path / "catalog.yaml"
    call_command("export_prices", str(path), stdout=StringIO())
    assert "gpt-6-astra" in path.read_text()
    out = StringIO()
    litellm = DATA / "litellm_prices.json"
    call_command(
        "import_prices",
        str(litellm),
        "--dry-run",
        "--effective-from",
        "2026-12-01T00:00:00Z",
        stdout=out,
    )
    assert "price.create" in out.getvalue()
    assert "Dry run, nothing applied: 1 model.update, 1 price.create." in out.getvalue()
    assert not Price.objects.filter(effective_from=DEC_1).exists()
    out = StringIO()
    call_command("import_prices", str(litellm), "--effective-from", "2026-12-01", stdout=out)
    assert "Applied: 1 model.update, 1 price.create." in out.getvalue()
    assert Price.objects.filter(effective_from=DEC_1).count() == 1


# --- malformed sheets --------------------------------------------------------------------------

BAD_NUMBER = """\
format: switchboard-prices/1
models:
  - name: gpt-5.4-nano
    prices:
      - effective_from: "2026-12-01T00:00:00Z"
        input: abc
        cached_input: "0.02"
        output: "1.25"
"""


def test_a_bad_number_is_reported_with_its_line_and_key(seeded):
    with pytest.raises(PriceSheetError) as error:
        price_sheet_import(text=BAD_NUMBER, filename="bad.yaml")
    assert error.value.problems == ["line 6, models[0].prices[0].input: not a number: 'abc'"]


def test_a_yaml_syntax_error_is_reported_with_its_line(seeded):
    with pytest.raises(PriceSheetError, match=r"line \d+, column \d+: invalid YAML"):
        price_sheet_import(text="format: x\nmodels:\n  - name: [unclosed\n", filename="bad.yaml")


def test_a_json_syntax_error_is_reported_with_its_line(seeded):
    text = '{\n  "gpt-5.4": {\n    "input_cost_per_token": 1e-06,,\n  }\n}\n'
    with pytest.raises(PriceSheetError, match=r"line 3, column \d+: invalid JSON"):
        price_sheet_import(text=text, filename="bad.json")


def test_a_bad_litellm_value_is_reported_with_its_key(seeded):
    text = (
        '{"gpt-5.4-mini": {"litellm_provider": "openai", "mode": "chat",'
        ' "input_cost_per_token": "cheap", "output_cost_per_token": -1e-06}}'
    )
    with pytest.raises(PriceSheetError) as error:
        price_sheet_import(text=text, filename="bad.json")
    assert error.value.problems == [
        "gpt-5.4-mini.input_cost_per_token: not a number: 'cheap'",
        "gpt-5.4-mini.output_cost_per_token: must be a non-negative number, got Decimal('-0.000001')",
    ]


def test_a_sheet_with_one_bad_model_applies_nothing(seeded):
    before = _price_rows()
    text = (DATA / "prices.yaml").read_text().replace("tier: mini", "tier: medium")
    with pytest.raises(
        PriceSheetError, match=r"gpt-6.2-nova\)\.tier: tier 'medium' does not exist"
    ):
        price_sheet_import(text=text, filename="prices.yaml")
    assert _price_rows() == before
    assert not Model.objects.filter(name="gpt-6.2-nova").exists()
    assert Model.objects.get(name="gpt-5.4-nano").replacement.name == "gpt-6-luna"


def test_unknown_keys_and_unknown_replacements_are_rejected(seeded):
    text = """\
format: switchboard-prices/1
models:
  - name: gpt-5.4-nano
    replacement: gpt-99
    prices:
      - input: "0.1"
        output: "1"
        inptu: "0.1"
"""
    with pytest.raises(PriceSheetError) as error:
        price_sheet_import(text=text, filename="bad.yaml")
    assert error.value.problems == ["line 6, models[0].prices[0]: unknown keys: inptu"]
    with pytest.raises(PriceSheetError, match="model 'gpt-99' is not in the catalog or the sheet"):
        price_sheet_import(text=text.replace('        inptu: "0.1"\n', ""), filename="bad.yaml")


def test_an_unrecognised_document_is_rejected(seeded):
    with pytest.raises(PriceSheetError, match="unrecognised sheet"):
        price_sheet_import(text="- just\n- a list\n", filename="x.yaml")


def test_the_import_command_reports_errors_and_applies_nothing(seeded, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_NUMBER)
    with pytest.raises(CommandError, match="line 6, models"):
        call_command("import_prices", str(path), stdout=StringIO())
