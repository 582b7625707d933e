"""Prompt rendering: typed variables validated against a version's schema, then the version's
templates rendered in a Jinja2 sandbox (prompts.sandbox) with strict undefined and hard limits.

This is on the gateway's hot path: a plain template (no loops, macros or calls) renders inline,
compiled once and cached by its source text in a cache bounded by the text's size; any other
template renders in a killable worker process (prompts.render_pool), awaited without blocking
the event loop. Validation is plain Python over a short list of declared variables.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from jinja2 import TemplateSyntaxError, meta, nodes

from core.errors import InvalidVariables, ServiceUnavailable, ValidationFailed
from core.sizedcache import SizedCache
from prompts.render_pool import RenderBusy, RenderPool
from prompts.sandbox import (
    ENV,
    GLOBAL_NAMES,
    Failure,
    Limits,
    Plan,
    compile_template,
    failure_of,
    plan,
    render_bounded,
)

if TYPE_CHECKING:
    from prompts.models import PromptVersion

VARIABLE_TYPES = ("string", "integer", "number", "boolean", "enum", "list", "json")
VARIABLE_KEYS = {"name", "type", "required", "default", "enum", "max_length", "description"}
ROLES = ("system", "user", "assistant")


def _limits() -> Limits:
    return Limits(
        seconds=settings.PROMPT_RENDER_SECONDS,
        max_chars=settings.PROMPT_RENDER_MAX_CHARS,
        max_iterations=settings.PROMPT_RENDER_MAX_ITERATIONS,
        max_depth=settings.PROMPT_RENDER_MAX_DEPTH,
    )


@dataclass(frozen=True)
class _Compiled:
    plan: Plan
    template: Any  # compiled only when plain: the others render in a worker


def _build(source: str) -> _Compiled:
    found = plan(ENV.parse(source))
    return _Compiled(found, compile_template(source, guarded=False) if found.plain else None)


_CACHE = SizedCache(settings.PROMPT_TEMPLATE_CACHE_CHARS, _build)
_POOL = RenderPool(
    size=settings.PROMPT_RENDER_WORKERS, memory_mb=settings.PROMPT_RENDER_WORKER_MEMORY_MB
)
# The threads that wait on the workers for async callers (never the event loop's own).
_WAITERS = ThreadPoolExecutor(settings.PROMPT_RENDER_WORKERS, thread_name_prefix="render")


@dataclass(frozen=True)
class RenderedPrompt:
    """Chat messages in order: system (if any), few-shot examples, user."""

    messages: list[dict]
    variables: dict = field(default_factory=dict)

    @property
    def instructions(self) -> str:
        """The system text ("" when the version has none): the Responses API's `instructions`."""
        if self.messages and self.messages[0]["role"] == "system":
            return self.messages[0]["content"]
        return ""

    @property
    def input_messages(self) -> list[dict]:
        """Every message but the system one: the Responses API's `input`."""
        if self.messages and self.messages[0]["role"] == "system":
            return self.messages[1:]
        return list(self.messages)


# ---------------------------------------------------------------------------------------------
# Variables


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), "json" if isinstance(value, dict) else type(value).__name__
    )


def check_value(spec: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """Return (value, None) when `value` fits `spec`, else (None, the message)."""
    kind = spec.get("type", "string")
    enum = spec.get("enum")
    max_length = spec.get("max_length")
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            return None, f"Expected a string, got {_type_name(value)}."
        if enum and value not in enum:
            return None, "Must be one of: " + ", ".join(map(str, enum)) + "."
        if max_length is not None and len(value) > max_length:
            return None, f"At most {max_length} characters (got {len(value)})."
        return value, None
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value), None
            return None, f"Expected an integer, got {_type_name(value)}."
        return value, None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return None, f"Expected a number, got {_type_name(value)}."
        if isinstance(value, float) and not math.isfinite(value):
            return None, "Expected a finite number."
        return value, None
    if kind == "boolean":
        if not isinstance(value, bool):
            return None, f"Expected true or false, got {_type_name(value)}."
        return value, None
    if kind == "list":
        if not isinstance(value, list):
            return None, f"Expected a list, got {_type_name(value)}."
        if max_length is not None and len(value) > max_length:
            return None, f"At most {max_length} items (got {len(value)})."
        return value, None
    if kind == "json":
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            return None, "Expected a JSON value."
        if max_length is not None and len(text) > max_length:
            return None, f"At most {max_length} characters of JSON (got {len(text)})."
        return value, None
    return None, f"Unknown variable type {kind!r}."


