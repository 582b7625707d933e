"""The upstream transport (`gateway.http1`) against scripted HTTP/1.1 servers on real sockets:
kept-alive connections and when they are not reused, chunked and compressed bodies, SSE lines
whole across chunks, timeouts, cuts, refused connections, TLS verification, a slow reader, and
an error status read as the SDK's exception (`gateway.upstream.Reply`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import http1
from gateway.adapters.openai_sdk import sdk_status_error
from gateway.http1 import ConnectionFailed, Origin
from gateway.upstream import Reply

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def head(status: str = "200 OK", **headers: str | int) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def echo(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(head(content_length=len(body)) + body)


class Scripted:
    """An HTTP/1.1 server that reads each request and answers it with `answer(body, writer)`;
    it counts connections and keeps each request's line and body."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request_head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in request_head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append((request_head.split(b"\r\n")[0], body))
                await self.answer(body, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[Scripted, Origin]]]]:
    servers: list[Scripted] = []
    origins: list[Origin] = []

    async def start(answer: Answer = echo, **origin: object) -> tuple[Scripted, Origin]:
        server = Scripted(answer)
        servers.append(server)
        tls = origin.pop("server_tls", None)
        url = await server.start(tls)  # type: ignore[arg-type]
        origins.append(Origin(url, {"Authorization": "Bearer k"}, **origin))  # type: ignore[arg-type]
        return server, origins[-1]

    yield start
    for origin in origins:
        origin.close()
    for server in servers:
        assert server.server is not None
        server.server.close()


async def post(origin: Origin, body: bytes = b"{}", read_timeout: float = 5.0) -> http1.Response:
    return await origin.post(
        "/chat/completions", body, connect_timeout=2.0, read_timeout=read_timeout
    )


# ---- connections


async def test_one_kept_alive_connection_serves_request_after_request(serve):
    server, origin = await serve()
    bodies = [await (await post(origin, b'{"n": %d}' % n)).read() for n in range(5)]
    assert bodies == [b'{"n": %d}' % n for n in range(5)]
    assert server.connections == 1
    assert {line for line, _ in server.requests} == {b"POST /v1/chat/completions HTTP/1.1"}


async def test_a_connection_the_server_closed_while_idle_is_not_reused(serve):
    async def answer_then_close(body: bytes, writer: asyncio.StreamWriter) -> None:
        await echo(body, writer)
        await writer.drain()
        writer.close()  # the server's idle timeout, reached at once

    server, origin = await serve(answer_then_close)
    assert await (await post(origin)).read() == b"{}"
    await asyncio.sleep(0.05)
    assert await (await post(origin, b"[]")).read() == b"[]"
    assert server.connections == 2


async def test_an_answer_with_connection_close_is_not_pooled(serve):
    async def close_after(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(connection="close", content_length=len(body)) + body)

    server, origin = await serve(close_after)
    for _ in range(2):
        assert await (await post(origin)).read() == b"{}"
    assert server.connections == 2


async def test_a_connection_idle_past_the_keepalive_is_not_reused(serve, monkeypatch):
    monkeypatch.setattr(http1, "KEEPALIVE_SECONDS", 0.05)
    server, origin = await serve()
    await (await post(origin)).read()
    await asyncio.sleep(0.1)
    await (await post(origin)).read()
    assert server.connections == 2


async def test_a_stream_released_mid_way_closes_its_connection(serve):
    async def endless(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(transfer_encoding="chunked") + b"5\r\nfirst\r\n")

    server, origin = await serve(endless)
    response = await post(origin)
    async for chunk in response.chunks():
        assert chunk == b"first"
        break
    response.release()
    server.answer = echo
    assert await (await post(origin)).read() == b"{}"
    assert server.connections == 2  # the half-read answer's connection was not reused


async def test_bytes_after_the_answer_make_its_connection_unusable(serve):
    async def twice(body: bytes, writer: asyncio.StreamWriter) -> None:
        answer = head(content_length=len(body)) + body
        writer.write(answer + answer)  # a second answer nobody asked for

    server, origin = await serve(twice)
    assert await (await post(origin, b"[1]")).read() == b"[1]"
    server.answer = echo
    assert await (await post(origin, b"[2]")).read() == b"[2]"
    assert server.connections == 2


async def test_the_start_of_an_answer_nobody_asked_for_makes_its_connection_unusable(serve):
    async def and_a_half(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_length=len(body)) + body + b"HTTP/1.1 200 OK\r\n")

    server, origin = await serve(and_a_half)
    assert await (await post(origin, b"[1]")).read() == b"[1]"
    await asyncio.sleep(0.05)
    server.answer = echo
    assert await (await post(origin, b"[2]")).read() == b"[2]"
    assert server.connections == 2


