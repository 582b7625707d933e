"""The server's upstream answers read with aiohttp (`gateway.upstream.Reply`): SSE lines come
out whole whatever the chunking, however long, with multi-byte characters split across
chunks; an error status becomes the SDK's exception with the upstream's message."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from aiohttp import web

from gateway.adapters.openai_sdk import sdk_status_error
from gateway.upstream import Reply

LONG = "x" * 200_000  # above aiohttp's 64 KiB line limit for `readline`
CHUNKS = [
    b"data: h\xc3",
    b"\xa9llo\r\n\r\nevent: e\n",
    b"data: " + LONG.encode() + b"\n",
    b"\ndata: tail",
]


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for chunk in CHUNKS:
        await response.write(chunk)
        await asyncio.sleep(0.02)  # each chunk is read on its own
    await response.write_eof()
    return response


@pytest.fixture
async def upstream():
    app = web.Application()
    app.router.add_get("/stream", _chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_lines_come_out_whole_across_chunks(upstream):
    session, url = upstream
    reply = Reply(await session.get(f"{url}/stream"))
    lines = [line async for line in reply.aiter_lines()]
    await reply.aclose()
    assert lines == ["data: héllo", "", "event: e", "data: " + LONG, "", "data: tail"]


async def test_read_body_and_error_status_as_sdk_exception(upstream):
    session, url = upstream
    reply = Reply(await session.get(f"{url}/missing"))
    await reply.aread()
    assert reply.status_code == 404
    error = sdk_status_error(openai.AsyncOpenAI(api_key="k"), reply.as_httpx(f"{url}/missing"))
    assert isinstance(error, openai.NotFoundError)
    assert error.status_code == 404
