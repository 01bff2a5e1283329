"""``mcp-tars demo``: an offline end-to-end run.

Starts the simulated Anthropic API on loopback, launches the real server as a
subprocess over stdio, drives it with a short scripted workload through the
real MCP client, and prints the cost report. No API key is needed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .money import format_usd

SYSTEM_PROMPT = (
    "You are the operations assistant of a small web company. You answer questions about the "
    "deployment pipeline, review code and logs, and keep answers short and precise. "
) * 60  # a long, stable system prompt: the kind prompt caching pays for

WORKLOAD = [
    ("What is machine learning?", None),
    ("Tell me about machine learning", None),  # a paraphrase: semantic cache hit
    ("What is machine learning?", None),  # the same question: exact cache hit
    ("What's the capital of France?", None),  # simple: routed to the cheap model
    ("Design a fault-tolerant architecture for a multi-region payment system, with the trade-offs "
     "between consistency and availability, failure modes and a migration plan.", None),  # complex
    ("Prove that there are infinitely many primes p ≡ 3 (mod 4).", None),  # expert
]

SESSION_TURNS = [
    "Our deploy target is prod-eu-3 on port 8443. Please remember it.",
    "Which checks should run before a deploy?",
    "Summarise the rollback procedure in three steps.",
    "What was the deploy target again?",
]


def _server_env(base_url: str, data_dir: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sim-demo-key",
        "ANTHROPIC_CONFIG_DIR": str(data_dir / "anthropic-config"),
        "MCP_TARS_DB": str(data_dir / "demo.db"),
        "MCP_TARS_STRICT_RESPONSES": "1",
    })
    (data_dir / "anthropic-config").mkdir(exist_ok=True)
    return env


async def _drive(base_url: str, data_dir: Path) -> str:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_tars", "serve"],
                                   env=_server_env(base_url, data_dir))
    async with Client(params) as client:
        print(_row("request", "answered by", "cost", "saved"), file=sys.stderr)
        print(_row("-" * 58, "-" * 26, "-" * 10, "-" * 10), file=sys.stderr)
        for prompt, model in WORKLOAD:
            args = {"prompt": prompt, "max_tokens": 400}
            if model:
                args["model"] = model
            r = await client.call_tool("optimized_complete", args)
            _show(prompt, r)
        messages: list[dict] = []
        for turn in SESSION_TURNS:
            messages.append({"role": "user", "content": turn})
            r = await client.call_tool("optimized_complete", {
                "messages": messages, "system": SYSTEM_PROMPT, "session_id": "demo-ops", "max_tokens": 300})
            _show(turn, r)
            messages.append({"role": "assistant", "content": r.structured_content["text"]})
        # Normal priority: the tasks wait for process_deferred at any hour (low
        # priority would go out by itself in the off-peak window, 0-6 UTC, and
        # the demo's figures would depend on when it runs).
        for i in range(3):
            await client.call_tool("defer_task", {"prompt": f"Write a one-line summary of release note #{i + 1}.",
                                                  "priority": "normal"})
        processed = await client.call_tool("process_deferred", {"force": True})
        if processed.is_error:
            raise RuntimeError(processed.content[0].text)
        print("\n" + _deferred_summary(processed.structured_content), file=sys.stderr)
        report = await client.call_tool("cost_report", {"period": "today", "group_by": "strategy"})
        if report.is_error:
            raise RuntimeError(report.content[0].text)
        return report.structured_content["report"]


def _row(request: str, where: str, cost: str, saved: str) -> str:
    return f"  {request:<58}  {where:<26}  {cost:>10}  {saved:>10}"


def _show(prompt: str, result) -> None:
    if result.is_error:
        print(f"  ERROR {prompt[:50]!r}: {result.content[0].text}", file=sys.stderr)
        return
    s = result.structured_content
    where = f"cache ({s['cache']['kind']})" if s["source"] == "cache" else s["model"]
    short = prompt if len(prompt) <= 58 else prompt[:55] + "..."
    print(_row(short, where, format_usd(s["cost_usd"]), format_usd(s["saved_usd"])), file=sys.stderr)


def _deferred_summary(p: dict) -> str:
    """process_deferred's figures as a sentence (not the raw result)."""
    return (f"  deferred work: {p['submitted_tasks']} task(s) sent in {p['submitted_batches']} batch(es) at the "
            f"50% batch rate, {p['collected']} answer(s) collected, {p['queued']} still queued")


def run_demo(keep_dir: str | None = None) -> int:
    from .sim import SimulatedAnthropic

    data_dir = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="mcp-tars-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with SimulatedAnthropic() as sim:
            print(f"mcp-tars demo: simulated Anthropic API at {sim.base_url}; ledger {data_dir / 'demo.db'}",
                  file=sys.stderr)
            report = asyncio.run(_drive(sim.base_url, data_dir))
            print(report)
            print(f"\nThe simulated API billed {format_usd(sim.bill_total_usd())} for this run.", file=sys.stderr)
        return 0
    finally:
        if not keep_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
