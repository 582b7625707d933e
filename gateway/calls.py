"""A gateway request, normalized: what to send upstream and what the router needs to know.

Every door builds its `GatewayCall` here: `GatewayCall.for_chat` for `/v1/chat/completions`,
`GatewayCall.for_responses` for `/v1/responses`, the playground, jobs and shadow re-runs, and
`GatewayCall.for_prompt_version` for `/api/v1/prompts/{slug}/run` and the classifier. The
pipeline does the rest the same way for all of them.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import BadRequest
from core.limits import metadata_bounded
from core.logging import get_request_id
from gateway.upstream import CHAT, RESPONSES
from prompts.caching import version_cache_key
from prompts.rendering import arender_version
from routing.router import (
    AUTO,
    TIER_PREFIX,
    RequestFeatures,
    estimate_tokens,
    tool_capabilities,
    tool_kind,
)
from routing.snapshot import ModelInfo, TierInfo

# Role markers and separators around each message, as a bound (the real overhead is ~4).
FRAMING_TOKENS_PER_MESSAGE = 8


def new_request_id() -> str:
    """The id core's request middleware gave this request (the caller's X-Request-ID, or a
    fresh one), so the response header, the access log and the usage records agree."""
    return get_request_id() or "req_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass(slots=True)
class InputStats:
    """What a walk over the request's messages learns, in one pass."""

    chars: int = 0
    bytes_bound: int = 0
    messages: int = 0
    images: bool = False
    user_text: list[str] = field(default_factory=list)

    def add_text(self, text: str, *, user: bool) -> None:
        self.chars += len(text)
        # A token is at least one UTF-8 byte, and a character at most four.
        self.bytes_bound += len(text) if text.isascii() else len(text.encode())
        if user:
            self.user_text.append(text)

    @property
    def token_bound(self) -> int:
        return self.bytes_bound + FRAMING_TOKENS_PER_MESSAGE * max(self.messages, 1)


