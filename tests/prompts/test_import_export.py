from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from core.errors import ValidationFailed
from prompts.models import Label, Prompt
from prompts.portable import dump_document, load_document, read_path
from prompts.services import (
    label_move,
    prompts_export,
    prompts_import,
    version_content,
)
from tests.prompts.conftest import make_prompt, new_version

pytestmark = pytest.mark.django_db


def snapshot(team) -> dict:
    """Every prompt of a team: its settings, labels and version contents."""
    return {
        p.slug: {
            "name": p.name,
            "task_tag": p.task_tag,
            "requires_approval": p.requires_approval,
            "labels": {label.name: label.version.number for label in p.labels.all()},
            "versions": {v.number: version_content(v) for v in p.versions.all()},
        }
        for p in Prompt.objects.filter(team=team)
    }


@pytest.fixture
def two_prompts(team, alice):
    greet, _ = make_prompt(team, alice, slug="greet")
    new_version(greet, alice, "Line one {{ name }}\nline two {{ tone }}", change_note="multi")
    label_move(prompt=greet, label="staging", version=greet.versions.get(number=2), actor=alice)
    make_prompt(team, alice, slug="farewell", task_tag="generation")
    return greet


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_import_into_another_team_round_trips(two_prompts, team, other_team, fmt):
    text = dump_document(prompts_export(prompts=Prompt.objects.filter(team=team)), fmt)
    result = prompts_import(document=load_document(text, fmt), actor=None, team=other_team)
    assert sorted(result.created_prompts) == ["team-b/farewell", "team-b/greet"]
    assert snapshot(other_team) == snapshot(team)


def test_yaml_export_keeps_templates_readable_as_blocks(two_prompts, team):
    text = dump_document(prompts_export(prompts=Prompt.objects.filter(team=team)))
    assert "user_template: |-\n" in text or "user_template: |\n" in text
    assert yaml.safe_load(text)["format"] == "switchboard.prompts/v1"


def test_importing_the_same_document_twice_changes_nothing(two_prompts, team):
    document = prompts_export(prompts=Prompt.objects.filter(team=team))
    result = prompts_import(document=document, actor=None)
    assert result.created_prompts == result.created_versions == result.moved_labels == []
    assert len(result.unchanged) == 3


def test_import_adds_new_versions_and_moves_labels(two_prompts, team):
    document = prompts_export(prompts=Prompt.objects.filter(team=team, slug="greet"))
    item = document["prompts"][0]
    item["versions"].append(
        {**item["versions"][-1], "number": 3, "user_template": "v3 {{ name }}{{ tone }}"}
    )
    item["labels"]["production"] = 3
    result = prompts_import(document=document, actor=None)
    assert result.created_versions == ["team-a/greet v3"]
    assert Label.objects.get(prompt=two_prompts, name="production").version.number == 3


def test_import_is_all_or_nothing_with_one_error_per_item(two_prompts, team, other_team):
    document = prompts_export(prompts=Prompt.objects.filter(team=team))
    document["prompts"][0]["versions"][0]["user_template"] = "{{ broken"  # farewell v1
    document["prompts"][1]["versions"][1]["variables"] = [{"name": "x y"}]  # greet v2
    with pytest.raises(ValidationFailed) as caught:
        prompts_import(document=document, actor=None, team=other_team)
    assert set(caught.value.details) == {
        "prompts[0] (farewell).versions[0]",
        "prompts[1] (greet).versions[1]",
    }
    assert "line 1" in caught.value.details["prompts[0] (farewell).versions[0]"]
    assert not Prompt.objects.filter(team=other_team).exists()


def test_import_refuses_to_change_a_stored_version(two_prompts, team):
    document = prompts_export(prompts=Prompt.objects.filter(team=team, slug="greet"))
    document["prompts"][0]["versions"][0]["system_template"] = "rewritten history"
    with pytest.raises(ValidationFailed) as caught:
        prompts_import(document=document, actor=None)
    assert "immutable" in next(iter(caught.value.details.values()))
    assert two_prompts.versions.get(number=1).system_template == "You greet people."


def test_a_user_cannot_import_into_a_team_they_cannot_edit(two_prompts, team, charlie, bob):
    document = prompts_export(prompts=Prompt.objects.filter(team=team))
    for person in (charlie, bob):
        with pytest.raises(ValidationFailed):
            prompts_import(document=document, actor=person, team=team)


def test_commands_round_trip_through_a_directory_and_a_file(
    two_prompts, team, other_team, tmp_path
):
    out = StringIO()
    call_command("export_prompts", str(tmp_path / "repo"), "--team", "team-a", stdout=out)
    assert sorted(p.name for p in (tmp_path / "repo" / "team-a").iterdir()) == [
        "farewell.yaml",
        "greet.yaml",
    ]
    call_command("import_prompts", str(tmp_path / "repo"), "--team", "team-b", stdout=out)
    assert snapshot(other_team) == snapshot(team)
    call_command("export_prompts", str(tmp_path / "all.json"), stdout=out)
    assert len(read_path(tmp_path / "all.json")["prompts"]) == 4
    out = StringIO()
    call_command("import_prompts", str(tmp_path / "all.json"), stdout=out)
    assert "Imported: 0 prompts created" in out.getvalue()


def test_import_command_lists_every_problem(tmp_path, team):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "format: switchboard.prompts/v1\nprompts:\n"
        "  - {slug: a, team: team-a, versions: [{user_template: '{{ x'}]}\n"
        "  - {slug: b, team: nope}\n"
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", str(bad), stdout=StringIO())
    assert "prompts[0] (a).versions[0]" in str(caught.value)
    assert "prompts[1] (b)" in str(caught.value)
    assert not Prompt.objects.exists()
