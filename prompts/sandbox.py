"""The Jinja2 sandbox prompts render in, with hard limits, and the analysis that says which
templates are cheap enough to render inline.

Django-free on purpose: the render worker processes (prompts.render_pool) import it alone.

A *plain* template (no loops, macros, calls, assignments, repetition or formatting operators;
only filters whose output is about the size of their input) does work linear in its size and
in the size of its variables, so it renders inline on the caller's thread: the gateway's hot
path pays nothing for isolation. Anything else may loop, recurse or build huge values, so it
renders in a worker process that can be killed; there the sandbox also counts loop
iterations, call depth and output characters and checks a deadline, so that each limit ends
with its own clear code before the kill is needed.
"""

from __future__ import annotations

import contextvars
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# `{{ 'x' * n }}` may not build values bigger than this.
MAX_BINOP_SIZE = 100_000
# `{{ n ** m }}`: exponents and results (in bits) beyond these are refused.
MAX_EXPONENT = 64
MAX_POWER_BITS = 100_000

# Filters whose output is at most a small multiple of their input, whatever their arguments
# (tojson escapes a character into at most six; list/pprint quote each item).
LINEAR_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "dictsort",
        "e",
        "escape",
        "first",
        "float",
        "forceescape",
        "int",
        "items",
        "last",
        "length",
        "list",
        "lower",
        "max",
        "min",
        "reverse",
        "round",
        "safe",
        "sort",
        "string",
        "striptags",
        "sum",
        "title",
        "tojson",
        "trim",
        "unique",
        "upper",
        "urlencode",
        "wordcount",
    }
)
# Linear as long as their arguments are literals written in the template.
LINEAR_WITH_LITERAL_ARGS = frozenset({"join", "truncate"})
# Node types a plain template may contain (anything else sends it to a worker).
PLAIN_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.Filter,
)
# Padding and formatting arguments (`center(n)`, `indent(n)`, `'%*s'`): past this they can only
# build text larger than any prompt.
MAX_INT_ARGUMENT = 1_000_000


