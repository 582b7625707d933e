"""The PM editor's form handling and live preview (no database access here).

The editor posts its whole form on every keystroke (debounced) to the preview endpoint and
on Save to the edit endpoint; both read it with `draft_from_post`. The variables form
follows the templates: the names used in them (in order of first use) are the rows; a
row's type/required/default/enum/max length survive renames of other variables.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import QueryDict
from django.utils.safestring import SafeString, mark_safe

from core.errors import ValidationFailed
from prompts.caching import PrefixReport, prefix_report
from prompts.models import PromptVersion
from prompts.rendering import (
    VARIABLE_TYPES,
    TemplateIssue,
    check_value,
    parse_form_value,
    render_templates,
    validate_version_templates,
)

SETTINGS_FIELDS = ("tier", "model_name", "temperature", "max_output_tokens", "reasoning_effort")
JSON_FIELDS = {
    "few_shot_json": "few_shot",
    "tools_json": "tools",
    "response_schema_json": "response_schema",
}
_EMPTY_MARK = "\x00"
_EMPTY_RE = re.compile("\x00([A-Za-z_][A-Za-z0-9_]*)\x00")


class _EmptyValue(str):
    """Stands in for a variable with no sample value; marked up in the preview."""

    __slots__ = ()


def _empty(name: str) -> _EmptyValue:
    return _EmptyValue(f"{_EMPTY_MARK}{name}{_EMPTY_MARK}")


def default_text(spec: dict[str, Any]) -> str:
    """A variable's default as the editor's text field shows it (parse_form_value reads it)."""
    default = spec.get("default")
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, str):
        return default
    if isinstance(default, int | float):
        return str(default)
    return json.dumps(default)


@dataclass
class VariableRow:
    name: str
    type: str = "string"
    required: bool = True
    default: str = ""
    enum: str = ""  # comma-separated
    max_length: str = ""
    description: str = ""
    sample: str = ""

    @classmethod
    def from_spec(cls, spec: dict[str, Any], sample: str = "") -> VariableRow:
        return cls(
            name=spec["name"],
            type=spec.get("type", "string"),
            required=bool(spec.get("required", False)),
            default=default_text(spec),
            enum=", ".join(spec.get("enum") or []),
            max_length="" if spec.get("max_length") is None else str(spec["max_length"]),
            description=spec.get("description", ""),
            sample=sample,
        )


@dataclass
class EditorDraft:
    """The editor's form, read: what a save would create, plus the preview's sample values."""

    system_template: str = ""
    user_template: str = ""
    few_shot_json: str = ""
    tools_json: str = ""
    response_schema_json: str = ""
    tier: str = ""
    model_name: str = ""
    temperature: str = ""
    max_output_tokens: str = ""
    reasoning_effort: str = ""
    change_note: str = ""
    rows: list[VariableRow] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # form field → message

    @classmethod
    def from_version(cls, version: PromptVersion | None) -> EditorDraft:
        if version is None:
            return cls(user_template="")
        return cls(
            system_template=version.system_template,
            user_template=version.user_template,
            few_shot_json=json.dumps(version.few_shot, indent=2) if version.few_shot else "",
            tools_json=json.dumps(version.tools, indent=2) if version.tools else "",
            response_schema_json=(
                json.dumps(version.response_schema, indent=2) if version.response_schema else ""
            ),
            tier=version.tier,
            model_name=version.model_name,
            temperature="" if version.temperature is None else str(version.temperature),
            max_output_tokens=(
                "" if version.max_output_tokens is None else str(version.max_output_tokens)
            ),
            reasoning_effort=version.reasoning_effort,
            rows=[VariableRow.from_spec(spec) for spec in version.variables or []],
        )

    # -- reading the parts -------------------------------------------------------------------

    def json_value(self, form_field: str) -> Any:
        text = getattr(self, form_field).strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            self.errors[form_field] = f"Invalid JSON: {exc}"
            return None

    @property
    def few_shot(self) -> list[dict]:
        value = self.json_value("few_shot_json")
        return value if isinstance(value, list) else []

    def template_sources(self) -> list[str]:
        sources = [self.system_template, self.user_template]
        for example in self.few_shot:
            if isinstance(example, dict) and isinstance(example.get("content"), str):
                sources.append(example["content"])
        return sources

    def variable_schema(self, used: list[str]) -> list[dict[str, Any]]:
        """The schema for the names the templates use: the rows' settings, else a required
        string. Errors in a row's settings go to `errors` under that row's field names."""
        rows = {row.name: row for row in self.rows}
        schema = []
        for name in used:
            row = rows.get(name) or VariableRow(name=name)
            spec: dict[str, Any] = {"name": name, "type": row.type}
            if row.type not in VARIABLE_TYPES:
                self.errors[f"var_type__{name}"] = "Unknown type."
                spec["type"] = "string"
            if row.required:
                spec["required"] = True
            enum = [value.strip() for value in row.enum.split(",") if value.strip()]
            if enum:
                spec["enum"] = enum
            if row.max_length.strip():
                try:
                    spec["max_length"] = int(row.max_length)
                except ValueError:
                    self.errors[f"var_max_length__{name}"] = "A whole number."
            if row.description.strip():
                spec["description"] = row.description.strip()
            if row.default.strip() or (row.default and spec["type"] == "string"):
                try:
                    spec["default"] = parse_form_value(spec, row.default)
                except ValueError as exc:
                    self.errors[f"var_default__{name}"] = str(exc)
            schema.append(spec)
        return schema

    def version_fields(self, used: list[str]) -> dict[str, Any]:
        """Keyword arguments for services.prompt_version_create."""
        fields: dict[str, Any] = {
            "system_template": self.system_template,
            "user_template": self.user_template,
            "few_shot": self.few_shot,
            "variables": self.variable_schema(used),
            "tier": self.tier.strip(),
            "model_name": self.model_name.strip(),
            "temperature": self.temperature.strip() or None,
            "reasoning_effort": self.reasoning_effort,
            "tools": self.json_value("tools_json") or [],
            "response_schema": self.json_value("response_schema_json"),
            "change_note": self.change_note.strip(),
        }
        tokens = self.max_output_tokens.strip()
        fields["max_output_tokens"] = None
        if tokens:
            if tokens.isdigit():
                fields["max_output_tokens"] = int(tokens)
            else:
                self.errors["max_output_tokens"] = "A positive whole number."
        return fields


def _text(post: QueryDict, name: str) -> str:
    # Browsers send CRLF in textareas; templates store LF so diffs compare lines, not bytes.
    return post.get(name, "").replace("\r\n", "\n")


def draft_from_post(post: QueryDict) -> EditorDraft:
    draft = EditorDraft(
        **{
            name: _text(post, name)
            for name in (
                "system_template",
                "user_template",
                "few_shot_json",
                "tools_json",
                "response_schema_json",
                *SETTINGS_FIELDS,
                "change_note",
            )
        }
    )
    seen = set()
    for name in post.getlist("var_name"):
        if not name or name in seen:
            continue
        seen.add(name)
        draft.rows.append(
            VariableRow(
                name=name,
                type=post.get(f"var_type__{name}", "string"),
                required=post.get(f"var_required__{name}") in ("on", "true", "1"),
                default=_text(post, f"var_default__{name}"),
                enum=post.get(f"var_enum__{name}", ""),
                max_length=post.get(f"var_max_length__{name}", ""),
                description=post.get(f"var_description__{name}", ""),
                sample=_text(post, f"sample__{name}"),
            )
        )
    return draft


@dataclass
class PreviewMessage:
    role: str
    html: SafeString


@dataclass
class Preview:
    messages: list[PreviewMessage] = field(default_factory=list)
    syntax_errors: list[TemplateIssue] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # field → message
    render_error: str = ""
    empty: list[str] = field(default_factory=list)  # variables with no value: highlighted
    detected: list[str] | None = None  # None while a template does not parse
    cache: PrefixReport | None = None  # the static prefix, for prompt caching


def preview_allowed(*, user_id: int) -> bool:
    """Count one preview for the user in this minute's window (shared by every process
    through the cache); False past PROMPT_PREVIEW_PER_MINUTE. Each preview compiles and
    renders a draft, so a user cannot make a process do that without bound."""
    key = f"prompt-preview:{user_id}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        count = 1
    return count <= settings.PROMPT_PREVIEW_PER_MINUTE


def _mark_empty(text: str) -> SafeString:
    escaped = html.escape(text)
    return mark_safe(  # noqa: S308  (escaped above; only our own marker becomes markup)
        _EMPTY_RE.sub(
            lambda m: (
                f'<mark class="var-empty" data-var="{m.group(1)}">{{{{ {m.group(1)} }}}}</mark>'
            ),
            escaped,
        )
    )


def _sent_order(draft: EditorDraft, few_shot: list[dict]) -> list[tuple[str, str]]:
    """The templates in the order a request sends them: instructions, examples, user."""
    sources = [("system", draft.system_template)] if draft.system_template else []
    for index, example in enumerate(few_shot):
        if isinstance(example, dict) and isinstance(example.get("content", ""), str):
            sources.append((f"few_shot[{index}]", example.get("content", "")))
    sources.append(("user", draft.user_template))
    return sources


def build_preview(draft: EditorDraft) -> Preview:
    """Render the draft with its sample values; empty ones are marked, errors listed."""
    few_shot = draft.few_shot
    report = validate_version_templates(
        system_template=draft.system_template,
        user_template=draft.user_template,
        few_shot=few_shot,
        variables=[],
    )
    preview = Preview(syntax_errors=list(report.syntax_errors))
    preview.problems.update(
        {
            issue.template: issue.message
            for issue in report.schema_errors
            if issue.template != "variables"
        }
    )
    if report.syntax_errors:
        return preview
    preview.detected = report.used
    preview.cache = prefix_report(_sent_order(draft, few_shot))
    schema = draft.variable_schema(report.used)
    samples = {row.name: row.sample for row in draft.rows}
    values: dict[str, Any] = {}
    for spec in schema:
        name = spec["name"]
        raw = samples.get(name, "")
        if raw == "" or (spec["type"] != "string" and not raw.strip()):
            if spec.get("default") is not None:
                values[name] = spec["default"]
            else:
                values[name] = _empty(name)
                preview.empty.append(name)
            continue
        try:
            parsed = parse_form_value(spec, raw)
        except ValueError as exc:
            preview.problems[f"sample__{name}"] = str(exc)
            values[name] = _empty(name)
            continue
        value, error = check_value(spec, parsed)
        if error:
            preview.problems[f"sample__{name}"] = error
            values[name] = _empty(name)
        else:
            values[name] = value
    preview.problems.update(draft.errors)
    try:
        messages = render_templates(
            system_template=draft.system_template,
            user_template=draft.user_template,
            few_shot=few_shot,
            values=values,
            keep=False,
        )
    except ValidationFailed as exc:
        preview.render_error = exc.message
        return preview
    preview.messages = [PreviewMessage(m["role"], _mark_empty(m["content"])) for m in messages]
    return preview
