"""Our stdio transport (mcp_tars/stdio.py): event-loop pipes instead of the
SDK's worker threads, the wire kept safe from stray output, and the SDK's own
transport where pipes cannot be used."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest
from mcp import Client, StdioServerParameters

from conftest import server_env, stdio_params

pytestmark = pytest.mark.anyio

# A server built like `mcp-tars serve`, plus tools that misbehave the way
# libraries do: print to stdout, and start a child that reads stdin.
NOISY_SERVER = textwrap.dedent("""
    import subprocess, sys
    from mcp_tars import stdio
    from mcp_tars.server import create_server

    server = create_server()

    @server.tool()
    async def noisy() -> str:
        print("stray output from a library")
        sys.stdout.flush()
        child = subprocess.run([sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"],
                               capture_output=True, text=True, timeout=30)
        return child.stdout.strip()

    stdio.run(server)
""")


async def test_stray_output_and_child_processes_cannot_touch_the_wire(tmp_path, sim):
    script = tmp_path / "noisy_server.py"
    script.write_text(NOISY_SERVER)
    env = server_env(tmp_path, sim.base_url)
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=env)
    async with Client(params) as client:
        r = await client.call_tool("noisy", {})
        assert not r.is_error, r.content
        assert r.content[0].text == "''"  # the child read the null device, not our requests
        # the protocol survived the print: a real call still works
        r = await client.call_tool("optimized_complete", {"prompt": "What is 2 + 2?", "max_tokens": 50})
        assert not r.is_error and r.structured_content["source"] == "api"


async def test_many_calls_and_a_large_request_over_pipes(tmp_path, sim):
    env = server_env(tmp_path, sim.base_url)
    big = "word " * 400_000  # a 2 MB line: far above any pipe buffer
    async with Client(stdio_params(env)) as client:
        results = await asyncio.gather(*[
            client.call_tool("optimized_complete", {"prompt": f"What is {i} squared?", "max_tokens": 50})
            for i in range(20)])
        assert all(not r.is_error for r in results)
        pruned = await client.call_tool("prune_context", {
            "messages": [{"role": "user", "content": big}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": "Summarise."}], "max_tokens": 2000})
        assert not pruned.is_error, pruned.content
        assert pruned.structured_content["tokens_before"] > 300_000


def _jsonrpc_lines(*messages: dict) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def test_stdin_from_a_regular_file_falls_back_to_the_sdk_transport(tmp_path, sim):
    """`mcp-tars serve < requests.jsonl` cannot use event-loop pipes (a file
    is always 'ready'): the SDK's own transport serves it instead."""
    requests = tmp_path / "requests.jsonl"
    requests.write_text(_jsonrpc_lines(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "file", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ))
    env = server_env(tmp_path, sim.base_url)
    with requests.open() as stdin:
        done = subprocess.run([sys.executable, "-m", "mcp_tars", "serve"], stdin=stdin, capture_output=True,
                              text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    answers = {m["id"]: m for m in map(json.loads, done.stdout.splitlines())}
    assert answers[1]["result"]["serverInfo"]["name"] == "mcp-tars"
    assert "optimized_complete" in {t["name"] for t in answers[2]["result"]["tools"]}


async def test_lines_reader_skips_an_overlong_line_and_keeps_going(monkeypatch):
    from mcp_tars import stdio

    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(b'{"a": 1}\n' + b"x" * 500 + b'\n{"b": 2}\n{"c": 3}')
    reader.feed_eof()
    lines = [line async for line in stdio._Lines(reader)]
    assert lines[0] == '{"a": 1}\n'
    assert lines[1] == "line too long\n"  # reported as malformed, not fatal
    assert lines[2:] == ['{"b": 2}\n', '{"c": 3}']  # the last line needs no newline
