"""Prompt caching: the `prompt_cache_key` each prompt version sends upstream, and how much
of a prompt's beginning is static, so cacheable (the editor's estimate and warning)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from prompts.sandbox import ENV
from prompts.tokens import count_tokens

CACHE_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def version_cache_key(version: Any) -> str:
    """The prompt's own `cache_key` when set, else one derived from team, prompt and version
    number: stable across calls and processes, different for each version, and a hash, so
    the provider sees neither the slug nor any of the template."""
    prompt = version.prompt
    if prompt.cache_key:
        return str(prompt.cache_key)
    seed = f"switchboard:{prompt.team_id}:{prompt.slug}:{version.number}"
    return "sb-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- cacheable prefix

# OpenAI caches a prompt's identical beginning once the prompt reaches 1,024 tokens, in
# steps of 128 tokens beyond that.
CACHE_MINIMUM_TOKENS = 1024
CACHE_STEP_TOKENS = 128
# Static text after the first variable below this many tokens is not worth a warning.
WARN_MIN_STATIC_TOKENS = 16

_OPENERS = {"variable_begin": "variable_end", "block_begin": "block_end"}


@dataclass(frozen=True)
class Part:
    static: bool
    text: str  # the static text, or the tag's source ("{{ name }}")


@dataclass(frozen=True)
class PrefixReport:
    """The templates as sent (instructions, few-shot examples, user message), read for
    caching: the static text before the first variable or tag, and the static text after it."""

    prefix_tokens: int
    cacheable_tokens: int
    first_dynamic: str  # "" when the templates hold no variable or tag
    first_dynamic_in: str
    static_after_tokens: int

    @property
    def warning(self) -> str:
        if not self.first_dynamic or self.static_after_tokens < WARN_MIN_STATIC_TOKENS:
            return ""
        if self.static_after_tokens <= self.prefix_tokens:
            return ""
        return (
            f"{self.first_dynamic} ({self.first_dynamic_in}) comes before "
            f"{self.static_after_tokens:,} tokens of static text. Providers cache only the "
            "identical beginning of a prompt: put the static text first and the variables "
            "after it, so those tokens can be cached."
        )


def template_parts(source: str) -> list[Part]:
    """A template as static text and tags, in order (comments dropped: they render
    nothing). Raises jinja2.TemplateSyntaxError when it does not lex."""
    parts: list[Part] = []
    tag: list[str] = []
    closing = ""
    for _line, kind, value in ENV.lex(source):  # the renderer's own lexer settings
        if closing:
            tag.append(value)
            if kind == closing:
                parts.append(Part(static=False, text=" ".join("".join(tag).split())))
                tag, closing = [], ""
        elif kind in _OPENERS:
            tag, closing = [value], _OPENERS[kind]
        elif kind == "data":
            parts.append(Part(static=True, text=value))
    if closing:
        raise jinja2.TemplateSyntaxError(f"unclosed tag {tag[0]!r}", lineno=0)
    return parts


def cacheable_tokens(prefix_tokens: int) -> int:
    """What the provider would cache of a prefix that long (0 below the minimum)."""
    if prefix_tokens < CACHE_MINIMUM_TOKENS:
        return 0
    steps = (prefix_tokens - CACHE_MINIMUM_TOKENS) // CACHE_STEP_TOKENS
    return CACHE_MINIMUM_TOKENS + steps * CACHE_STEP_TOKENS


def prefix_report(sources: list[tuple[str, str]]) -> PrefixReport | None:
    """`sources` as (where, template) in the order they are sent; None when one does not
    lex (the preview lists the syntax error)."""
    prefix: list[str] = []
    after: list[str] = []
    first, first_in = "", ""
    for where, source in sources:
        try:
            parts = template_parts(source)
        except jinja2.TemplateSyntaxError:
            return None
        for part in parts:
            if not part.static and not first:
                first, first_in = part.text, where
            elif part.static:
                (after if first else prefix).append(part.text)
    prefix_tokens = count_tokens("".join(prefix))
    return PrefixReport(
        prefix_tokens=prefix_tokens,
        cacheable_tokens=cacheable_tokens(prefix_tokens),
        first_dynamic=first,
        first_dynamic_in=first_in,
        static_after_tokens=count_tokens("".join(after)),
    )