@dataclass(slots=True)
class GatewayCall:
    api: str  # CHAT | RESPONSES
    team_id: int
    api_key_id: int | None
    body: dict[str, Any]  # the upstream body, without model/stream
    stream: bool
    features: RequestFeatures
    input_token_bound: int
    max_output_tokens: int | None
    service_tier: str = "default"
    response_schema: dict | None = None
    classifier_text: str = ""
    prompt_version: Any = None  # prompts.models.PromptVersion
    purpose: str = "gateway"
    client_wants_usage: bool = True
    store_content: bool = False
    no_content: bool = False  # the team keeps no content, nor text derived from it
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def _build(
        cls,
        *,
        api: str,
        stats: InputStats,
        tools: list[Any],
        requested: str,
        pinned_by: str = "request",
        prompt: Any = None,
        metadata: dict[str, Any] | None,
        reasoning: bool,
        response_schema: dict | None,
        request_id: str | None,
        **fields: Any,
    ) -> GatewayCall:
        """The one constructor behind the `for_*` factories: features and bounds from the
        input's walk, `fields` as they are."""
        return cls(
            api=api,
            features=build_features(
                team_id=fields["team_id"],
                stats=stats,
                tools=tools,
                json_schema=response_schema is not None,
                reasoning=reasoning,
                metadata=metadata,
                requested=requested,
                prompt=prompt,
                pinned_by=pinned_by,
            ),
            input_token_bound=stats.token_bound + tools_bound(tools),
            response_schema=response_schema,
            classifier_text="\n".join(stats.user_text),
            request_id=request_id or new_request_id(),
            **fields,
        )

    @classmethod
    def for_chat(
        cls,
        *,
        body: dict[str, Any],
        messages: list[Any],
        team_id: int,
        api_key_id: int | None,
        store_content: bool,
        requested: str,
        stream: bool,
        tools: list[Any],
        metadata: dict[str, Any] | None,
        reasoning: bool,
        response_schema: dict | None,
        max_output_tokens: int | None,
        service_tier: str,
        client_wants_usage: bool,
        team_no_content: bool = False,
        request_id: str | None = None,
    ) -> GatewayCall:
        """A Chat Completions request; `body` is the upstream body without model/stream."""
        return cls._build(
            api=CHAT,
            stats=chat_input_stats(messages),
            tools=tools,
            requested=requested,
            metadata=metadata,
            reasoning=reasoning,
            response_schema=response_schema,
            request_id=request_id,
            team_id=team_id,
            api_key_id=api_key_id,
            body=body,
            stream=stream,
            max_output_tokens=max_output_tokens,
            service_tier=service_tier,
            client_wants_usage=client_wants_usage,
            store_content=store_content,
            no_content=team_no_content,
        )

    @classmethod
    def for_responses(
        cls,
        *,
        body: dict[str, Any],
        team_id: int,
        api_key_id: int | None,
        team_store_content: bool,
        team_no_content: bool = False,
        version: Any = None,
        requested: str = AUTO,
        pinned_by: str = "",
        stream: bool = False,
        metadata: dict[str, Any] | None = None,
        purpose: str = "gateway",
        max_output_tokens: int | None = None,
        response_schema: dict | None = None,
        service_tier: str = "default",
        request_id: str | None = None,
    ) -> GatewayCall:
        """A Responses API request, with or without a prompt version behind it.

        `body` is the upstream body without model/stream. The target is the request's, else
        the version's tier or model (`version_target`); `pinned_by` names a pin other than
        the request's or the version's (the classifier's). The output bound defaults to the
        body's `max_output_tokens`, the schema to the version's."""
        target, who = version_target(version, requested)
        effort = (body.get("reasoning") or {}).get("effort") or ""
        prompt = version.prompt if version is not None else None
        if response_schema is None and version is not None:
            response_schema = version.response_schema or None
        return cls._build(
            api=RESPONSES,
            stats=responses_input_stats(body.get("input"), body.get("instructions") or ""),
            tools=body.get("tools") or [],
            requested=target,
            pinned_by=pinned_by or who,
            prompt=prompt,
            metadata=metadata,
            reasoning=effort not in ("", "none", "minimal"),
            response_schema=response_schema,
            request_id=request_id,
            team_id=team_id,
            api_key_id=api_key_id,
            body=body,
            stream=stream,
            max_output_tokens=max_output_tokens or body.get("max_output_tokens"),
            service_tier=service_tier,
            prompt_version=version,
            purpose=purpose,
            store_content=not team_no_content
            and bool(team_store_content or (prompt is not None and prompt.store_content)),
            no_content=team_no_content,
        )

    @classmethod
    async def for_prompt_version(
        cls, *, version: Any, variables: dict[str, Any], **kwargs: Any
    ) -> GatewayCall:
        """A stored prompt version rendered with `variables` (InvalidVariables when they do
        not fit; rendering never blocks the event loop), its model settings included; the
        keywords are `for_responses`'."""
        body = prompt_body(version, await arender_version(version, variables))
        return cls.for_responses(body=body, version=version, **kwargs)

    def upstream_body(self, model: ModelInfo, tier: TierInfo | None) -> dict[str, Any]:
        body = dict(self.body)
        body["model"] = model.name
        if self.stream:
            body["stream"] = True
            if self.api == CHAT:
                body["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        effort = tier.reasoning_effort if tier else ""
        if effort and "reasoning" in model.capabilities:
            if self.api == CHAT:
                body.setdefault("reasoning_effort", effort)
            elif not (body.get("reasoning") or {}).get("effort"):
                body["reasoning"] = {**(body.get("reasoning") or {}), "effort": effort}
        return body

    def max_output_for(self, model: ModelInfo) -> int:
        if self.max_output_tokens:
            return min(self.max_output_tokens, model.max_output_tokens)
        return model.max_output_tokens


def version_target(version: Any, requested: str = AUTO) -> tuple[str, str]:
    """The router's `requested` target and who pinned it: the request's own choice when it is
    not `auto`, else the prompt version's tier, else its model, else `auto`."""
    if requested != AUTO:
        return requested, "request"
    if version is not None and (version.tier or version.model_name):
        target = f"{TIER_PREFIX}{version.tier}" if version.tier else version.model_name
        return target, "prompt version"
    return AUTO, "request"


def prompt_body(version: Any, rendered: Any) -> dict[str, Any]:
    """A Responses API body for a rendered prompt version (its model settings included)."""
    body: dict[str, Any] = {"input": rendered.input_messages}
    # The same key for every call of this version: requests sharing its static prefix land
    # on the same cache (a client's own `prompt_cache_key` replaces it, see _with_prompt).
    body["prompt_cache_key"] = version_cache_key(version)
    if rendered.instructions:
        body["instructions"] = rendered.instructions
    if version.temperature is not None:
        body["temperature"] = float(version.temperature)
    if version.max_output_tokens:
        body["max_output_tokens"] = version.max_output_tokens
    if version.reasoning_effort:
        body["reasoning"] = {"effort": version.reasoning_effort}
    if version.tools:
        body["tools"] = version.tools
    schema = version.response_schema
    if schema:
        body["text"] = {
            "format": {
                "type": "json_schema",
                "name": version.prompt.slug.replace("-", "_")[:64],
                "schema": schema,
                "strict": schema.get("additionalProperties") is False,
            }
        }
    return body


# --------------------------------------------------------------------------- feature extraction


def _walk_content(content: Any, stats: InputStats, *, user: bool) -> None:
    if isinstance(content, str):
        stats.add_text(content, user=user)
        return
    if not isinstance(content, list):
        return
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type", "")
        if kind in ("text", "input_text", "output_text"):
            stats.add_text(str(part.get("text", "")), user=user)
        elif kind in ("image_url", "input_image"):
            stats.images = True
            stats.bytes_bound += 1500  # a high-detail tile budget; images bill per tile
        elif kind == "input_file":
            stats.add_text(str(part.get("file_data", "")), user=False)


def chat_input_stats(messages: list[Any]) -> InputStats:
    stats = InputStats()
    for message in messages:
        if not isinstance(message, dict):
            continue
        stats.messages += 1
        role = message.get("role")
        _walk_content(message.get("content"), stats, user=role == "user")
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                stats.add_text(str((call.get("function") or {}).get("arguments", "")), user=False)
    return stats


def responses_input_stats(input_value: Any, instructions: str = "") -> InputStats:
    stats = InputStats()
    if instructions:
        stats.messages += 1
        stats.add_text(instructions, user=False)
    if isinstance(input_value, str):
        stats.messages += 1
        stats.add_text(input_value, user=True)
        return stats
    for item in input_value or ():
        if not isinstance(item, dict):
            continue
        stats.messages += 1
        if "content" in item:
            _walk_content(item.get("content"), stats, user=item.get("role", "user") == "user")
        for key in ("output", "arguments"):
            if isinstance(item.get(key), str):
                stats.add_text(item[key], user=False)
    return stats


def tools_bound(tools: list[Any]) -> int:
    # Tool definitions are sent to the model as text; their JSON length bounds their tokens.
    if not tools:
        return 0
    return len(json.dumps(tools))


def metadata_check(value: Any) -> dict[str, Any]:
    """A request's `metadata`: an object of scalars (rules compare them with eq, in, gt, lt,
    regex; `task_tag` picks rules). Raises BadRequest (400) for anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("`metadata` must be an object.", param="metadata")
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            raise BadRequest(
                f"`metadata.{key}` must be a string, number, boolean or null.",
                param=f"metadata.{key}",
            )
    return metadata_bounded(value)


def build_features(
    *,
    team_id: int,
    stats: InputStats,
    tools: list[Any],
    json_schema: bool,
    reasoning: bool,
    metadata: dict[str, Any] | None,
    requested: str,
    prompt: Any = None,
    pinned_by: str = "request",
) -> RequestFeatures:
    kinds = frozenset(tool_kind(tool) for tool in tools or ())
    required = tool_capabilities(kinds)
    if json_schema:
        required.add("json_schema")
    if stats.images:
        required.add("vision")
    if reasoning:
        required.add("reasoning")
    metadata = metadata if isinstance(metadata, dict) else {}
    task_tag = prompt.task_tag if prompt is not None else metadata.get("task_tag")
    return RequestFeatures(
        team_id=team_id,
        prompt_id=prompt.id if prompt is not None else None,
        task_tag=task_tag,
        estimated_input_tokens=estimate_tokens_from_chars(stats.chars),
        tool_types=kinds,
        required_capabilities=frozenset(required),
        metadata=metadata,
        requested=requested,
        pinned_by=pinned_by,
    )


def estimate_tokens_from_chars(chars: int) -> int:
    return (chars + 3) // 4


__all__ = [
    "CHAT",
    "RESPONSES",
    "GatewayCall",
    "InputStats",
    "Usage",
    "build_features",
    "chat_input_stats",
    "estimate_tokens",
    "responses_input_stats",
]
