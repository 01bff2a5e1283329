"""The gateway's small HTTP/1.1 client (mcp_tars/http1.py) against a real
loopback server that answers with each body framing, closes idle
connections, and breaks off mid-body."""

from __future__ import annotations

import asyncio

import pytest

from mcp_tars import http1
from mcp_tars.settings import ApiSettings, RoutingSettings
from mcp_tars.upstream import Upstream

pytestmark = pytest.mark.anyio

ANSWERS = {
    b"/length": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-thing: one\r\n\r\nhello",
    b"/chunked": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                  b"6\r\nevent:\r\n7;ext=1\r\n data!\n\r\n0\r\nx-trailer: t\r\n\r\n"),
    b"/close": b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 7\r\n\r\nbusy until close",
    b"/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
    b"/cut": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part",
}


async def _serve(close_after_each: bool):
    """A loopback server; ``close_after_each``: it closes every connection after one answer,
    without saying so (what an idle timeout looks like to a keep-alive client)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                seen.append(head + body)
                path = head.split(b" ")[1].split(b"?")[0]
                writer.write(ANSWERS[path])
                await writer.drain()
                if close_after_each or path in (b"/close", b"/cut"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def test_every_body_framing_is_read_and_headers_kept():
    server, port, seen = await _serve(close_after_each=False)
    pool = http1.Pool(connect_timeout=5, read_timeout=5)
    base = f"http://127.0.0.1:{port}"
    try:
        r = await pool.request("POST", base + "/length?a=1", headers=[(b"x-api-key", b"k")], content=b'{"x":1}')
        assert (r.status_code, await r.aread(), r.headers.get("X-Thing")) == (200, b"hello", "one")
        await r.aclose()
        r = await pool.request("GET", base + "/chunked", headers=[], content=None)
        assert [c async for c in r.aiter_raw()] == [b"event:", b" data!\n"]  # one piece per chunk, framing removed
        await r.aclose()
        r = await pool.request("GET", base + "/continue", headers=[], content=None)
        assert (r.status_code, await r.aread()) == (201, b"ok")
        await r.aclose()
        r = await pool.request("GET", base + "/close", headers=[], content=None)
        assert (r.status_code, await r.aread(), r.headers.get("retry-after")) == (503, b"busy until close", "7")
        await r.aclose()
        r = await pool.request("GET", base + "/cut", headers=[], content=None)
        with pytest.raises(http1.HTTPError, match="before the end of the body"):
            await r.aread()
        await r.aclose()
    finally:
        await pool.aclose()
        server.close()
    assert seen[0].startswith(b"POST /length?a=1 HTTP/1.1\r\nhost: 127.0.0.1:") and seen[0].endswith(b'\r\n\r\n{"x":1}')
    assert b"x-api-key: k\r\n" in seen[0] and b"content-length: 7\r\n" in seen[0]
    assert len(seen) == 5


async def test_a_closed_keep_alive_connection_is_replaced_without_losing_the_request():
    server, port, seen = await _serve(close_after_each=True)
    pool = http1.Pool(connect_timeout=5, read_timeout=5)
    try:
        for _ in range(3):
            r = await pool.request("POST", f"http://127.0.0.1:{port}/length", headers=[], content=b"{}")
            assert await r.aread() == b"hello"
            await r.aclose()  # kept alive: the server has closed it by the next request
            await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
        server.close()
    assert len(seen) == 3  # each request reached the server exactly once


async def test_unreachable_and_proxied_apis():
    pool = http1.Pool(connect_timeout=5, read_timeout=5)
    with pytest.raises(http1.HTTPError, match="could not connect"):
        await pool.request("GET", "http://127.0.0.1:9/v1/models", headers=[], content=None)
    upstream = Upstream(ApiSettings(), RoutingSettings(), api_key="k")
    upstream._proxies = {"https": "http://proxy.example:3128", "no": "localhost"}
    assert upstream._direct("http://127.0.0.1:8000")  # no http proxy named
    assert not upstream._direct("https://api.anthropic.com")  # through the proxy: httpx2 honours it
