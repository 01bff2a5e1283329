"""What each tool's result costs the host that reads it.

    python -m bench.results
    python -m bench.results --host-model claude-opus-5-5

A host model (Claude Desktop's, Claude Code's) reads a tool's text content at
its own input price. This runs every tool once through the real MCP server
and client (in process) against the simulated API, and prints, per result,
the characters and estimated host tokens of the text the host reads, and that
text's cost at the host model's input price:

- before: the text every tool used to return (its whole structured result as
  compact JSON, which is what ``structured_result`` sent until the text
  became the answer plus one line of figures);
- after: the text the tool returns now.

For ``optimized_complete`` it also prints what the call itself cost, and the
ratio of the text to the answer's own length (the target: under 1.3x plus one
line). Token counts are estimates (``mcp_tars.tokens``, the host model's
factor); costs of the calls themselves come from the API's usage.
Writes bench/out/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

from mcp import Client

from mcp_tars import tokens
from mcp_tars.app import open_state
from mcp_tars.money import format_usd
from mcp_tars.pricing import PriceTable
from mcp_tars.server import create_server
from mcp_tars.settings import Config
from mcp_tars.sim import SimulatedAnthropic

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"

CONVERSATION = [
    {"role": "user", "content": "We deploy the billing service to prod-eu-3 on port 8443. " * 40},
    {"role": "assistant", "content": "Noted: billing on prod-eu-3:8443. " * 40},
    {"role": "user", "content": "Which checks run before a deploy? " + "Context: " + "the pipeline has many steps. " * 60},
    {"role": "assistant", "content": "Lint, unit tests, integration tests, a canary. " * 40},
    {"role": "user", "content": "And the rollback procedure, in three steps?"},
]


def _config() -> Config:
    return Config.model_validate({"batch": {"worker_enabled": False}, "monitoring": {"metrics_log": None},
                                  "api": {"backoff_initial_seconds": 0.0, "backoff_max_seconds": 0.01}})


async def _calls(client: Client) -> list[tuple[str, str, object]]:
    """(tool, case, result) for one call of every tool."""
    out = []

    async def call(tool: str, case: str, args: dict):
        r = await client.call_tool(tool, args)
        if r.is_error:
            raise RuntimeError(f"{tool} ({case}): {r.content[0].text}")
        out.append((tool, case, r))
        return r

    question = {"prompt": "What is the capital of France?", "max_tokens": 100}
    await call("optimized_complete", "short answer", question)
    await call("optimized_complete", "cache hit", question)
    await call("optimized_complete", "conversation", {"messages": CONVERSATION, "session_id": "bench", "max_tokens": 300})
    deferred = await call("defer_task", "queued", {"prompt": "Summarise release note 1 in one line.", "priority": "low"})
    await call("process_deferred", "forced", {"force": True})
    await call("task_status", "succeeded", {"task_id": deferred.structured_content["task_id"]})
    await call("deferred_results", "one task", {})
    await call("cost_report", "markdown", {"period": "today"})
    await call("cost_report", "json", {"period": "today", "format": "json"})
    await call("prune_context", "conversation", {"messages": CONVERSATION, "max_tokens": 800})
    return out


def measure(host_model: str) -> list[dict]:
    price = PriceTable().price(host_model)[0]
    if price is None:
        raise SystemExit(f"no price for host model {host_model!r}")
    per_token = float(price.input) / 1_000_000
    data_dir = Path(tempfile.mkdtemp(prefix="bench-results-"))
    os.environ["ANTHROPIC_CONFIG_DIR"] = str(data_dir)
    with SimulatedAnthropic() as sim:
        os.environ["ANTHROPIC_BASE_URL"] = sim.base_url
        os.environ["ANTHROPIC_API_KEY"] = "bench-results"
        config = _config()
        server = create_server(lambda: open_state(config, str(data_dir / "bench.db")))

        async def run():
            async with Client(server) as client:
                return await _calls(client)

        results = asyncio.run(run())
    rows = []
    for tool, case, r in results:
        before = json.dumps(r.structured_content, separators=(",", ":"))
        after = r.content[0].text
        row = {"tool": tool, "case": case}
        for name, text in (("before", before), ("after", after)):
            n = tokens.estimate_text_tokens(text, host_model)
            row[name] = {"chars": len(text), "host_tokens": n, "host_cost_usd": n * per_token}
        s = r.structured_content
        if tool == "optimized_complete":
            row["call_cost_usd"] = s["cost_usd"]
            row["answer_chars"] = len(s["text"])
            row["text_over_answer"] = (len(after) - len(after.splitlines()[-1]) - 1) / len(s["text"])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host-model", default="claude-sonnet-5-5", help="the model that reads tool results")
    args = parser.parse_args()
    rows = measure(args.host_model)
    print(f"Host-side cost of each tool result (host model {args.host_model}; tokens are estimates)\n")
    head = (f"{'tool':<20} {'case':<14} {'before chars':>12} {'tokens':>7} {'host $':>10}   "
            f"{'after chars':>11} {'tokens':>7} {'host $':>10}   {'saved':>6}   {'call $':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        b, a = r["before"], r["after"]
        saved = 1 - a["host_tokens"] / b["host_tokens"] if b["host_tokens"] else 0.0
        call = format_usd(r["call_cost_usd"]) if "call_cost_usd" in r else ""
        print(f"{r['tool']:<20} {r['case']:<14} {b['chars']:>12,} {b['host_tokens']:>7,} "
              f"{format_usd(b['host_cost_usd']):>10}   {a['chars']:>11,} {a['host_tokens']:>7,} "
              f"{format_usd(a['host_cost_usd']):>10}   {saved:>6.0%}   {call:>10}")
    short = next(r for r in rows if r["case"] == "short answer")
    print(f"\noptimized_complete, short answer: the text is the answer ({short['answer_chars']} chars) x "
          f"{short['text_over_answer']:.2f} plus one line of figures (target: under 1.3x plus one line).")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps({"host_model": args.host_model, "rows": rows}, indent=2))
    print(f"wrote {OUT_DIR / 'results.json'}")


if __name__ == "__main__":
    main()