def validate_variables(schema: list[dict], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check `values` against a version's variable schema; return them with defaults applied.

    Raises InvalidVariables with one entry per bad field in `details`.
    """
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise InvalidVariables(
            "Variables must be an object.", details={"variables": "Expected an object."}
        )
    errors: dict[str, str] = {}
    result: dict[str, Any] = {}
    declared = set()
    for spec in schema:
        name = spec["name"]
        declared.add(name)
        if name in values and values[name] is not None:
            value, error = check_value(spec, values[name])
            if error:
                errors[name] = error
            else:
                result[name] = value
        elif spec.get("default") is not None:
            result[name] = spec["default"]
        elif spec.get("required", False):
            errors[name] = "This variable is required."
        else:
            result[name] = None
    for name in values:
        if name not in declared:
            errors[str(name)] = "Unknown variable: the prompt does not declare it."
    if errors:
        names = ", ".join(sorted(errors))
        raise InvalidVariables(f"Invalid variables: {names}.", details=errors)
    return result


def parse_form_value(spec: Mapping[str, Any], raw: str) -> Any:
    """Turn a form field's text into the variable's type (the editor's sample values).

    Raises ValueError with a message fit for the user.
    """
    kind = spec.get("type", "string")
    if kind in ("string", "enum"):
        return raw
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError("Enter a number.") from None
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("Enter true or false.")
    if kind == "list":
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except ValueError:
                raise ValueError("Enter a JSON list, or one item per line.") from None
            if isinstance(value, list):
                return value
        return [line for line in raw.splitlines() if line.strip()]
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"Invalid JSON: {exc}") from None
    raise ValueError(f"Unknown variable type {kind!r}.")


# ---------------------------------------------------------------------------------------------
# Rendering


class TemplateLimitExceeded(ValidationFailed):
    """A template went past a rendering limit (time, output size, loops, call depth)."""

    def __init__(self, code: str, reason: str, where: str) -> None:
        super().__init__(
            f"The {where} template went past a limit: {reason}", details={where: reason}
        )
        self.code = code


def _failed(where: str, failure: Failure) -> ValidationFailed:
    kind, message = failure["kind"], failure["message"]
    where = where or "template"
    if kind == "limit":
        return TemplateLimitExceeded(failure["code"], message, where)
    if kind == "syntax":
        line = failure.get("line")
        return ValidationFailed(
            f"Template syntax error in {where} at line {line}: {message}",
            details={where: f"line {line}: {message}"},
        )
    if kind == "security":
        return ValidationFailed(
            f"The {where} template tried an operation the sandbox forbids: {message}",
            details={where: f"unsafe operation refused: {message}"},
        )
    if kind == "undefined":
        return ValidationFailed(
            f"The {where} template uses an undefined value: {message}", details={where: message}
        )
    return ValidationFailed(
        f"The {where} template failed to render: {message}", details={where: message}
    )


def _weight(value: Any) -> int:
    """About how many characters `value` renders to (what a plain template can multiply)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) + sum(_weight(item) for item in value)
    if isinstance(value, dict):
        return sum(_weight(k) + _weight(v) for k, v in value.items())
    return 24


def _inline(
    sources: list[tuple[str, str]], values: dict[str, Any], *, keep: bool
) -> list[str] | None:
    """The rendered texts when every template is plain and cheap for these values, else
    None (a worker must render them). Raises ValidationFailed."""
    # Compiling takes hundreds of bytes per character of source, for a while: large
    # templates are compiled in a worker, whose memory is its own.
    if any(len(source) > settings.PROMPT_RENDER_INLINE_SOURCE_CHARS for _, source in sources):
        return None
    compiled = []
    for where, source in sources:
        try:
            compiled.append((where, _CACHE.get(source) if keep else _build(source)))
        except TemplateSyntaxError as exc:
            raise _failed(where, failure_of(exc) or {}) from None
    references = sum(entry.plan.references for _, entry in compiled)
    if not all(entry.plan.plain for _, entry in compiled):
        return None
    work = references * _weight(values)
    if work > settings.PROMPT_RENDER_INLINE_WORK:
        return None
    # Output at most this many characters (linear filters grow text at most sixfold): the
    # usual prompt renders in one call, without counting pieces as they come.
    size = 6 * work + sum(len(source) for _, source in sources)
    limits = None if size <= settings.PROMPT_RENDER_MAX_CHARS else _limits()
    texts = []
    for where, entry in compiled:
        try:
            if limits is None:
                texts.append(entry.template.render(values))
            else:
                texts.append(render_bounded(entry.template, values, limits))
        except Exception as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            raise _failed(where, failure) from None
    return texts


def _plain_values(value: Any) -> Any:
    """Values as built-in types only, for the worker's pipe (a str subclass would need its
    module imported there)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain_values(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain_values(v) for k, v in value.items()}
    return value


def _in_worker(sources: list[tuple[str, str]], values: dict[str, Any]) -> list[str]:
    try:
        answer = _POOL.render(sources, _plain_values(values), _limits())
    except RenderBusy:
        raise ServiceUnavailable(
            "Every template worker stayed busy; try again shortly.", headers={"Retry-After": "1"}
        ) from None
    if isinstance(answer, tuple):
        raise _failed(*answer)
    return answer


def _sources(
    system_template: str, user_template: str, few_shot: list[dict] | None
) -> list[tuple[str, str]]:
    sources = [("system", system_template)] if system_template else []
    for index, example in enumerate(few_shot or []):
        sources.append((f"few_shot[{index}]", example.get("content", "")))
    sources.append(("user", user_template))
    return sources


def _messages(
    texts: list[str], system_template: str, user_template: str, few_shot: list[dict] | None
) -> list[dict]:
    messages: list[dict] = []
    texts = list(texts)
    if system_template:
        system = texts.pop(0)
        if system.strip():
            messages.append({"role": "system", "content": system})
    for example in few_shot or []:
        messages.append({"role": example.get("role", "user"), "content": texts.pop(0)})
    if user_template or not messages:
        messages.append({"role": "user", "content": texts.pop(0)})
    return messages


def render_templates(
    *,
    system_template: str,
    user_template: str,
    few_shot: list[dict] | None,
    values: dict[str, Any],
    keep: bool = True,
) -> list[dict]:
    """Render a version's templates with already-validated values into chat messages;
    `keep=False` for drafts (the editor's preview), whose compiled form is not cached.

    Blocks until done (at most PROMPT_RENDER_SECONDS and a little): call it from a thread,
    never from the event loop (use `arender_templates` there). Raises ValidationFailed (422;
    TemplateLimitExceeded past a limit) or ServiceUnavailable (503, every worker busy).
    """
    sources = _sources(system_template, user_template, few_shot)
    texts = _inline(sources, values, keep=keep)
    if texts is None:
        texts = _in_worker(sources, values)
    return _messages(texts, system_template, user_template, few_shot)


async def arender_templates(
    *,
    system_template: str,
    user_template: str,
    few_shot: list[dict] | None,
    values: dict[str, Any],
) -> list[dict]:
    """`render_templates` for the event loop: plain templates inline, the rest awaited on a
    worker without blocking the loop."""
    sources = _sources(system_template, user_template, few_shot)
    texts = _inline(sources, values, keep=True)
    if texts is None:
        loop = asyncio.get_running_loop()
        texts = await loop.run_in_executor(_WAITERS, _in_worker, sources, values)
    return _messages(texts, system_template, user_template, few_shot)


def render_version(version: PromptVersion, variables: dict | None) -> RenderedPrompt:
    """Validate `variables` against the version's schema and render its messages.

    Raises InvalidVariables (422, one detail per bad field) or ValidationFailed (422: a
    template that cannot render, e.g. a sandbox violation or a limit). Blocking: from the
    event loop, use `arender_version`.
    """
    values = validate_variables(version.variables or [], variables)
    messages = render_templates(
        system_template=version.system_template,
        user_template=version.user_template,
        few_shot=version.few_shot,
        values=values,
    )
    return RenderedPrompt(messages=messages, variables=values)


async def arender_version(version: PromptVersion, variables: dict | None) -> RenderedPrompt:
    """`render_version` for async callers: never blocks the event loop."""
    values = validate_variables(version.variables or [], variables)
    messages = await arender_templates(
        system_template=version.system_template,
        user_template=version.user_template,
        few_shot=version.few_shot,
        values=values,
    )
    return RenderedPrompt(messages=messages, variables=values)


# ---------------------------------------------------------------------------------------------
# Validation on save


@dataclass(frozen=True)
class TemplateIssue:
    template: str  # "system", "user", "few_shot[0]", or "variables"
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.template}, line {self.line}" if self.line else self.template
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class TemplateReport:
    """What saving a version found: errors block the save, warnings do not."""

    syntax_errors: list[TemplateIssue] = field(default_factory=list)
    schema_errors: list[TemplateIssue] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)  # used in a template, not declared
    unused: list[str] = field(default_factory=list)  # declared, not used by any template
    used: list[str] = field(default_factory=list)  # in order of first use

    @property
    def ok(self) -> bool:
        return not (self.syntax_errors or self.schema_errors or self.undeclared)

    @property
    def errors(self) -> list[str]:
        found = [str(issue) for issue in (*self.syntax_errors, *self.schema_errors)]
        found += [f"variable {name!r} is used but not declared" for name in self.undeclared]
        return found

    @property
    def warnings(self) -> list[str]:
        return [f"variable {name!r} is declared but not used" for name in self.unused]

    def as_details(self) -> dict[str, str]:
        """One entry per bad field, for a 422's `details`."""
        details: dict[str, str] = {}
        for issue in (*self.syntax_errors, *self.schema_errors):
            key = issue.template
            message = f"line {issue.line}: {issue.message}" if issue.line else issue.message
            details[key] = f"{details[key]}; {message}" if key in details else message
        if self.undeclared:
            details["undeclared_variables"] = "Used but not declared: " + ", ".join(self.undeclared)
        return details


def _template_sources(
    system_template: str, user_template: str, few_shot: Iterable[Any] | None
) -> list[tuple[str, str]]:
    sources = [("system", system_template or ""), ("user", user_template or "")]
    for index, example in enumerate(few_shot or []):
        content = example.get("content", "") if isinstance(example, Mapping) else ""
        sources.append((f"few_shot[{index}]", content if isinstance(content, str) else ""))
    return sources


def _names_in_order(ast: nodes.Template) -> list[str]:
    undeclared = meta.find_undeclared_variables(ast) - GLOBAL_NAMES
    seen: list[str] = []
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load" and node.name in undeclared and node.name not in seen:
            seen.append(node.name)
    # find_all walks in source order; anything it missed comes last, sorted for stability
    seen += sorted(undeclared - set(seen))
    return seen


def detect_variables(*sources: str) -> tuple[list[str], list[TemplateIssue]]:
    """The variable names the templates use, in order of first use, and any syntax errors."""
    used: list[str] = []
    issues: list[TemplateIssue] = []
    for index, source in enumerate(sources):
        try:
            ast = ENV.parse(source)
        except TemplateSyntaxError as exc:
            issues.append(TemplateIssue(f"template[{index}]", exc.lineno, exc.message or ""))
            continue
        used += [name for name in _names_in_order(ast) if name not in used]
    return used, issues


def validate_variable_schema(variables: Any) -> list[TemplateIssue]:
    """Check the schema itself: identifiers, known types, sane constraints, typed defaults."""
    if not isinstance(variables, list):
        return [TemplateIssue("variables", None, "Must be a list of variable definitions.")]
    issues: list[TemplateIssue] = []
    seen: set[str] = set()
    for index, spec in enumerate(variables):
        where = f"variables[{index}]"
        if not isinstance(spec, Mapping):
            issues.append(TemplateIssue(where, None, "Must be an object."))
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            issues.append(TemplateIssue(where, None, f"{name!r} is not a valid variable name."))
            continue
        where = f"variables.{name}"
        if name in seen:
            issues.append(TemplateIssue(where, None, "Declared twice."))
        seen.add(name)
        if name in GLOBAL_NAMES or name in ("true", "false", "none", "True", "False", "None"):
            issues.append(TemplateIssue(where, None, f"{name!r} is a reserved name."))
        unknown_keys = set(spec) - VARIABLE_KEYS
        if unknown_keys:
            issues.append(
                TemplateIssue(where, None, "Unknown keys: " + ", ".join(sorted(unknown_keys)))
            )
        kind = spec.get("type", "string")
        if kind not in VARIABLE_TYPES:
            issues.append(
                TemplateIssue(
                    where, None, f"Unknown type {kind!r}; use one of {', '.join(VARIABLE_TYPES)}."
                )
            )
            continue
        enum = spec.get("enum")
        if kind == "enum" and not enum:
            issues.append(TemplateIssue(where, None, "An enum needs a non-empty list of values."))
        if enum is not None and (
            not isinstance(enum, list) or not all(isinstance(v, str) for v in enum)
        ):
            issues.append(TemplateIssue(where, None, "enum must be a list of strings."))
            continue
        max_length = spec.get("max_length")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            issues.append(TemplateIssue(where, None, "max_length must be a positive integer."))
            continue
        if not isinstance(spec.get("required", False), bool):
            issues.append(TemplateIssue(where, None, "required must be true or false."))
        default = spec.get("default")
        if default is not None:
            _, error = check_value(spec, default)
            if error:
                issues.append(TemplateIssue(where, None, f"Default does not fit: {error}"))
    return issues


def validate_version_templates(
    *,
    system_template: str,
    user_template: str,
    few_shot: Any,
    variables: Any,
) -> TemplateReport:
    """Syntax errors (with template and line), used-but-undeclared, declared-but-unused."""
    syntax_errors: list[TemplateIssue] = []
    schema_errors = validate_variable_schema(variables)
    if not isinstance(few_shot, list):
        schema_errors.append(TemplateIssue("few_shot", None, "Must be a list of messages."))
        few_shot = []
    else:
        for index, example in enumerate(few_shot):
            if (
                not isinstance(example, Mapping)
                or example.get("role") not in ROLES
                or not isinstance(example.get("content"), str)
            ):
                schema_errors.append(
                    TemplateIssue(
                        f"few_shot[{index}]",
                        None,
                        'Each example needs "role" (system, user or assistant) and "content".',
                    )
                )
    used: list[str] = []
    for where, source in _template_sources(system_template, user_template, few_shot):
        try:
            ast = ENV.parse(source)
        except TemplateSyntaxError as exc:
            syntax_errors.append(TemplateIssue(where, exc.lineno, exc.message or "syntax error"))
            continue
        used += [name for name in _names_in_order(ast) if name not in used]
    declared = [
        spec["name"]
        for spec in (variables if isinstance(variables, list) else [])
        if isinstance(spec, Mapping) and isinstance(spec.get("name"), str)
    ]
    return TemplateReport(
        syntax_errors=syntax_errors,
        schema_errors=schema_errors,
        undeclared=[name for name in used if name not in declared],
        unused=[name for name in declared if name not in used] if not syntax_errors else [],
        used=used,
    )
