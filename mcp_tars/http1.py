"""A small HTTP/1.1 client on asyncio streams, for the gateway's pass-through.

Why not the SDK's HTTP stack (``httpx2``) here: relaying one request through
it costs about 2.5 ms of CPU on our two-core machines (its layers, anyio
cancel scopes, h11), five times the whole rest of the gateway's work, and the
gateway's budget is 1 ms. A pass-through needs little of it: send the client's
bytes, read a status line and headers, relay a body (``content-length``,
chunked, or until close) as it arrives. Everything else stays on ``httpx2``:
``Upstream.open_passthrough`` uses this client only for plain ``http`` or
``https`` without a proxy in the environment (``HTTPS_PROXY`` and friends are
honoured by ``httpx2``, not here).

Connections are kept alive and reused per (scheme, host, port). A request on
a reused connection that the server had already closed (nothing came back)
is sent once more on a new connection, as browsers and httpx do: the server
never read it.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

READ_SIZE = 65536
MAX_HEAD_BYTES = 256 * 1024
MAX_IDLE_PER_ORIGIN = 32


class HTTPError(Exception):
    """The server could not be reached, or broke the HTTP framing."""


class TimeoutError_(HTTPError):
    """No answer (or no next piece of it) within the timeout."""


class Headers:
    """Response headers: ``raw`` as received (lower-cased names), ``get`` by name."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        self.raw = raw
        self._by_name = dict(raw)  # decoded only when asked for: a relay reads a few of them

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._by_name.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, name: str) -> bool:
        return name.lower().encode("latin-1") in self._by_name


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class Response:
    """A response whose body is still to read (``aiter_raw`` or ``aread``); ``aclose`` when done."""

    def __init__(self, pool: "Pool", origin: tuple, connection: _Connection, status: int, headers: Headers,
                 body_kind: str, length: int, read_timeout: float):
        self._pool, self._origin, self._connection = pool, origin, connection
        self.status_code = status
        self.headers = headers
        self._kind = body_kind  # "length" | "chunked" | "close" | "none"
        self._remaining = length
        self._timeout = read_timeout
        self._done = body_kind == "none" or (body_kind == "length" and length == 0)
        self._closed = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked framing removed): one chunk per piece the server sent."""
        reader = self._connection.reader
        try:
            while not self._done:
                async with asyncio.timeout(self._timeout):
                    if self._kind == "length":
                        data = await reader.read(min(READ_SIZE, self._remaining))
                        if not data:
                            raise HTTPError("the server closed the connection before the end of the body")
                        self._remaining -= len(data)
                        self._done = self._remaining == 0
                    elif self._kind == "chunked":
                        data = await self._next_chunk(reader)
                    else:  # until the server closes
                        data = await reader.read(READ_SIZE)
                        if not data:
                            self._done = True
                            return
                if data:
                    yield data
        except TimeoutError:
            raise TimeoutError_("the server sent nothing more within the timeout") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            raise HTTPError(f"the connection broke while reading the body: {e!r}") from e

    async def _next_chunk(self, reader: asyncio.StreamReader) -> bytes:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            self._done = True
            return b""
        data = await reader.readexactly(size + 2)
        return data[:-2]

    async def aread(self) -> bytes:
        if self._kind == "length" and not self._done:  # the usual answer: one read, one timeout
            try:
                async with asyncio.timeout(self._timeout):
                    data = await self._connection.reader.readexactly(self._remaining)
            except TimeoutError:
                raise TimeoutError_("the server sent nothing more within the timeout") from None
            except asyncio.IncompleteReadError:
                raise HTTPError("the server closed the connection before the end of the body") from None
            except OSError as e:
                raise HTTPError(f"the connection broke while reading the body: {e!r}") from e
            self._remaining, self._done = 0, True
            return data
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reusable = self._done and self._kind != "close" and (self.headers.get("connection") or "").lower() != "close"
        if reusable:
            self._pool._release(self._origin, self._connection)
        else:
            self._connection.close()


class Pool:
    """Keep-alive connections per origin; one request at a time on each."""

    def __init__(self, *, connect_timeout: float, read_timeout: float):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, *, headers: list[tuple[bytes, bytes]],
                      content: bytes | None) -> Response:
        origin, target, host = _split_url(url)
        body = content or b""
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", host, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if body or method in ("POST", "PUT", "PATCH"):
            head += [b"content-length: ", str(len(body)).encode(), b"\r\n"]
        head.append(b"\r\n")
        message = b"".join(head) + body
        for attempt in (0, 1):
            connection, reused = await self._connection(origin)
            try:
                try:
                    connection.writer.write(message)
                    await connection.writer.drain()  # returns at once unless a large body fills the buffer
                except (ConnectionResetError, BrokenPipeError) as e:
                    raise _StaleConnection() from e
                return await self._response(origin, connection, method)
            except _StaleConnection:
                connection.close()
                if not reused or attempt:
                    raise HTTPError("the server closed the connection without answering") from None
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

    async def _connection(self, origin: tuple) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection, True
            connection.close()
        scheme, host, port = origin
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None, limit=MAX_HEAD_BYTES)
        except TimeoutError:
            raise TimeoutError_(f"could not connect to {host}:{port} within {self.connect_timeout:g} s") from None
        except OSError as e:
            raise HTTPError(f"could not connect to {host}:{port}: {e}") from e
        return _Connection(reader, writer), False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                import certifi  # the CA bundle httpx2 (and so the SDK) trusts

                self._ssl = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                self._ssl = ssl.create_default_context()
        return self._ssl

    async def _response(self, origin: tuple, connection: _Connection, method: str) -> Response:
        reader = connection.reader
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError as e:
                        if not e.partial:
                            raise _StaleConnection() from None
                        raise HTTPError("the server closed the connection in the middle of its headers") from None
                    status, raw = _parse_head(head)
                    if status >= 200 or status == 101:
                        break  # 1xx (100 Continue, 103 Early Hints) are skipped
        except TimeoutError:
            raise TimeoutError_(f"no answer within {self.read_timeout:g} s") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            raise _StaleConnection() from e
        except (OSError, asyncio.LimitOverrunError) as e:
            raise HTTPError(f"the connection broke while reading the answer: {e!r}") from e
        headers = Headers(raw)
        encoding = (headers.get("transfer-encoding") or "").lower()
        if method == "HEAD" or status in (204, 304):
            kind, length = "none", 0
        elif "chunked" in encoding:
            kind, length = "chunked", 0
        elif headers.get("content-length") is not None:
            kind, length = "length", int(headers.get("content-length"))
        else:
            kind, length = "close", 0
        return Response(self, origin, connection, status, headers, kind, length, self.read_timeout)

    def _release(self, origin: tuple, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
        else:
            idle.append(connection)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


@functools.lru_cache(maxsize=1024)  # a relay sends to a few URLs, over and over
def _split_url(url: str) -> tuple[tuple, str, bytes]:
    """(origin, request target, Host header) of an http or https URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(f"cannot send to {url!r}: only http and https URLs")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target, parts.netloc.rsplit("@", 1)[-1].encode("latin-1")


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed: nothing of an answer came back."""


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise HTTPError(f"not an HTTP/1.1 answer: {lines[0][:60]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HTTPError(f"bad status line {lines[0][:60]!r}") from None
    raw = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            raw.append((name.strip().lower(), value.strip()))
    return status, raw
