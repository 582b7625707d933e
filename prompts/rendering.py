"""Prompt rendering: typed variables validated against a version's schema, then the version's
templates rendered in a Jinja2 sandbox with strict undefined.

This is on the gateway's hot path: compiled templates are cached by their source text (a
version is immutable, so its text never changes under a given id), and validation is plain
Python over a short list of declared variables.
"""

from __future__ import annotations

import json
import keyword
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.errors import InvalidVariables, ValidationFailed

if TYPE_CHECKING:
    from prompts.models import PromptVersion

VARIABLE_TYPES = ("string", "integer", "number", "boolean", "enum", "list", "json")
VARIABLE_KEYS = {"name", "type", "required", "default", "enum", "max_length", "description"}
ROLES = ("system", "user", "assistant")
# A rendered prompt larger than this is a template bug (or an attack), not a prompt.
MAX_RENDERED_CHARS = 1_000_000
# `{{ 'x' * n }}` and `{{ n ** m }}` may not build values bigger than this.
MAX_BINOP_SIZE = 100_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox that also refuses memory bombs built with `*` and `**`."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large for a prompt template")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(count, int)
                and len(seq) * count > MAX_BINOP_SIZE
            ):
                raise SecurityError("repetition too large for a prompt template")
        return operator.mul(left, right)


def _finalize(value: Any) -> Any:
    # An optional variable left out renders as nothing, not as "None".
    return "" if value is None else value


_ENV = _Sandbox(
    undefined=StrictUndefined,
    autoescape=False,
    finalize=_finalize,
    keep_trailing_newline=True,
    auto_reload=False,
    cache_size=0,  # we cache compiled templates ourselves, keyed by their text
)
_GLOBAL_NAMES = frozenset(_ENV.globals)


@lru_cache(maxsize=2048)
def _compile(source: str) -> Any:
    return _ENV.from_string(source)


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


def _render_one(source: str, values: dict[str, Any], where: str) -> str:
    try:
        text = _compile(source).render(values)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(
            f"Template syntax error in {where} at line {exc.lineno}: {exc.message}",
            details={where: f"line {exc.lineno}: {exc.message}"},
        ) from None
    except SecurityError as exc:
        raise ValidationFailed(
            f"The {where} template tried an operation the sandbox forbids: {exc}",
            details={where: f"unsafe operation refused: {exc}"},
        ) from None
    except UndefinedError as exc:
        raise ValidationFailed(
            f"The {where} template uses an undefined value: {exc}",
            details={where: str(exc)},
        ) from None
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ValidationFailed(
            f"The {where} template failed to render: {exc}",
            details={where: str(exc)},
        ) from None
    if len(text) > MAX_RENDERED_CHARS:
        raise ValidationFailed(
            f"The rendered {where} is larger than {MAX_RENDERED_CHARS} characters.",
            details={where: "rendered text too large"},
        )
    return text


def render_templates(
    *,
    system_template: str,
    user_template: str,
    few_shot: list[dict] | None,
    values: dict[str, Any],
) -> list[dict]:
    """Render a version's templates with already-validated values into chat messages."""
    messages: list[dict] = []
    if system_template:
        system = _render_one(system_template, values, "system")
        if system.strip():
            messages.append({"role": "system", "content": system})
    for index, example in enumerate(few_shot or []):
        messages.append(
            {
                "role": example.get("role", "user"),
                "content": _render_one(example.get("content", ""), values, f"few_shot[{index}]"),
            }
        )
    if user_template or not messages:
        messages.append({"role": "user", "content": _render_one(user_template, values, "user")})
    return messages


def render_version(version: PromptVersion, variables: dict | None) -> RenderedPrompt:
    """Validate `variables` against the version's schema and render its messages.

    Raises InvalidVariables (422, one detail per bad field) or ValidationFailed (422: a
    template that cannot render, e.g. a sandbox violation).
    """
    values = validate_variables(version.variables or [], variables)
    messages = render_templates(
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
    undeclared = meta.find_undeclared_variables(ast) - _GLOBAL_NAMES
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
            ast = _ENV.parse(source)
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
        if name in _GLOBAL_NAMES or name in ("true", "false", "none", "True", "False", "None"):
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
            ast = _ENV.parse(source)
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