async def test_an_answer_that_ends_as_reading_pauses_leaves_its_connection_usable(serve):
    half = b"x" * (http1.READ_BUFFER_LIMIT * 3 // 4)

    async def in_two_halves(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_length=2 * len(half)) + half)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(half)  # the limit is passed by the answer's last bytes

    server, origin = await serve(in_two_halves)
    response = await post(origin)
    await asyncio.sleep(0.3)  # all of it arrives while nobody reads
    assert response.done
    response.release()  # a stream whose client went away after the upstream had finished
    server.answer = echo
    assert await (await post(origin, read_timeout=1.0)).read() == b"{}"
    assert server.connections == 1


async def test_a_request_cancelled_before_its_answer_closes_its_connection(serve):
    async def never(body: bytes, writer: asyncio.StreamWriter) -> None:
        pass

    server, origin = await serve(never)
    waiting = asyncio.create_task(post(origin))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    server.answer = echo
    assert await (await post(origin)).read() == b"{}"
    assert server.connections == 2  # its late answer can never be read as the next one's


# ---- bodies


async def test_a_large_body_is_read_whole(serve):
    big = bytes(range(256)) * (16 * http1.READ_BUFFER_LIMIT // 256)

    async def large(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_length=len(big)) + big)

    _, origin = await serve(large)
    assert await (await post(origin, read_timeout=1.0)).read() == big


async def test_interim_answers_are_skipped_for_the_real_one(serve):
    async def hints_first(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head("100 Continue") + head("103 Early Hints", link="</a>; rel=preload"))
        writer.write(head(content_length=len(body), x_real="yes") + body)

    _, origin = await serve(hints_first)
    response = await post(origin, b'{"ok": true}')
    assert response.status_code == 200
    assert response.raw_headers == [(b"content-length", b"12"), (b"x-real", b"yes")]
    assert await response.read() == b'{"ok": true}'


async def test_a_body_that_runs_until_the_connection_closes(serve):
    async def unframed(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head() + b"all of it")
        await writer.drain()
        writer.close()

    _, origin = await serve(unframed)
    assert await (await post(origin)).read() == b"all of it"


async def test_a_body_without_framing_cut_by_a_reset_is_a_failed_connection(serve):
    async def reset(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head() + b'{"partial')
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with no linger: a reset, not an orderly close

    _, origin = await serve(reset)
    response = await post(origin)
    with pytest.raises(ConnectionFailed, match="mid-answer"):
        await response.read()


async def test_a_compressed_body_is_decoded_though_not_asked_for(serve):
    packed = gzip.compress(b'{"ok": true}')

    async def gzipped(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_encoding="gzip", content_length=len(packed)) + packed)

    _, origin = await serve(gzipped)
    assert await (await post(origin)).read() == b'{"ok": true}'


async def test_a_broken_compressed_body_is_a_failed_connection(serve):
    async def broken(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_encoding="gzip", content_length=9) + b"not gzip!")

    _, origin = await serve(broken)
    with pytest.raises(ConnectionFailed, match="compressed body is broken"):
        await (await post(origin)).read()


LONG = "x" * 200_000
CHUNKS = [
    b"data: h\xc3",
    b"\xa9llo\r\n\r\nevent: e\n",
    b"data: " + LONG.encode() + b"\n",
    b"\ndata: tail",
]


async def sse(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(head(content_type="text/event-stream", transfer_encoding="chunked"))
    for chunk in CHUNKS:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        await asyncio.sleep(0.02)  # each chunk is read on its own
    writer.write(b"0\r\n\r\n")


async def test_lines_come_out_whole_across_chunks(serve):
    server, origin = await serve(sse)
    reply = Reply(await post(origin))
    lines = [line async for line in reply.aiter_lines()]
    await reply.aclose()
    assert lines == ["data: héllo", "", "event: e", "data: " + LONG, "", "data: tail"]
    assert await (await post(origin)).read()  # read to its end: the connection is reused
    assert server.connections == 1


async def test_a_slow_reader_stops_the_upstream_rather_than_buffering_everything(serve):
    size = 64 * 1024 * 1024
    sent = asyncio.Event()

    async def flood(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_length=size))
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        sent.set()

    _, origin = await serve(flood)
    response = await post(origin)
    await asyncio.sleep(0.5)
    assert not sent.is_set()  # the client stopped reading: the upstream is held up
    received = 0
    async for chunk in response.chunks():
        received += len(chunk)
    assert received == size
    assert sent.is_set()


