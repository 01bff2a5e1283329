"""Our stdio transport (mcp_tars/stdio.py): event-loop pipes instead of the
SDK's worker threads, the wire kept safe from stray output, and the SDK's own
transport where pipes cannot be used."""

from __future__ import annotations

import asyncio
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


def _can_use_pipes(**stdio) -> bool:
    probe = "from mcp_tars import stdio; print(stdio.can_use_pipes())"
    done = subprocess.run([sys.executable, "-c", probe], text=True, timeout=60, **stdio)
    return done.stdout.strip() == "True"


def test_pipes_are_used_only_where_the_event_loop_can_drive_them(tmp_path):
    """`mcp-tars serve < requests.jsonl` cannot use event-loop pipes (a
    regular file is always 'ready'); `run` then hands over to the SDK's own
    transport. Pipes (how every MCP host starts a server) can."""
    requests = tmp_path / "requests.jsonl"
    requests.write_text("{}\n")
    assert _can_use_pipes(stdout=subprocess.PIPE, input="")
    with requests.open() as stdin:
        assert not _can_use_pipes(stdin=stdin, stdout=subprocess.PIPE)
    with (tmp_path / "out.txt").open("w") as stdout:
        subprocess.run([sys.executable, "-c", "from mcp_tars import stdio; print(stdio.can_use_pipes())"],
                       stdout=stdout, text=True, timeout=60, input="")
    assert (tmp_path / "out.txt").read_text().strip() == "False"


async def test_lines_reader_skips_an_overlong_line_and_keeps_going(monkeypatch):
    from mcp_tars import stdio

    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(b'{"a": 1}\n' + b"x" * 500 + b'\n{"b": 2}\n{"c": 3}')
    reader.feed_eof()
    lines = [line async for line in stdio._Lines(reader)]
    assert lines[0] == '{"a": 1}\n'
    assert lines[1] == "line too long\n"  # reported as malformed, not fatal
    assert lines[2:] == ['{"b": 2}\n', '{"c": 3}']  # the last line needs no newline
