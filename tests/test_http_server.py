"""The gateway's small HTTP/1.1 server (``mcp_tars.http_server``) over real
loopback sockets, with a tiny ASGI app: keep-alive, chunked and fixed-length
responses, request bodies, ``Expect: 100-continue``, HEAD, a client that
leaves, malformed requests."""

from __future__ import annotations

import asyncio

import pytest

from mcp_tars import http_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in (b"event: a\n\n", b"event: b\n\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if scope["path"] == "/wait":  # until the client goes away
        app.disconnected = (await receive())["type"]
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    reply = b"%s %s %s q=%s" % (scope["method"].encode(), scope["path"].encode(), body, scope["query_string"])
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})


async def exchange(port: int, data: bytes, until: bytes, reader_writer=None) -> tuple[bytes, tuple]:
    reader, writer = reader_writer or await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    while until not in got:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        if not chunk:
            break
        got += chunk
    return got, (reader, writer)


async def test_keep_alive_bodies_chunked_streams_head_and_errors():
    server = http_server.Server(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        one, conn = await exchange(port, b"POST /echo?x=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello", b"q=x=1")
        assert one.startswith(b"HTTP/1.1 201 Created\r\n") and one.endswith(b"POST /echo hello q=x=1")
        # the same connection takes the next request (keep-alive); a chunked request body is read whole
        two, conn = await exchange(port, b"POST /echo HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
                                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"q=", conn)
        assert two.endswith(b"POST /echo abcde q=")
        stream, conn = await exchange(port, b"GET /stream HTTP/1.1\r\nhost: h\r\n\r\n", b"0\r\n\r\n", conn)
        assert b"transfer-encoding: chunked\r\n" in stream
        assert stream.endswith(b"a\r\nevent: a\n\n\r\na\r\nevent: b\n\n\r\n0\r\n\r\n")
        head, conn = await exchange(port, b"HEAD /echo HTTP/1.1\r\nhost: h\r\n\r\n", b"\r\n\r\n", conn)
        assert head.startswith(b"HTTP/1.1 201") and head.endswith(b"\r\n\r\n")  # headers, no body
        conn[1].close()

        cont, conn = await exchange(port, b"POST /echo HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\n"
                                          b"content-length: 2\r\n\r\n", b"100 Continue\r\n\r\n")
        done, conn = await exchange(port, b"ok", b"q=", conn)
        assert done.endswith(b"POST /echo ok q=")
        conn[1].close()

        close, _ = await exchange(port, b"GET /echo HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n", b"\x00never")
        assert b"connection: close\r\n" in close and close.endswith(b"GET /echo  q=")  # and then the server closed

        failed, _ = await exchange(port, b"GET /boom HTTP/1.1\r\nhost: h\r\n\r\n", b"\x00never")
        assert failed.startswith(b"HTTP/1.1 500 ")
        bad, _ = await exchange(port, b"NOT HTTP\r\n\r\n", b"\x00never")
        assert bad.startswith(b"HTTP/1.1 400 Bad Request")
    finally:
        await server.stop()


async def test_the_app_sees_a_client_that_goes_away():
    app.disconnected = None
    server = http_server.Server(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /wait HTTP/1.1\r\nhost: h\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        for _ in range(1000):  # bounded: the test does not depend on how fast
            if app.disconnected:
                break
            await asyncio.sleep(0.01)
        assert app.disconnected == "http.disconnect"
    finally:
        await server.stop()
