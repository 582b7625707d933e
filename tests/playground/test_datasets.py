from __future__ import annotations

import pytest

from core.errors import PayloadTooLarge, ValidationFailed
from playground import datasets, services
from playground.models import Dataset, DatasetRow
from tests.playground.conftest import TRIAGE_VARIABLES


def test_csv_rows_keep_their_line_numbers_across_multiline_cells():
    data = b'message,channel\nfirst,email\n"two\nlines",chat\n\nlast,phone\n'
    parsed = datasets.parse_dataset("d.csv", data, max_rows=100)
    assert parsed.ok
    assert parsed.columns == ["message", "channel"]
    assert [line for line, _ in parsed.rows] == [2, 3, 6]
    assert parsed.rows[1][1] == {"message": "two\nlines", "channel": "chat"}


def test_csv_errors_name_each_bad_line():
    data = b"message,channel\nok,email\ntoo,many,fields\nshort\nfine,chat\n"
    parsed = datasets.parse_dataset("d.csv", data, max_rows=100)
    assert [str(e) for e in parsed.errors] == [
        "line 3: expected 2 fields, found 3",
        "line 4: expected 2 fields, found 1",
    ]


def test_csv_header_problems_are_reported_on_line_one():
    parsed = datasets.parse_dataset("d.csv", b"message,,message\nx,y,z\n", max_rows=10)
    assert [str(e) for e in parsed.errors] == [
        "line 1: column 2 has no name",
        "line 1: column name 'message' appears twice",
    ]


def test_jsonl_errors_name_each_bad_line():
    data = b'{"message": "a"}\n\n{"message": \n[1, 2]\n{"message": "b", "expected": {"x": 1}}\n'
    parsed = datasets.parse_dataset("d.jsonl", data, max_rows=100)
    assert [e.line for e in parsed.errors] == [3, 4]
    assert "not valid JSON" in parsed.errors[0].message
    assert "expected a JSON object, found list" in parsed.errors[1].message
    assert parsed.columns == ["message", "expected"]


def test_limits_and_formats_are_enforced():
    assert not datasets.parse_dataset("d.txt", b"a\n1\n", max_rows=10).ok
    assert str(datasets.parse_dataset("d.csv", b"a\n", max_rows=10).errors[0]) == (
        "The file has no data rows."
    )
    too_many = datasets.parse_dataset("d.csv", b"a\n" + b"1\n" * 11, max_rows=10)
    assert "11 rows; the limit is 10" in str(too_many.errors[0])
    latin1 = datasets.parse_dataset("d.csv", "a\nok\ncaf\xe9\n".encode("latin-1"), max_rows=10)
    assert str(latin1.errors[0]) == "line 3: not UTF-8 text"


def test_variables_are_typed_from_the_schema_and_empty_cells_fall_back_to_defaults():
    mapping = {"message": "text", "channel": "via", "priority": "prio"}
    values = {"text": "help", "via": "", "prio": "3"}
    assert datasets.row_variables(values, mapping=mapping, variables=TRIAGE_VARIABLES) == {
        "message": "help",
        "priority": 3,
    }
    with pytest.raises(ValueError, match="priority"):
        datasets.row_variables(
            {"text": "x", "prio": "high"}, mapping=mapping, variables=TRIAGE_VARIABLES
        )


def test_default_mapping_matches_names_and_finds_the_expected_column():
    columns = ["Message", "channel", "Expected"]
    mapping = datasets.default_mapping(columns, TRIAGE_VARIABLES)
    assert mapping == {"message": "Message", "channel": "channel"}
    assert datasets.unmapped_variables(TRIAGE_VARIABLES, mapping) == []
    assert datasets.unmapped_variables(TRIAGE_VARIABLES, {"channel": "channel"}) == ["message"]
    assert datasets.guess_expected_column(columns, {"message", "channel"}) == "Expected"


def test_an_upload_with_bad_lines_stores_nothing_and_lists_them(team, alice):
    data = b"message,channel\nok,email\nbroken\n"
    with pytest.raises(ValidationFailed) as caught:
        services.dataset_create(team=team, user=alice, filename="d.csv", data=data)
    assert caught.value.details == [{"line": 3, "message": "expected 2 fields, found 1"}]
    assert not Dataset.objects.exists()


def test_an_upload_over_the_size_limit_is_413(team, alice, settings):
    settings.PLAYGROUND_DATASET_MAX_BYTES = 10
    with pytest.raises(PayloadTooLarge):
        services.dataset_create(team=team, user=alice, filename="d.csv", data=b"a\n" * 20)


def test_a_good_upload_stores_every_row(team, alice):
    dataset = services.dataset_create(
        team=team, user=alice, filename="d.csv", data=b"message\none\ntwo\n"
    )
    assert dataset.row_count == 2
    assert list(DatasetRow.objects.values_list("line_number", "values")) == [
        (2, {"message": "one"}),
        (3, {"message": "two"}),
    ]


def test_rows_that_do_not_fit_the_prompt_are_listed_with_line_numbers(team, alice, triage):
    data = b"message,channel,priority\nfine,email,1\n,chat,2\nok,fax,3\nok,chat,soon\n"
    dataset = services.dataset_create(team=team, user=alice, filename="d.csv", data=data)
    errors = services.dataset_row_errors(
        dataset=dataset,
        version=triage,
        mapping={"message": "message", "channel": "channel", "priority": "priority"},
    )
    assert [e.line for e in errors] == [3, 4, 5]
    assert "message" in errors[0].message
    assert "required" in errors[0].message
    assert "channel" in errors[1].message
    assert "priority" in errors[2].message
