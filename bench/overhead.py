"""Overhead: what mcp-tars adds to a call, next to floors measured in the same run.

    python -m bench.overhead [--calls N] [--quick]

Three stdio/HTTP paths are timed, interleaved in random order so that they
share whatever else the machine is doing:

* the real ``mcp-tars serve`` over stdio: ``optimized_complete`` on a cache
  hit (a question asked before) and on a miss (a new question: cache lookup,
  routing, prompt-cache shaping, the API call, ledger, cache store);
* a no-op tool on a second, tiny ``MCPServer`` served over stdio the same way
  (same SDK, same transport, same arguments): the floor of a cache hit;
* the same request sent directly with the Anthropic SDK to the same simulated
  API: the sim's own time plus the SDK's. The floor of a miss is no-op +
  direct SDK, summed call by call.

Overhead = our round trip - its floor, at p50, p95 and p99. Targets (issue 8):
p50 within 1 ms of the floor on a hit and 2 ms on a miss; p99 within 10 ms.
Writes bench/out/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from bench.workloads import (
    BENCH_API_KEY,
    bench_config,
    percentile,
    server_env,
    start_sim,
    stdio_params,
    workdir,
    write_json,
)

TARGETS_MS = {"hit_p50": 1.0, "miss_p50": 2.0, "p99": 10.0}
MODEL = "claude-haiku-5-5"  # where the router sends these simple questions
MAX_TOKENS = 200
_COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "Chile", "Egypt", "India", "Peru",
              "Spain", "Ghana", "Nepal", "Cuba", "Fiji", "Laos", "Mali", "Oman", "Chad", "Iran"]
_ASKS = ["the capital", "the population", "the currency", "the official language", "the highest mountain",
         "the largest city", "the national dish", "the time zone", "the area", "the longest river"]


def miss_prompt(i: int) -> str:
    """A question no earlier call asked (distinct number and subject)."""
    return f"What is {_ASKS[i % len(_ASKS)]} of {_COUNTRIES[(i // len(_ASKS)) % len(_COUNTRIES)]} in year {1800 + i}?"


def hit_prompt(i: int) -> str:
    return f"What is {_ASKS[i % len(_ASKS)]} of {_COUNTRIES[(i // len(_ASKS)) % len(_COUNTRIES)]}?"


# -- the no-op floor ------------------------------------------------------------


class NoopResult(BaseModel):
    text: str


def noop_server():
    """A tiny MCP server with one tool that does nothing: the transport's floor."""
    server = MCPServer("noop")

    @server.tool()
    async def noop(
        prompt: Annotated[str | None, Field(description="Ignored.")] = None,
        max_tokens: Annotated[int, Field(description="Ignored.")] = 1024,
    ) -> NoopResult:
        """Return at once."""
        return NoopResult(text="")

    return server


def noop_params():
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "bench.overhead", "--noop-server"])


# -- measurement ----------------------------------------------------------------


async def _timed(coro) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await coro
    return (time.perf_counter() - began) * 1000, result


async def measure(calls: int, warmup: int = 30, hit_set: int = 50, seed: int = 5) -> dict:
    import anthropic
    from mcp import Client

    rng = random.Random(seed)
    sim = start_sim()
    wd = workdir("overhead")
    env = server_env(wd, sim.base_url, bench_config())
    samples: dict[str, list[float]] = {"noop": [], "sdk": [], "hit": [], "miss": [], "engine_hit": [], "engine_miss": []}
    problems: list[str] = []
    try:
        sdk = anthropic.AsyncAnthropic(api_key=BENCH_API_KEY, base_url=sim.base_url, max_retries=0)
        async with Client(stdio_params(env)) as tars, Client(noop_params()) as noop:
            async def call_tars(prompt: str):
                return await tars.call_tool("optimized_complete", {"prompt": prompt, "max_tokens": MAX_TOKENS})

            async def call_sdk(prompt: str):
                return await sdk.messages.create(model=MODEL, max_tokens=MAX_TOKENS,
                                                 messages=[{"role": "user", "content": prompt}])

            # warm every path (imports, connections, the hit set in the cache)
            for i in range(hit_set):
                await call_tars(hit_prompt(i))
            for i in range(warmup):
                await noop.call_tool("noop", {"prompt": miss_prompt(10_000 + i), "max_tokens": MAX_TOKENS})
                await call_sdk(miss_prompt(10_000 + i))
                await call_tars(miss_prompt(20_000 + i))
                await call_tars(hit_prompt(i % hit_set))
            for i in range(calls):
                prompt = miss_prompt(i)
                steps = ["noop", "sdk", "hit", "miss"]
                rng.shuffle(steps)
                for step in steps:
                    if step == "noop":
                        ms, r = await _timed(noop.call_tool("noop", {"prompt": prompt, "max_tokens": MAX_TOKENS}))
                    elif step == "sdk":
                        ms, r = await _timed(call_sdk(prompt))
                    elif step == "hit":
                        ms, r = await _timed(call_tars(hit_prompt(rng.randrange(hit_set))))
                        if r.is_error or r.structured_content["source"] != "cache":
                            problems.append(f"expected a cache hit: {r.content[0].text[:200] if r.is_error else r.structured_content['source']}")
                        else:
                            samples["engine_hit"].append(r.structured_content["latency_ms"])
                    else:
                        ms, r = await _timed(call_tars(prompt))
                        if r.is_error or r.structured_content["source"] != "api":
                            problems.append(f"expected a miss: {r.content[0].text[:200] if r.is_error else r.structured_content['source']}")
                        else:
                            samples["engine_miss"].append(r.structured_content["latency_ms"])
                    samples[step].append(ms)
        await sdk.close()
    finally:
        sim.stop()
    return summarise(samples, problems)


