"""A small HTTP/1.1 server on asyncio and httptools, for ``mcp-tars gateway``.

Why not uvicorn here: measured side by side (``bench.gateway``), uvicorn in
front of a bare pass-through cost about 0.6 ms per call more than a bare TCP
relay, more than half the gateway's 1 ms budget (its layers: ASGI message
checks, proxy-headers middleware, flow-control objects, access-log plumbing).
The gateway needs little of it: keep-alive HTTP/1.1 requests, responses with
a ``content-length`` or chunked (an event stream, written as each piece
arrives), a disconnect the app can wait for, and back-pressure both ways.

It runs one ASGI app (``http`` scopes only; start-up and shutdown are the
caller's), the same ``gateway.Gateway`` that ``serve --transport http``
mounts beside MCP under uvicorn. Loopback is the caller's business (the CLI
refuses other addresses; the app checks ``Host``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools

log = logging.getLogger("mcp_tars.http_server")

READ_HIGH_WATER = 1024 * 1024  # request bytes buffered ahead of the app before reading pauses
SHUTDOWN_GRACE_SECONDS = 30.0  # requests in flight at shutdown get this long, then are cancelled
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

App = Callable[[dict, Callable, Callable], Awaitable[None]]


class _Request:
    """One request on a connection: its scope and its body as it arrives."""

    __slots__ = ("scope", "chunks", "buffered", "complete", "arrived", "keep_alive")

    def __init__(self, scope: dict, keep_alive: bool):
        self.scope = scope
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        self.arrived = asyncio.Event()
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One client connection: parses requests and runs them through the app one at a time, in order."""

    def __init__(self, server: "Server"):
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._parsing: _Request | None = None
        self._waiting: collections.deque[_Request] = collections.deque()
        self._runner: asyncio.Task | None = None
        self._lost = self._loop.create_future()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self._server.connections.discard(self)
        if not self._lost.done():
            self._lost.set_result(None)
        self._writable.set()  # a writer waiting on a gone client goes on (its writes are dropped)
        for request in (self._parsing, *self._waiting):
            if request is not None:
                request.arrived.set()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(b"501 Not Implemented", b"upgrades are not supported")
        except httptools.HttpParserError as e:
            self._refuse(b"400 Bad Request", f"malformed HTTP request: {e}".encode())

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- httptools callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        url = httptools.parse_url(self._url)
        path = url.path.decode("latin-1")
        if "%" in path:
            from urllib.parse import unquote

            path = unquote(path)
        sock = self._transport.get_extra_info("sockname")
        peer = self._transport.get_extra_info("peername")
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": parser.get_http_version(), "method": parser.get_method().decode("ascii"),
            "scheme": "http", "path": path, "raw_path": url.path, "query_string": url.query or b"",
            "root_path": "", "headers": self._headers,
            "server": sock[:2] if isinstance(sock, tuple) else None,
            "client": peer[:2] if isinstance(peer, tuple) else None,
        }
        request = _Request(scope, parser.should_keep_alive())
        self._parsing = request
        if any(k == b"expect" and v.lower() == b"100-continue" for k, v in self._headers):
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._waiting.append(request)
        if self._runner is None:
            self._runner = self._loop.create_task(self._run())

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        request.chunks.append(body)
        request.buffered += len(body)
        request.arrived.set()
        if request.buffered > READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        self._parsing.complete = True
        self._parsing.arrived.set()
        self._parsing = None

    # -- running requests -------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._waiting and not self._lost.done():
                request = self._waiting[0]
                keep = await self._cycle(request)
                self._waiting.popleft()
                if not keep:
                    self._transport.close()
                    return
        finally:
            self._runner = None
            self._server.idle(self)

    async def _cycle(self, request: _Request) -> bool:
        """Run one request through the app; True when the connection can take the next one."""
        state = {"started": False, "done": False, "chunked": False, "body_sent": False}
        head_only = request.scope["method"] == "HEAD"
        transport = self._transport

        async def receive() -> dict:
            while not request.chunks and not request.complete and not self._lost.done():
                request.arrived.clear()
                await request.arrived.wait()
            if request.chunks:
                body = request.chunks.popleft() if len(request.chunks) == 1 else b"".join(request.chunks)
                request.chunks.clear()
                request.buffered = 0
                if self._reading_paused:
                    self._reading_paused = False
                    transport.resume_reading()
                state["body_sent"] = request.complete
                return {"type": "http.request", "body": body, "more_body": not request.complete}
            if request.complete and not state["body_sent"] and not self._lost.done():
                state["body_sent"] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.shield(self._lost)  # the body is read: what comes next is the client leaving
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if state["started"]:
                    raise RuntimeError("http.response.start sent twice")
                state["started"] = True
                status = message["status"]
                head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
                has_length = False
                for name, value in message.get("headers", ()):
                    has_length = has_length or name.lower() == b"content-length"
                    head += [name, b": ", value, b"\r\n"]
                if not has_length and not head_only and status >= 200 and status not in (204, 304):
                    state["chunked"] = True
                    head.append(b"transfer-encoding: chunked\r\n")
                if not request.keep_alive:
                    head.append(b"connection: close\r\n")
                head.append(b"\r\n")
                state["head"] = b"".join(head)
                if state["chunked"]:  # a stream: its headers go now, not with its first event
                    self._write(state.pop("head"))
            elif kind == "http.response.body":
                if not state["started"] or state["done"]:
                    raise RuntimeError("http.response.body outside a response")
                body = message.get("body", b"")
                more = message.get("more_body", False)
                out = state.pop("head", b"")
                if head_only:
                    pass
                elif state["chunked"]:
                    if body:
                        out += b"%x\r\n%b\r\n" % (len(body), body)
                    if not more:
                        out += b"0\r\n\r\n"
                else:
                    out += body
                if out:
                    self._write(out)
                if not more:
                    state["done"] = True
                if not self._writable.is_set():
                    await self._writable.wait()
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r}")

        try:
            await self._server.app(request.scope, receive, send)
        except asyncio.CancelledError:
            if not state["done"]:
                self._transport.close()
            raise
        except Exception:  # noqa: BLE001 - one broken request must not take the server down
            log.exception("http server: the app failed on %s %s", request.scope["method"], request.scope["path"])
            if not state["started"]:
                self._write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n"
                            b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error")
            return False
        if not state["done"]:
            log.error("http server: the app returned without a whole response to %s %s",
                      request.scope["method"], request.scope["path"])
            return False
        # a body the app did not read (an early error reply) leaves the connection mid-request: close it
        return request.keep_alive and request.complete and not self._lost.done()

    def _write(self, data: bytes) -> None:
        if not self._lost.done():
            self._transport.write(data)

    def _refuse(self, status_line: bytes, message: bytes) -> None:
        if self._runner is None and not self._lost.done():
            self._transport.write(b"HTTP/1.1 " + status_line + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                                  + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message)
        self._transport.close()

    @property
    def busy(self) -> bool:
        return self._runner is not None

    def close(self) -> None:
        self._transport.close()


class Server:
    """The listening socket and its connections. ``await start()``, then
    ``await stop()`` (requests in flight finish first, within a grace period)."""

    def __init__(self, app: App, host: str, port: int):
        self.app = app
        self.host, self.port = host, port
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._stopping = False

    async def start(self) -> int:
        """Listen; returns the port (the one chosen when ``port`` is 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    def idle(self, connection: _Connection) -> None:
        if self._stopping:
            connection.close()

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_SECONDS
        while any(c.busy for c in self.connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            if connection._runner is not None:
                connection._runner.cancel()
            connection.close()
        await asyncio.sleep(0)  # let cancelled requests run their cleanup (a stream's ledger row)


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` on the fastest event loop installed (uvloop when
    present), with SIGINT and SIGTERM setting ``stop``."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None

    async def with_signals() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C still raises KeyboardInterrupt
                pass
        await main(stop)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(with_signals())