class RenderLimit(Exception):
    """A template went past one of the limits; `code` names which."""

    def __init__(self, code: str, message: str, *, exhausted: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # True when memory actually ran out (not refused beforehand): the process that ran
        # the template should not serve another.
        self.exhausted = exhausted


TIMEOUT = "template_timeout"
TOO_LARGE = "template_output_too_large"
LOOP_LIMIT = "template_loop_limit"
RECURSION_LIMIT = "template_recursion_limit"


@dataclass(frozen=True)
class Limits:
    seconds: float = 1.0
    max_chars: int = 1_000_000
    max_iterations: int = 100_000
    max_depth: int = 40


@dataclass
class _Budget:
    limits: Limits
    deadline: float
    iterations: int = 0
    depth: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimit(TIMEOUT, f"took longer than {self.limits.seconds:g} s to render.")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("render_budget")


def _current() -> _Budget | None:
    return _budget.get(None)


def _too_large(limits: Limits) -> RenderLimit:
    return RenderLimit(TOO_LARGE, f"output would pass {limits.max_chars} characters.")


def _check_size(value: Any) -> Any:
    budget = _current()
    if budget is not None and isinstance(value, str) and len(value) > budget.limits.max_chars:
        raise _too_large(budget.limits)
    return value


def _check_arguments(args: Iterable[Any], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_INT_ARGUMENT:
            raise RenderLimit(TOO_LARGE, f"the argument {value} is too large for a prompt.")


def _counted(iterable: Any) -> Iterator[Any]:
    """Each loop's iterable: every item counts against the render's iteration budget."""
    budget = _current()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > budget.limits.max_iterations:
                raise RenderLimit(
                    LOOP_LIMIT,
                    f"loops ran more than {budget.limits.max_iterations} iterations.",
                )
            if budget.iterations % 256 == 0:
                budget.tick()
        yield item


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # Jinja passes the context or environment first to filters marked so; then the value.
    passed = getattr(function, "jinja_pass_arg", None)
    skip = 2 if passed is not None else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args[skip:], kwargs)
        return _check_size(function(*args, **kwargs))

    if passed is not None:
        bounded.jinja_pass_arg = passed  # type: ignore[attr-defined]
    bounded.__name__ = name
    return bounded


class Sandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox that refuses memory bombs and counts calls against the budget."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_sb_loop"] = _counted

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError("exponent too large for a prompt template")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_POWER_BITS
            ):
                raise SecurityError("power too large for a prompt template")
            return operator.pow(left, right)
        if operator_name == "%":
            if isinstance(left, str):
                _check_arguments(right if isinstance(right, tuple) else (right,), {})
            return _check_size(operator.mod(left, right))
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(count, int)
                and len(seq) * count > MAX_BINOP_SIZE
            ):
                raise SecurityError("repetition too large for a prompt template")
        return operator.mul(left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _current()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        if isinstance(__obj, LoopContext) and args:
            args = (_counted(args[0]), *args[1:])
        # A method of a string (`'x'.center(n)`, `'{:>9}'.format`) pads as the filters do.
        if isinstance(getattr(__obj, "__self__", None), str):
            _check_arguments(args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > budget.limits.max_depth:
                raise RenderLimit(
                    RECURSION_LIMIT,
                    f"calls nest deeper than {budget.limits.max_depth} levels.",
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _check_size(result)


def _finalize(value: Any) -> Any:
    # An optional variable left out renders as nothing, not as "None".
    return "" if value is None else value


ENV = Sandbox(
    undefined=StrictUndefined,
    autoescape=False,
    finalize=_finalize,
    keep_trailing_newline=True,
    auto_reload=False,
    cache_size=0,  # compiled templates are cached in core.sizedcache, bounded in size
)
GLOBAL_NAMES = frozenset(ENV.globals)


# ---------------------------------------------------------------------------------------------
# Analysis


@dataclass(frozen=True)
class Plan:
    """What rendering a template needs: inline when `plain`, else a worker."""

    plain: bool
    # Variable references in a plain template: its output is at most about this many times
    # the size of its variables.
    references: int


def _plain(node: nodes.Node) -> bool:
    if not isinstance(node, PLAIN_NODES):
        return False
    if isinstance(node, nodes.Filter):
        if node.name in LINEAR_WITH_LITERAL_ARGS:
            arguments = [*node.args, *(k.value for k in node.kwargs)]
            if not all(isinstance(a, nodes.Const) for a in arguments):
                return False
        elif node.name not in LINEAR_FILTERS:
            return False
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            return False
    return all(_plain(child) for child in node.iter_child_nodes())


def plan(ast: nodes.Template) -> Plan:
    plain = _plain(ast)
    references = sum(1 for name in ast.find_all(nodes.Name) if name.ctx == "load")
    return Plan(plain=plain, references=references)


def _count_loops(ast: nodes.Template) -> nodes.Template:
    """Wrap every `for` loop's iterable so that its items count against the budget."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "_sb_loop", [], [], None, None, lineno=loop.lineno)
    return ast


def compile_template(source: str, *, guarded: bool) -> Any:
    """A compiled template; `guarded` ones count their loop iterations."""
    if not guarded:
        return ENV.from_string(source)
    ast = ENV.parse(source)
    return ENV.from_string(_count_loops(ast))


def render_bounded(template: Any, values: dict[str, Any], limits: Limits) -> str:
    """Render under `limits`, stopping as soon as the output passes `limits.max_chars`.

    Raises RenderLimit, or whatever the template itself raises.
    """
    token = _budget.set(_Budget(limits=limits, deadline=time.monotonic() + limits.seconds))
    try:
        pieces: list[str] = []
        size = 0
        for piece in template.generate(values):
            size += len(piece)
            if size > limits.max_chars:
                raise _too_large(limits)
            pieces.append(piece)
        return "".join(pieces)
    except RecursionError:
        raise RenderLimit(RECURSION_LIMIT, "calls nest deeper than Python allows.") from None
    except MemoryError:
        raise RenderLimit(
            TOO_LARGE, f"output would pass {limits.max_chars} characters.", exhausted=True
        ) from None
    finally:
        _budget.reset(token)


# Why a template failed, as plain data (it crosses the worker's pipe): `kind` is one of
# syntax, security, undefined, limit, failed.
Failure = dict[str, Any]


def failure_of(exc: Exception) -> Failure | None:
    """The failure a template caused, or None when `exc` is not the template's doing."""
    if isinstance(exc, RenderLimit):
        return {"kind": "limit", "code": exc.code, "message": exc.message}
    if isinstance(exc, TemplateSyntaxError):
        return {"kind": "syntax", "message": exc.message or "syntax error", "line": exc.lineno}
    if isinstance(exc, SecurityError):
        return {"kind": "security", "message": str(exc)}
    if isinstance(exc, UndefinedError):
        return {"kind": "undefined", "message": str(exc)}
    if isinstance(exc, TemplateError | ArithmeticError | TypeError | ValueError | LookupError):
        return {"kind": "failed", "message": str(exc)}
    return None
