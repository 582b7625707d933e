"""Regular expressions written by users and admins (batch checks, routing rule conditions),
run with a time bound.

A pattern such as `(a|aa)+$` backtracks exponentially on a long enough text; Python's `re`
cannot be interrupted and would hold a worker (or the gateway's event loop) for minutes. The
`regex` engine takes a `timeout=` and stops instead."""

from __future__ import annotations

from functools import lru_cache

import regex

PATTERN_MAX_LENGTH = 500
SEARCH_TIMEOUT_SECONDS = 0.1


# rule conditions run on the gateway's request path: compile each pattern once
_compiled = lru_cache(maxsize=512)(regex.compile)


class PatternError(ValueError):
    """The pattern is invalid, or its search ran out of time."""


def pattern_problem(pattern: object) -> str:
    """'' if `pattern` is a usable regular expression, else why not."""
    if not isinstance(pattern, str):
        return "it must be text"
    if len(pattern) > PATTERN_MAX_LENGTH:
        return f"at most {PATTERN_MAX_LENGTH} characters"
    try:
        regex.compile(pattern)
    except regex.error as exc:
        return str(exc)
    return ""


def pattern_search(pattern: str, text: str, *, timeout: float = SEARCH_TIMEOUT_SECONDS) -> bool:
    """Whether `pattern` matches somewhere in `text`; PatternError when the pattern is invalid
    or the search takes longer than `timeout` seconds."""
    try:
        return _compiled(pattern).search(text, timeout=timeout) is not None
    except regex.error as exc:
        raise PatternError(f"invalid regular expression: {exc}") from exc
    except TimeoutError as exc:
        raise PatternError(
            f"the regular expression took longer than {timeout:g} s on this text and was "
            "stopped (it backtracks too much; simplify nested repetitions like (a+)+)"
        ) from exc
