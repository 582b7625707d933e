"""What the simulated model answers, what it bills and how long it takes, whichever API asked."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace

from simulator import judge, quality
from simulator.profiles import latency_profile, reasoning_tokens, writes_cache
from simulator.schema import Schema, instance_from_schema
from simulator.text import CHARS_PER_TOKEN, count_tokens, prose, seed_for

# `json_object` output has no schema; this one gives it a plausible shape.
JSON_OBJECT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["answer", "confidence"],
}
# Role markers and separators that the real chat format adds around each message.
MESSAGE_FRAMING_TOKENS = 4
# Prompt caching starts at 1024 input tokens and hits in steps of 128.
_CACHE_MINIMUM, _CACHE_STEP = 1024, 128
_CHUNK = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    parameters: Schema


@dataclass(frozen=True, slots=True)
class Conversation:
    """A create request reduced to what decides the answer."""

    model: str
    texts: tuple[str, ...]
    framing_tokens: int
    tools: tuple[FunctionTool, ...] = ()
    tools_allowed: bool = True
    forced_tool: str | None = None
    has_tool_result: bool = False
    output_schema: Schema | None = None
    reasoning_effort: str | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    model: str
    text: str  # the answer, or the function call's JSON arguments
    tool_name: str | None
    truncated: bool  # stopped by the output-token cap
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int  # visible + reasoning: reasoning bills as output
    reasoning_tokens: int
    first_token_delay: float  # seconds, reasoning included
    token_delay: float  # seconds per output token

    def chunks(self) -> list[str]:
        """The text as streamed: about one word per delta, whitespace kept."""
        return _CHUNK.findall(self.text)

    def chunk_delay(self, chunk: str) -> float:
        return self.token_delay * len(chunk) / CHARS_PER_TOKEN

    @property
    def total_delay(self) -> float:
        return self.first_token_delay + self.token_delay * (
            self.output_tokens - self.reasoning_tokens
        )


def complete(
    conversation: Conversation, latency_scale: float, *, answer_seconds: float | None = None
) -> Completion:
    """`answer_seconds`, when given, replaces `latency_scale`: the model's delays are scaled so
    that the whole answer takes that long, whatever its length (a fixed upstream time for
    benchmarks; a stream keeps its shape)."""
    if answer_seconds is not None:
        paced = complete(conversation, 1.0)
        factor = answer_seconds / paced.total_delay
        return replace(
            paced,
            first_token_delay=paced.first_token_delay * factor,
            token_delay=paced.token_delay * factor,
        )
    seed = seed_for(conversation.model, *conversation.texts)
    input_tokens = conversation.framing_tokens + sum(map(count_tokens, conversation.texts))
    thinking = reasoning_tokens(conversation.model, conversation.reasoning_effort, seed)
    visible_cap = None
    if conversation.max_output_tokens is not None:
        # The cap covers reasoning too, so a budget reserved at max_output_tokens always holds.
        thinking = min(thinking, conversation.max_output_tokens // 2)
        visible_cap = conversation.max_output_tokens - thinking
    tool = _tool_to_call(conversation)
    text = _answer(conversation, tool, seed, input_tokens)
    truncated = visible_cap is not None and count_tokens(text) > visible_cap
    if truncated:
        text = text[: visible_cap * CHARS_PER_TOKEN]
    cached = _cached_tokens(input_tokens)
    profile = latency_profile(conversation.model)
    seconds_per_token = latency_scale / profile.tokens_per_second
    return Completion(
        model=conversation.model,
        text=text,
        tool_name=tool.name if tool else None,
        truncated=truncated,
        input_tokens=input_tokens,
        cached_tokens=cached,
        cache_write_tokens=_cache_write_tokens(conversation.model, input_tokens, cached),
        output_tokens=count_tokens(text) + thinking,
        reasoning_tokens=thinking,
        first_token_delay=latency_scale * profile.first_token_ms / 1000
        + thinking * seconds_per_token,
        token_delay=seconds_per_token,
    )


def _tool_to_call(conversation: Conversation) -> FunctionTool | None:
    """A tool call until the conversation holds a tool result, so that agent loops end."""
    if conversation.has_tool_result or not conversation.tools_allowed or not conversation.tools:
        return None
    named = (tool for tool in conversation.tools if tool.name == conversation.forced_tool)
    return next(named, conversation.tools[0])


def _answer(
    conversation: Conversation, tool: FunctionTool | None, seed: int, input_tokens: int
) -> str:
    # Default separators keep spaces inside the JSON, so that it streams in several deltas.
    if tool:
        return json.dumps(instance_from_schema(tool.parameters, seed))
    if conversation.output_schema is not None:
        schema, model, texts = conversation.output_schema, conversation.model, conversation.texts
        verdict = judge.answer(schema, model, texts)
        return verdict or json.dumps(quality.structured_answer(schema, model, texts))
    # Longer prompts get longer answers, as summaries of long documents do.
    word_count = 12 + seed % 40 + min(input_tokens // 10, 150)
    return prose(random.Random(seed), word_count)


def _cached_tokens(input_tokens: int) -> int:
    """Half of a long prompt, in cache steps, as if its first half were a shared prefix."""
    if input_tokens < _CACHE_MINIMUM:
        return 0
    return input_tokens // 2 // _CACHE_STEP * _CACHE_STEP


def _cache_write_tokens(model: str, input_tokens: int, cached: int) -> int:
    if not writes_cache(model) or input_tokens < _CACHE_MINIMUM:
        return 0
    return (input_tokens - cached) // _CACHE_STEP * _CACHE_STEP
