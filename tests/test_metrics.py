"""The metrics log (mcp_tars.metrics): lines are written just after the call
returns, in one write for several, and never held back: not by a loop that
ended before its flush, not by calls from threads without a loop."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading

from mcp_tars import metrics
from mcp_tars.engine import CompletionResult
from mcp_tars.metrics import MetricsLog


def _result(source: str) -> CompletionResult:
    return CompletionResult(
        text="Accra.", content=[], model="claude-haiku-5-5", source=source, stop_reason="end_turn",
        usage={"input_tokens": 12, "output_tokens": 3}, cost_usd=0.0001, baseline_cost_usd=0.0003, saved_usd=0.0002,
        savings_by_lever={}, pricing_source="test", cache={"kind": None}, routing={"level": "simple"}, pruning=None,
        prompt_cache=None, request_id=None, response_id="msg_1", session_id=None, latency_ms=1.5, attempts=1)


def _sources(path) -> list[str]:
    return [json.loads(line)["source"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_line_whose_loop_ends_before_the_flush_is_written_by_the_next_write(tmp_path):
    """asyncio.run() returning right after a call (a CLI pass, a script) drops
    the flush it scheduled: the next write, in a later loop or in none, must
    not wait for that flush forever (the lines piled up until close)."""
    path = tmp_path / "metrics.log"
    log = MetricsLog(path)

    async def call(source: str, pause: float = 0.0) -> None:
        log.write(_result(source))
        await asyncio.sleep(pause)

    try:
        asyncio.run(call("api"))  # ends before its flush
        asyncio.run(call("cache", pause=metrics.FLUSH_DELAY_SECONDS * 10))
        assert _sources(path) == ["api", "cache"]
        asyncio.run(call("api"))
        log.write(_result("cache"))  # no loop in this thread: written at once, with the one left over
        assert _sources(path) == ["api", "cache", "api", "cache"]
    finally:
        log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_lines_from_worker_threads_and_the_loop_are_all_written_whole(tmp_path):
    path = tmp_path / "metrics.log"
    log = MetricsLog(path)

    async def main() -> None:
        def worker() -> None:
            for _ in range(200):
                log.write(_result("cache"))

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(200):
            log.write(_result("api"))
            await asyncio.sleep(0)
        for t in threads:
            t.join()
        await asyncio.sleep(metrics.FLUSH_DELAY_SECONDS * 10)

    try:
        asyncio.run(main())
        sources = _sources(path)  # every line parses: none interleaved with another
        assert sources.count("api") == 200 and sources.count("cache") == 600
    finally:
        log.close()
