"""ASGI responses that pace server-sent events, cut connections and notice disconnects."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

# (seconds to wait before sending it, the event's wire text)
Event = tuple[float, str]
# How many deltas a cut stream sends before the connection drops.
_DELTAS_BEFORE_CUT = 3
# Shorter delays add up until they reach this many seconds: see EventStreamResponse.
_SHORTEST_TIMER = 0.02
# One encoder for every event: json.dumps would build a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(payload: Any) -> str:
    return _ENCODER.encode(payload)


@dataclass(frozen=True, slots=True)
class EventStream:
    head: list[Event]  # before the first delta
    deltas: list[Event]
    tail: list[Event]  # the done events and the completion event or [DONE]

    def events(self, *, cut: bool) -> list[Event]:
        if not cut:
            return [*self.head, *self.deltas, *self.tail]
        kept = max(1, min(_DELTAS_BEFORE_CUT, len(self.deltas) // 2))
        return [*self.head, *self.deltas[:kept]]


class EventStreamResponse(Response):
    """Sends events as their delays come due. Delays shorter than 20 ms add up until they are
    worth a timer, and the events due meanwhile go out in one write: per-delta timers and
    writes would cost more CPU than they add realism, and a simulator at latency scale 0 sends
    a whole stream in one write. Clients still parse it event by event.

    `cut` ends the ASGI call without the final body message: uvicorn then closes the
    connection mid-body (it logs "ASGI callable returned without completing response.")."""

    media_type = "text/event-stream"

    def __init__(self, stream: EventStream, *, cut: bool = False) -> None:
        self.status_code = 200
        self.background = None
        self.events = stream.events(cut=cut)
        self.cut = cut
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        # Watched only once there is something to wait for: undelayed streams skip the task.
        disconnect: asyncio.Future[None] | None = None
        try:
            pending: list[str] = []
            owed = 0.0
            for delay, text in self.events:
                owed += delay
                if owed >= _SHORTEST_TIMER:
                    if pending:
                        await _send_body(send, pending, more_body=True)
                        pending = []
                    disconnect = disconnect or asyncio.ensure_future(wait_for_disconnect(receive))
                    await asyncio.sleep(owed)
                    owed = 0.0
                    if disconnect.done():
                        return  # nobody is listening: stop generating, as OpenAI does
                pending.append(text)
            if owed:
                await asyncio.sleep(owed)  # so that the stream lasts as long as it should
            await _send_body(send, pending, more_body=self.cut)
        finally:
            if disconnect:
                disconnect.cancel()


class TruncatedJSONResponse(JSONResponse):
    """Declares the full Content-Length, sends half of the body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_body(send: Send, texts: list[str], *, more_body: bool) -> None:
    body = "".join(texts).encode()
    await send({"type": "http.response.body", "body": body, "more_body": more_body})
