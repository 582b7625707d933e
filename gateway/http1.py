"""The upstream transport: a lean HTTP/1.1 client over asyncio, with httptools' C parser.

The gateway sends one kind of request, a POST with a JSON body, and reads the answer whole or
chunk by chunk. That is all this does, with kept-alive connections per origin, TLS verified
by `ssl`'s default context, a connect timeout and a read timeout, and two errors a caller
tells apart: `TimeoutError` and `ConnectionFailed`. With aiohttp's client in its place, a
gateway request cost 15 % more instructions (bench/README.md, "A lean upstream client").
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

# An idle connection is closed after this long: under the 5 s keep-alive that common servers
# (uvicorn, gunicorn, nginx's upstreams) default to, so a kept connection is rarely one the
# server is closing at that moment.
KEEPALIVE_SECONDS = 4.0
MAX_IDLE = 512  # per origin; after a burst, more are closed as they come back
DNS_TTL_SECONDS = 10.0
# Past this many unread bytes the connection stops reading until the reader catches up.
READ_BUFFER_LIMIT = 256 * 1024

# Framed by the client, never taken from the caller's headers.
_OWN_HEADERS = {"host", "content-length", "content-type", "accept-encoding", "connection"}


class ConnectionFailed(ConnectionError):
    """The connection could not be made, broke, or carried something that is not HTTP/1.1."""


@functools.cache
def default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _header_block(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"header {name!r} has a character HTTP does not allow there")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class Origin:
    """The kept-alive connections to one base URL, for the event loop that created it."""

    def __init__(
        self, base_url: str, headers: dict[str, str], tls: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"a base URL is a scheme, host, port and path only: {base_url!r}")
        self.host = parts.hostname
        self.tls = (tls or default_tls()) if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.tls else 80)
        self.path_prefix = parts.path.rstrip("/")
        authority = self.host if parts.port is None else f"{self.host}:{parts.port}"
        if ":" in self.host:  # an IPv6 literal
            authority = f"[{self.host}]" + authority[len(self.host) :]
        own = {"Host": authority, "Accept-Encoding": "identity", "Content-Type": "application/json"}
        self._head = _header_block(
            own | {k: v for k, v in headers.items() if k.lower() not in _OWN_HEADERS}
        )
        self._loop = asyncio.get_running_loop()
        self._idle: deque[_Connection] = deque()
        self._addresses: list[tuple[str, int]] = []
        self._addresses_until = 0.0
        self._closed = False

    async def post(
        self, path: str, body: bytes, *, connect_timeout: float, read_timeout: float
    ) -> Response:
        """POST `body` (JSON) to the base URL's path + `path`; returns once the status and
        headers are in. Read the body with `read()` or `chunks()`, and `release()` a response
        whose body is not read to the end."""
        connection = self._idle_connection() or await self._connect(within=connect_timeout)
        response = Response(connection, read_timeout)
        connection.response = response
        connection.transport.write(
            b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (self.path_prefix.encode(), path.encode(), self._head, len(body), body)
        )
        try:
            await response.wait_for_headers()
        except BaseException:
            response.release()
            raise
        return response

    def _idle_connection(self) -> _Connection | None:
        now = self._loop.time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely to be stale
            if connection.usable and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, within: float) -> _Connection:
        try:
            async with asyncio.timeout(within):
                error: OSError | None = None
                for host, port in await self._resolve():
                    try:
                        _, connection = await self._loop.create_connection(
                            lambda: _Connection(self),
                            host,
                            port,
                            ssl=self.tls,
                            server_hostname=self.host if self.tls else None,
                        )
                        return connection
                    except OSError as exc:
                        error = exc
                raise error or OSError("no address")
        except TimeoutError:
            raise TimeoutError(
                f"connecting to {self.host}:{self.port} took over {within:g} s"
            ) from None
        except OSError as exc:
            self._addresses_until = 0.0  # look the host up again next time
            raise ConnectionFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def _resolve(self) -> list[tuple[str, int]]:
        """The host's addresses, looked up again after `DNS_TTL_SECONDS`: a burst of new
        connections makes one lookup, not one each."""
        if self._loop.time() >= self._addresses_until:
            infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addresses = [(info[4][0], info[4][1]) for info in infos]
            self._addresses_until = self._loop.time() + DNS_TTL_SECONDS
        return self._addresses

    def give_back(self, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        now = connection.idle_since = self._loop.time()
        idle = self._idle
        idle.append(connection)
        # The oldest go first: past the keep-alive, or past the most kept (after a burst).
        while len(idle) > MAX_IDLE or now - idle[0].idle_since >= KEEPALIVE_SECONDS:
            idle.popleft().close()

    def close(self) -> None:
        """Close the idle connections now and the busy ones when they are released."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; feeds what arrives to the parser of the current answer."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.idle_since = 0.0
        self.interim = False  # parsing a 1xx answer: the real one follows

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes no request asked for: the connection is unusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # Also a protocol switch nobody asked for, and bytes after the end of the answer
            # (the callbacks find no response).
            response.fail(ConnectionFailed(f"the upstream's answer is not HTTP/1.1: {exc!r}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.response is not None:
            self.response.connection_lost(exc)

    @property
    def usable(self) -> bool:
        """Neither end has closed it (a transport is closing from either end's close on,
        TLS or not, asyncio's loop or uvloop's)."""
        return not self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    # httptools calls these as it parses.
    def on_message_begin(self) -> None:
        if self.response is None:  # an answer nobody asked for
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.raw_headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer follows
            self.interim = True
            self.response.raw_headers.clear()  # type: ignore[union-attr]
            return
        self.response.headers_complete(status)  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self.response.body_received(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.response.complete(self.parser.should_keep_alive())  # type: ignore[union-attr]
        self.response = None  # whatever comes next was not asked for


class Response:
    """One answer: `status_code` and `raw_headers` once `post` returns, then the body."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_decoder",
        "_error",
        "_keep_alive",
        "_paused",
        "_read_timeout",
        "_released",
        "_waiter",
        "done",
        "raw_headers",
        "status_code",
    )

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self.status_code = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._decoder: zlib._Decompress | None = None
        self.done = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # ---- fed by the connection
    def headers_complete(self, status: int) -> None:
        self.status_code = status
        self._decoder = _decoder_for(self.raw_headers)
        self._wake()

    def body_received(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_BUFFER_LIMIT and not self._paused:
            self._paused = True
            self._connection.transport.pause_reading()
        self._wake()

    def complete(self, keep_alive: bool) -> None:
        self.done, self._keep_alive = True, keep_alive
        self._resume()  # all of it is in: the connection may carry the next answer
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done:
            return
        if self.status_code and exc is None and not self._framed():
            self.complete(keep_alive=False)  # a body that runs until the connection closes
            return
        detail = f": {exc}" if exc else ""
        where = "mid-answer" if self.status_code else "before answering"
        self.fail(ConnectionFailed(f"the upstream closed the connection {where}{detail}"))

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _framed(self) -> bool:
        return any(
            name.lower() in (b"content-length", b"transfer-encoding")
            for name, _ in self.raw_headers
        )

    # ---- read by the caller
    async def wait_for_headers(self) -> None:
        while not self.status_code:
            await self._wait()

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        body = b"".join([chunk async for chunk in self.chunks()])
        self.release()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; `release()` afterwards, read to the end or not."""
        while True:
            if self._chunks or self.done:
                last = self.done
                for chunk in self._take():
                    if chunk:
                        yield chunk
                if last:
                    return
            else:
                await self._wait()

    def _take(self) -> list[bytes]:
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        self._resume()
        if self._decoder is not None:
            try:
                chunks = [self._decoder.decompress(chunk) for chunk in chunks]
                if self.done:
                    chunks.append(self._decoder.flush())
            except zlib.error as exc:
                raise ConnectionFailed(f"the upstream's compressed body is broken: {exc}") from exc
        return chunks

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._connection.usable:
                self._connection.transport.resume_reading()

    async def _wait(self) -> None:
        """Until the connection brings something (headers, a chunk, the end) or fails; a
        timeout when nothing comes within the read timeout."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, self._timed_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self.fail(TimeoutError(f"no answer from the upstream in {self._read_timeout:g} s"))

    def release(self) -> None:
        """Hand the connection back if the answer was read to its end, or else close it."""
        if self._released:
            return
        self._released = True
        connection = self._connection
        connection.response = None
        if self.done and self._keep_alive and connection.usable:
            connection.origin.give_back(connection)  # its parser carries on with the next answer
        else:
            connection.close()


def _decoder_for(headers: list[tuple[bytes, bytes]]) -> zlib._Decompress | None:
    """A decompressor if the upstream compressed the body though asked not to."""
    for name, value in headers:
        if name.lower() == b"content-encoding":
            encoding = value.strip().lower()
            if encoding in (b"gzip", b"x-gzip"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if encoding == b"deflate":
                return zlib.decompressobj()
    return None
