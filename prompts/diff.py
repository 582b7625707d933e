"""Line diffs between two versions, for Compare, the Publish dialog and approval review."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prompts.models import PromptVersion

TEXT_FIELDS = (
    ("system_template", "System"),
    ("user_template", "User"),
    ("few_shot", "Few-shot examples"),
    ("variables", "Variables"),
)
PARAM_FIELDS = (
    ("tier", "Tier"),
    ("model_name", "Model"),
    ("temperature", "Temperature"),
    ("max_output_tokens", "Max output tokens"),
    ("reasoning_effort", "Reasoning effort"),
    ("tools", "Tools"),
    ("response_schema", "Response schema"),
)


@dataclass(frozen=True)
class DiffLine:
    op: str  # "ins", "del" or "eq"
    text: str


@dataclass(frozen=True)
class DiffSection:
    title: str
    lines: list[DiffLine]

    @property
    def changed(self) -> bool:
        return any(line.op != "eq" for line in self.lines)


@dataclass(frozen=True)
class ParamChange:
    title: str
    before: str
    after: str


@dataclass(frozen=True)
class VersionDiff:
    before: PromptVersion | None
    after: PromptVersion
    sections: list[DiffSection] = field(default_factory=list)
    params: list[ParamChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.params) or any(section.changed for section in self.sections)


def _as_text(value: Any) -> str:
    if value in (None, "", []):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _show(value: Any) -> str:
    text = _as_text(value)
    if not text:
        return "—"
    return text if len(text) <= 80 else text[:77] + "…"


def line_diff(before: str, after: str) -> list[DiffLine]:
    old, new = before.splitlines(), after.splitlines()
    lines: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            lines += [DiffLine("eq", text) for text in old[i1:i2]]
            continue
        lines += [DiffLine("del", text) for text in old[i1:i2]]
        lines += [DiffLine("ins", text) for text in new[j1:j2]]
    return lines


def _section_text(version: PromptVersion | None, name: str) -> str:
    if version is None:
        return ""
    value = getattr(version, name)
    if name in ("variables", "few_shot") and isinstance(value, list):
        # one item per line: a changed variable or example is one changed line
        return "\n".join(json.dumps(item, ensure_ascii=False, default=str) for item in value)
    return _as_text(value)


def version_diff(before: PromptVersion | None, after: PromptVersion) -> VersionDiff:
    """What changed from `before` (None: nothing, e.g. no production yet) to `after`."""
    sections = []
    for name, title in TEXT_FIELDS:
        old = _section_text(before, name)
        new = _section_text(after, name)
        if old or new:
            sections.append(DiffSection(title, line_diff(old, new)))
    params = []
    for name, title in PARAM_FIELDS:
        old = getattr(before, name) if before else None
        new = getattr(after, name)
        if _as_text(old) != _as_text(new):
            params.append(ParamChange(title, _show(old), _show(new)))
    return VersionDiff(before=before, after=after, sections=sections, params=params)
