"""Our stdio transport (mcp_tars/stdio.py): event-loop pipes instead of the
SDK's worker threads, the wire kept safe from stray output, and the SDK's own
transport where pipes cannot be used."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

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


def _serve_process(env, **stdio) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mcp_tars", "serve"], env=env, stderr=subprocess.PIPE, **stdio)


INITIALIZE = (b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
              b'"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}\n'
              b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')


def _tool_call(request_id: int, prompt: str) -> bytes:
    import json

    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
        "name": "optimized_complete", "arguments": {"prompt": prompt, "max_tokens": 50}}}) + "\n").encode()


def test_a_server_whose_stdin_is_the_null_device_exits_at_once(tmp_path, sim):
    """Supervisors, cron and `docker run` without -i start servers on /dev/null:
    the event loop cannot watch it (epoll refuses), so the server must read its
    end of input the ordinary way instead of waiting forever."""
    server = _serve_process(server_env(tmp_path, sim.base_url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert server.wait(timeout=30) == 0, server.stderr.read().decode()[-2000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()


def test_one_socket_for_stdin_and_stdout(tmp_path, sim):
    """inetd, systemd socket activation and `socat ... EXEC:` hand the server one
    socket as both stdin and stdout: every request must still get its answer."""
    import socket

    ours, theirs = socket.socketpair()
    server = _serve_process(server_env(tmp_path, sim.base_url), stdin=theirs.fileno(), stdout=theirs.fileno())
    theirs.close()
    answers = ours.makefile("rb")
    try:
        ours.settimeout(30)
        ours.sendall(INITIALIZE)
        assert b'"id":0' in answers.readline()
        for request_id in (1, 2):
            ours.sendall(_tool_call(request_id, f"What is {request_id} plus {request_id}?"))
            answer = answers.readline()
            assert f'"id":{request_id},"result"'.encode() in answer, answer[:300]
        ours.shutdown(socket.SHUT_WR)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        answers.close()
        ours.close()
        server.stderr.close()


def test_the_callers_pipes_are_left_blocking(tmp_path, sim):
    """O_NONBLOCK belongs to the open pipe, which the process that started the
    server shares (a wrapper script, a shell): it is put back when serving ends."""
    import os

    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    server = _serve_process(server_env(tmp_path, sim.base_url), stdin=stdin_read, stdout=stdout_write)
    try:
        os.write(stdin_write, INITIALIZE)
        with os.fdopen(os.dup(stdout_read), "rb") as answers:
            assert b'"id":0' in answers.readline()
        os.close(stdin_write)
        stdin_write = None
        assert server.wait(timeout=30) == 0
        assert os.get_blocking(stdin_read) and os.get_blocking(stdout_write)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for fd in (stdin_read, stdin_write, stdout_read, stdout_write):
            if fd is not None:
                os.close(fd)
        server.stderr.close()


def test_where_fcntl_does_not_exist_the_sdk_transport_is_chosen():
    """Windows has no fcntl: importing the transport must not fail there, and
    `run` must hand over to the SDK's transport."""
    probe = textwrap.dedent("""
        import sys
        import mcp.server.stdio  # the SDK imports fcntl only off Windows
        sys.modules["fcntl"] = None  # as on Windows
        from mcp_tars import stdio
        sys.platform = "win32"
        print(stdio.can_use_pipes())
    """)
    done = subprocess.run([sys.executable, "-c", probe], text=True, capture_output=True, timeout=60, input="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_client_that_dies_mid_call_lets_the_server_stop_cleanly(tmp_path):
    """The client is killed while a call is out to the API: its pipes close
    both ways. The server stops like at end of input (exit status 0, lifespan
    closed normally), not with a broken-pipe traceback."""
    import os

    from mcp_tars.sim.remote import SimProcess

    with SimProcess.start("--latency-s", "1.0") as slow_sim:
        server = _serve_process(server_env(tmp_path, slow_sim.base_url), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        try:
            server.stdin.write(INITIALIZE)
            server.stdin.flush()
            assert b'"id":0' in server.stdout.readline()
            server.stdin.write(_tool_call(1, "What is 6 times 7?"))
            server.stdin.flush()
            time.sleep(0.3)  # the call is with the (slow) API now
            server.stdout.close()  # the client's ends close: first its reading end...
            time.sleep(1.5)  # ...the answer meets a broken pipe...
            server.stdin.close()  # ...then its writing end
            assert server.wait(timeout=30) == 0
            stderr = server.stderr.read().decode()
            assert "Traceback" not in stderr, stderr[-3000:]
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            server.stderr.close()
