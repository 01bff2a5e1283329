"""A small threaded HTTP/1.1 server: keep-alive, chunked SSE, abrupt resets.

The standard library's ThreadingHTTPServer is enough here and gives exact
control over the socket, which the fault kinds need ("reset" must send a TCP
RST, "timeout" must stall one connection without blocking others). Each
response is written with a single ``send`` and TCP_NODELAY is set, so small
responses do not wait on Nagle/delayed-ACK (a classic 40 ms stall).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .errors import error_body

_EXTRA_REASONS = {529: "Overloaded"}
_NO_LINGER = struct.pack("ii", 1, 0)  # close() then sends RST instead of FIN


@dataclass
class IncomingRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # how the client reached us, e.g. "http://127.0.0.1:8123"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: Generator[bytes, None, None] | None = None  # a server-sent event stream, one chunk per event
    reset: bool = False  # drop the connection without answering
    cut_body: bool = False  # send the head and half the body, then drop the connection


App = Callable[[IncomingRequest], Reply]


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_accepted = 0
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.connections_accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on an idle keep-alive connection."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request on stderr would drown test output

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as error:
            self.close_connection = True
            body = error_body("invalid_request_error", str(error), request_id=None)
            self._write(Reply(400, json.dumps(body).encode()))
            return
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        host = headers.get("host") or "%s:%d" % self.server.server_address[:2]
        request = IncomingRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=body,
            base_url=f"http://{host}",
        )
        reply = self.server.app(request)
        if reply.reset:
            self._reset_connection()
        elif reply.cut_body and reply.events is None:
            head = self._head(reply, {"content-length": str(len(reply.body))})
            self.wfile.write(head + reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            self._reset_connection()
        elif reply.events is not None:
            self._write_stream(reply)
        else:
            self._write(reply)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return self._read_chunked_body()
        length = self.headers.get("content-length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise ValueError("invalid content-length") from None
        return self.rfile.read(size)

    def _read_chunked_body(self) -> bytes:
        parts = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ValueError("invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _head(self, reply: Reply, extra: dict[str, str]) -> bytes:
        reason = _EXTRA_REASONS.get(reply.status) or HTTPStatus(reply.status).phrase
        lines = [f"HTTP/1.1 {reply.status} {reason}", f"content-type: {reply.content_type}"]
        lines += [f"{name}: {value}" for name, value in {**reply.headers, **extra}.items()]
        if self.close_connection:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, reply: Reply) -> None:
        head = self._head(reply, {"content-length": str(len(reply.body))})
        self.wfile.write(head + reply.body)

    def _write_stream(self, reply: Reply) -> None:
        events = reply.events
        try:
            self.wfile.write(self._head(reply, {"transfer-encoding": "chunked", "cache-control": "no-cache"}))
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away mid-stream
        finally:
            events.close()

    def _reset_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
            self.connection.close()
        except OSError:
            pass