async def test_a_compressed_error_status_reads_as_the_sdk_s_exception(serve):
    packed = gzip.compress(b'{"error": {"message": "slow down", "code": "rate_limit"}}')

    async def too_many(body: bytes, writer: asyncio.StreamWriter) -> None:
        answer = head("429 Too Many Requests", content_encoding="gzip", content_length=len(packed))
        writer.write(answer + packed)

    _, origin = await serve(too_many)
    reply = Reply(await post(origin))
    await reply.aread()
    raised = sdk_status_error(openai.AsyncOpenAI(api_key="k"), reply.as_httpx("http://up/v1"))
    assert isinstance(raised, openai.RateLimitError)
    assert "slow down" in raised.message


async def test_an_error_status_reads_as_the_sdk_s_exception(serve):
    error = b'{"error": {"message": "no such model", "code": "model_not_found"}}'

    async def not_found(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head("404 Not Found", content_length=len(error)) + error)

    _, origin = await serve(not_found)
    reply = Reply(await post(origin))
    await reply.aread()
    assert reply.status_code == 404
    raised = sdk_status_error(openai.AsyncOpenAI(api_key="k"), reply.as_httpx("http://up/v1"))
    assert isinstance(raised, openai.NotFoundError)
    assert raised.code == "model_not_found"
    assert "no such model" in raised.message


# ---- failures


async def test_no_answer_in_the_read_timeout_is_a_timeout(serve):
    async def silent(body: bytes, writer: asyncio.StreamWriter) -> None:
        pass

    server, origin = await serve(silent)
    with pytest.raises(TimeoutError):
        await post(origin, read_timeout=0.1)
    server.answer = echo
    assert await (await post(origin)).read() == b"{}"
    assert server.connections == 2


async def test_a_stream_that_goes_quiet_times_out_after_what_it_sent(serve):
    async def stalls(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(transfer_encoding="chunked") + b"5\r\nfirst\r\n")

    _, origin = await serve(stalls)
    response = await post(origin, read_timeout=0.2)
    received = []

    async def read_all() -> None:
        async for chunk in response.chunks():
            received.append(chunk)

    with pytest.raises(TimeoutError):
        await read_all()
    assert received == [b"first"]
    response.release()


async def test_a_cut_mid_body_is_a_failed_connection_not_a_short_answer(serve):
    async def cut(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(content_length=100) + b"ten bytes!")
        await writer.drain()
        writer.close()

    _, origin = await serve(cut)
    response = await post(origin)
    with pytest.raises(ConnectionFailed, match="mid-answer"):
        await response.read()


async def test_garbage_instead_of_http_is_a_failed_connection(serve):
    async def garbage(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    _, origin = await serve(garbage)
    with pytest.raises(ConnectionFailed, match=r"not HTTP/1\.1"):
        await post(origin)


async def test_a_refused_connection_is_a_failed_connection():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    origin = Origin(f"http://127.0.0.1:{port}/v1", {})
    with pytest.raises(ConnectionFailed, match=f"cannot connect to 127.0.0.1:{port}"):
        await post(origin)


async def test_a_protocol_switch_nobody_asked_for_is_a_failed_connection(serve):
    async def switch(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head("101 Switching Protocols", connection="upgrade", upgrade="h2c"))

    _, origin = await serve(switch)
    with pytest.raises(ConnectionFailed, match=r"not HTTP/1\.1"):
        await post(origin)


@pytest.mark.parametrize(
    "url", ["http://up.test/v1?api-version=1", "http://user:pw@up.test/v1", "ftp://up.test/v1"]
)
async def test_a_base_url_the_client_would_not_honour_is_refused(url):
    with pytest.raises(ValueError, match=r"up\.test"):
        Origin(url, {})


async def test_a_header_that_would_split_the_request_is_refused():
    with pytest.raises(ValueError, match="Authorization"):
        Origin("http://127.0.0.1:1/v1", {"Authorization": "Bearer k\r\nX-Injected: 1"})


# ---- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


async def test_tls_answers_when_the_certificate_is_trusted(serve, certificate):
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    server, origin = await serve(server_tls=server_tls(certificate), tls=trusting)
    for _ in range(2):
        assert await (await post(origin)).read() == b"{}"
    assert server.connections == 1


async def test_tls_refuses_a_certificate_nobody_vouches_for(serve, certificate):
    _, origin = await serve(server_tls=server_tls(certificate))  # the system's trust store
    with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await post(origin)
