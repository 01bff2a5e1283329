"""The stdio transport, read and written by the event loop itself.

The SDK's stdio transport reads each line of stdin and writes each answer
through a worker thread (anyio.wrap_file): three thread hand-offs per call, a
quarter of a millisecond on a busy two-core machine, more than a cache hit's
whole pipeline. Here stdin and stdout are asyncio pipes, so a call costs no
thread at all; the SDK still does all the protocol work (``stdio_server`` with
explicit streams, then the low-level server's run loop).

Like the SDK, this keeps the wire safe from stray output while serving: fd 0
points at the null device and fd 1 at stderr, so a library that prints (or a
child process that reads stdin) cannot corrupt the protocol; both are restored
on exit, and so is the blocking mode of the open pipes (shared with the
process that started the server). Where pipes cannot be used (stdin or stdout a
regular file, a terminal or the null device, one socket for both, Windows)
``run`` falls back to the SDK's own transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

log = logging.getLogger("mcp_tars.stdio")

# Longest JSON-RPC line read; a longer one is skipped and reported as malformed.
# Far above the largest request the engine accepts (server.max_prompt_chars).
MAX_LINE_BYTES = 256 * 1024 * 1024


class _Lines:
    """stdin as the async iterator of text lines that ``stdio_server`` reads."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:  # end of input
            if not e.partial:
                raise StopAsyncIteration from None
            line = e.partial
        except asyncio.LimitOverrunError:
            await self._skip_line()
            log.warning("skipped a stdin line longer than %d bytes", MAX_LINE_BYTES)
            return "line too long\n"  # not JSON: the SDK reports it as a malformed message
        return line.decode("utf-8", errors="replace")

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as e:
                await self._reader.readexactly(e.consumed)
            except asyncio.IncompleteReadError:
                return


class _Out:
    """stdout as the writable that ``stdio_server`` writes each message to."""

    def __init__(self, writer: asyncio.StreamWriter, on_client_gone: Callable[[], None]):
        self._writer = writer
        self._on_client_gone = on_client_gone
        self._client_gone = False

    async def write(self, text: str) -> None:
        if not self._client_gone:
            self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        if self._client_gone:
            return
        try:
            await self._writer.drain()  # waits only when the client stops reading
        except ConnectionError:
            # The client closed its end (it exited or was killed): stop as at
            # end of input rather than crash out of the server's lifespan.
            self._client_gone = True
            log.info("the client closed stdout: stopping")
            self._on_client_gone()


def _is_pipe_like(fd: int) -> bool:
    # Not character devices: epoll refuses the null device (the loop would wait
    # for ever), and a terminal's non-blocking mode would leak to the shell.
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def can_use_pipes() -> bool:
    """True when stdin and stdout can be driven by the event loop."""
    if sys.platform == "win32":
        return False
    try:
        os.fstat(2)  # stray output is sent to stderr while serving
        stdin, stdout = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    if (stdin.st_dev, stdin.st_ino) == (stdout.st_dev, stdout.st_ino):
        # One socket both ways (inetd, socat): the write pipe would take the
        # first incoming request for the client hanging up.
        return False
    return _is_pipe_like(0) and _is_pipe_like(1)


@asynccontextmanager
async def _claimed_std_streams() -> AsyncIterator[tuple[int, int]]:
    """Private (close-on-exec) copies of the wire's fds; fd 0 and 1 diverted while serving."""
    import fcntl  # POSIX only; can_use_pipes is False elsewhere

    was_blocking = os.get_blocking(0), os.get_blocking(1)  # the event loop makes the pipes non-blocking
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    saved_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    saved_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    try:
        yield wire_in, wire_out
    finally:
        sys.stdout.flush()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
        os.set_blocking(0, was_blocking[0])
        os.set_blocking(1, was_blocking[1])


@asynccontextmanager
async def pipe_stdio() -> AsyncIterator[tuple[_Lines, _Out]]:
    """stdin and stdout as event-loop pipes, in the shape ``stdio_server`` takes."""
    loop = asyncio.get_running_loop()
    async with _claimed_std_streams() as (wire_in, wire_out):
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0))
        write_transport, write_protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(wire_out, "wb", buffering=0))
        writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
        try:
            yield _Lines(reader), _Out(writer, on_client_gone=read_transport.close)  # stdin then ends
        finally:
            read_transport.close()
            writer.close()  # once what is buffered has been written
            try:
                await writer.wait_closed()  # before the pipes are made blocking again
            except (ConnectionError, OSError):
                pass  # the client went away: nothing left to deliver


async def _serve(server: MCPServer) -> None:
    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does exactly this with its streams
    async with pipe_stdio() as (stdin, stdout):
        async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def run(server: MCPServer) -> None:
    """Serve ``server`` over stdio until the client closes stdin."""
    if not can_use_pipes() or not hasattr(server, "_lowlevel_server"):
        server.run()  # the SDK's thread-backed transport
        return
    anyio.run(_serve, server)
