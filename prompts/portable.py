"""Prompts as YAML or JSON text and files, so they can live in git next to the code.

A file holds a document `{format, prompts: [...]}` (see services.prompts_export). A
directory holds one file per prompt, `<team>/<slug>.yaml`, which keeps git diffs small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.errors import ValidationFailed
from prompts.services import EXPORT_FORMAT

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (templates) as `|` blocks: readable, and diffable line by line."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _str_representer)


def dump_document(document: dict[str, Any], fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def load_document(text: str, fmt: str = "yaml") -> Any:
    """Parse YAML (a superset of JSON) or JSON; raise ValidationFailed on bad syntax."""
    try:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationFailed(
            f"The file is not valid {fmt.upper()}.", details={"document": str(exc)}
        ) from None


def format_for(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def write_path(document: dict[str, Any], path: Path, fmt: str | None = None) -> list[Path]:
    """Write to a file (by its suffix) or, for a directory, one YAML/JSON file per prompt."""
    fmt = fmt or format_for(path)
    if fmt is not None and not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_document(document, fmt), encoding="utf-8")
        return [path]
    written = []
    for item in document["prompts"]:
        target = path / item["team"] / f"{item['slug']}.{'json' if fmt == 'json' else 'yaml'}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            dump_document({"format": EXPORT_FORMAT, "prompts": [item]}, fmt or "yaml"),
            encoding="utf-8",
        )
        written.append(target)
    return written


def read_path(path: Path) -> dict[str, Any]:
    """One document from a file, or from every YAML/JSON file under a directory."""
    if not path.exists():
        raise ValidationFailed(f"{path} does not exist.", details={"path": str(path)})
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and format_for(p))
        if path.is_dir()
        else [path]
    )
    prompts: list[Any] = []
    for file in files:
        document = load_document(file.read_text(encoding="utf-8"), format_for(file) or "yaml")
        if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
            raise ValidationFailed(
                f"{file} is not a prompts document.",
                details={str(file): "Expected {format, prompts: [...]}."},
            )
        if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise ValidationFailed(
                f"{file} has an unknown format.", details={str(file): document.get("format")}
            )
        prompts += document["prompts"]
    return {"format": EXPORT_FORMAT, "prompts": prompts}
