"""Parsing an upstream server-sent-event stream into events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.upstream import UpstreamResponse


@dataclass(slots=True)
class SSEvent:
    event: str | None
    data: str


async def sse_events(response: UpstreamResponse) -> AsyncIterator[SSEvent]:
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SSEvent(event, "\n".join(data))
            event, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield SSEvent(event, "\n".join(data))
