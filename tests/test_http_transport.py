"""The HTTP transport, run as a real `mcp-tars serve --transport http` subprocess:
loopback by default, a bearer token off loopback, DNS-rebinding protection,
the request size limit, real MCP sessions, and one lifespan per process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import make_config, server_env
from mcp_tars.store import ledger, open_store

pytestmark = pytest.mark.anyio

TOKEN = "test-bearer-token-3b9f"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def http_server(env: dict, *args: str, port: int | None = None, log_path: Path | None = None):
    """The server in a subprocess; its stderr goes to ``log_path`` (a file, so a
    verbose log can never fill a pipe and stall the server)."""
    port = port or _free_port()
    log_path = log_path or Path(env["MCP_TARS_DB"]).parent / f"server-{port}.stderr"
    log_file = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mcp_tars", "serve", "--transport", "http", "--port", str(port), *args],
                            env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {log_path.read_text()}")
            assert time.monotonic() < deadline, "server did not listen within 30 s"
            time.sleep(0.05)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def _post(port: int, body: bytes | dict, headers: dict | None = None) -> httpx2.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(f"http://127.0.0.1:{port}/mcp", content=data, headers={**MCP_HEADERS, **(headers or {})}, timeout=30)


def _env(tmp_path: Path, sim, **config_sections) -> dict:
    env = server_env(tmp_path, sim.base_url, make_config(**config_sections))
    env.pop("MCP_TARS_TOKEN", None)
    return env


def test_binds_to_loopback_by_default(tmp_path, sim):
    with http_server(_env(tmp_path, sim)) as (proc, port):
        addrs = {c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert addrs and all(a.ip == "127.0.0.1" for a in addrs), addrs
        assert _post(port, INIT).status_code == 200  # no token needed on loopback


def test_says_where_it_listens_and_answers_health_checks(tmp_path, sim):
    """`serve --transport http` once printed nothing: no URL, no /health."""
    env = {**_env(tmp_path, sim), "MCP_TARS_TOKEN": TOKEN}
    log = tmp_path / "serve.stderr"
    with http_server(env, "--host", "0.0.0.0", log_path=log) as (_proc, port):
        health = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=30)  # no token needed, even off loopback
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert httpx2.post(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 405
        assert _post(port, INIT).status_code == 401  # everything else still needs the token
        deadline = time.monotonic() + 10
        while f"http://0.0.0.0:{port}/mcp" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"at http://0.0.0.0:{port}/mcp, health check at http://0.0.0.0:{port}/health" in log.read_text()


def test_refuses_a_public_bind_without_a_token(tmp_path, sim):
    env = _env(tmp_path, sim)
    out = subprocess.run([sys.executable, "-m", "mcp_tars", "serve", "--transport", "http", "--host", "0.0.0.0",
                          "--port", str(_free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "refusing to serve HTTP on 0.0.0.0" in out.stderr and "MCP_TARS_TOKEN" in out.stderr


def test_token_is_required_and_checked(tmp_path, sim):
    env = {**_env(tmp_path, sim), "MCP_TARS_TOKEN": TOKEN}
    with http_server(env, "--host", "0.0.0.0") as (_proc, port):
        assert _post(port, INIT).status_code == 401
        assert _post(port, INIT, {"authorization": "Bearer wrong"}).status_code == 401
        assert _post(port, INIT, {"authorization": TOKEN}).status_code == 401  # no scheme
        # bound to every address, a client on this machine still reaches it with the token
        assert _post(port, INIT, {"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_dns_rebinding_and_request_size_limits(tmp_path, sim):
    with http_server(_env(tmp_path, sim, server={"max_request_bytes": 64 * 1024})) as (_proc, port):
        assert _post(port, INIT).status_code == 200
        rebound = _post(port, INIT, {"host": "evil.example.com"})
        assert rebound.status_code in (403, 421), rebound.status_code
        origin = _post(port, INIT, {"origin": "http://evil.example.com"})
        assert origin.status_code == 403, origin.status_code
        big = json.dumps({**INIT, "padding": "x" * (200 * 1024)}).encode()
        assert _post(port, big).status_code == 413
        assert _post(port, INIT).status_code == 200  # still serving


async def test_real_mcp_sessions_share_one_lifespan(tmp_path, sim):
    import anyio

    env = {**_env(tmp_path, sim), "MCP_TARS_TOKEN": TOKEN}
    db = Path(env["MCP_TARS_DB"])
    with http_server(env) as (proc, port):
        url = f"http://127.0.0.1:{port}/mcp"

        def transport():
            client = httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"},
                                        timeout=httpx2.Timeout(30, read=120))
            return streamable_http_client(url, http_client=client)

        results = []
        open_db_files = []

        async def session(i: int, mode: str, entered: anyio.Event, release: anyio.Event):
            async with Client(transport(), mode=mode) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "optimized_complete" in tools
                r = await client.call_tool("optimized_complete", {"prompt": f"What is {i} + {i}?", "use_cache": False})
                assert not r.is_error, r.content
                results.append(r.structured_content)
                entered.set()
                await release.wait()  # keep every session open at once

        release = anyio.Event()
        events = [anyio.Event() for _ in range(3)]
        async with anyio.create_task_group() as tg:
            for i, (mode, ev) in enumerate(zip(["legacy", "auto", "legacy"], events)):
                tg.start_soon(session, i, mode, ev, release)
            with anyio.fail_after(60):
                for ev in events:
                    await ev.wait()
            open_db_files = [f.path for f in psutil.Process(proc.pid).open_files() if f.path == str(db)]
            release.set()

        # one Store (one connection to the database) for all three concurrent sessions
        assert len(open_db_files) == 1, open_db_files
        assert len(results) == 3

        # without the token, the SDK client fails instead of connecting
        with pytest.raises(Exception):
            with anyio.fail_after(30):
                async with Client(url) as client:
                    await client.list_tools()
    with open_store(db) as store:
        assert ledger.count(store) == 3
    assert len(sim.bill) == 3