def summarise(samples: dict[str, list[float]], problems: list[str]) -> dict:
    floor_miss = [a + b for a, b in zip(samples["noop"], samples["sdk"])]
    rows = {}
    for name, values in (("no-op tool over stdio (floor of a hit)", samples["noop"]),
                         ("direct SDK call to the sim", samples["sdk"]),
                         ("no-op + direct SDK (floor of a miss)", floor_miss),
                         ("optimized_complete, cache hit", samples["hit"]),
                         ("optimized_complete, cache miss", samples["miss"]),
                         ("  engine time inside the server, hit", samples["engine_hit"]),
                         ("  engine time inside the server, miss", samples["engine_miss"])):
        rows[name] = {p: round(percentile(values, q), 3) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        rows[name]["mean"] = round(statistics.fmean(values), 3) if values else None
        rows[name]["n"] = len(values)
    hit, miss = rows["optimized_complete, cache hit"], rows["optimized_complete, cache miss"]
    f_hit, f_miss = rows["no-op tool over stdio (floor of a hit)"], rows["no-op + direct SDK (floor of a miss)"]
    overhead = {
        "hit": {p: round(hit[p] - f_hit[p], 3) for p in ("p50", "p95", "p99")},
        "miss": {p: round(miss[p] - f_miss[p], 3) for p in ("p50", "p95", "p99")},
    }
    verdict = {
        "hit_p50_within_1ms": overhead["hit"]["p50"] <= TARGETS_MS["hit_p50"],
        "miss_p50_within_2ms": overhead["miss"]["p50"] <= TARGETS_MS["miss_p50"],
        "hit_p99_within_10ms": overhead["hit"]["p99"] <= TARGETS_MS["p99"],
        "miss_p99_within_10ms": overhead["miss"]["p99"] <= TARGETS_MS["p99"],
        "no_unexpected_outcomes": not problems,
    }
    return {"rows": rows, "overhead_ms": overhead, "targets_ms": TARGETS_MS, "verdict": verdict,
            "problems": problems[:10], "calls": len(samples["miss"])}


def table(result: dict) -> str:
    lines = ["Round trip per call, ms (interleaved, same run; floors measured alongside)",
             f"{'path':<42} {'p50':>8} {'p95':>8} {'p99':>8} {'n':>6}"]
    for name, r in result["rows"].items():
        lines.append(f"{name:<42} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} {r['n']:>6}")
    o = result["overhead_ms"]
    lines.append(f"{'overhead of a hit (hit - no-op)':<42} {o['hit']['p50']:>8.2f} {o['hit']['p95']:>8.2f} {o['hit']['p99']:>8.2f}")
    lines.append(f"{'overhead of a miss (miss - no-op - SDK)':<42} {o['miss']['p50']:>8.2f} {o['miss']['p95']:>8.2f} {o['miss']['p99']:>8.2f}")
    v = result["verdict"]
    lines.append("targets: hit p50 <= 1 ms: {} | miss p50 <= 2 ms: {} | p99 <= 10 ms: hit {}, miss {}{}".format(
        _ok(v["hit_p50_within_1ms"]), _ok(v["miss_p50_within_2ms"]), _ok(v["hit_p99_within_10ms"]),
        _ok(v["miss_p99_within_10ms"]), "" if v["no_unexpected_outcomes"] else f" | PROBLEMS: {result['problems'][:3]}"))
    return "\n".join(lines)


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def run(quick: bool = False, calls: int | None = None) -> dict:
    calls = calls or (150 if quick else 1000)
    result = asyncio.run(measure(calls, warmup=10 if quick else 30))
    print(table(result), flush=True)
    path = write_json("overhead", result)
    print(f"wrote {path}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="timed calls per path (default 1000; --quick 150)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--noop-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.noop_server:
        noop_server().run()
        return 0
    result = run(args.quick, args.calls)
    return 0 if all(result["verdict"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
