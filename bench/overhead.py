"""Overhead: what mcp-tars adds to a call, next to floors measured in the same run.

    python -m bench.overhead [--calls N] [--quick]

Every path below is timed once per round, in a random order each round, so
that all of them share whatever else the machine is doing:

* the real ``mcp-tars serve`` over stdio: ``optimized_complete`` on a cache
  hit (half of them a question asked before: exact hits; half a paraphrase
  of one: semantic hits, shown apart too) and on a miss (a new question: cache lookup,
  routing, prompt-cache shaping, the API call, ledger, cache store);
* floors, on tiny ``MCPServer`` processes served over stdio (same SDK, same
  arguments, same environment, same log level):
  - ``noop``: returns at once (the floor of a hit);
  - ``passthrough``: sends the request to the same simulated API with the
    Anthropic SDK and returns its text (no-op + a direct SDK call: the floor
    of a miss; the sim's own time is inside it);
  - ``noop_shaped`` / ``passthrough_shaped``: the same, returning a result with
    optimized_complete's output schema and about its size, so the client's
    schema check and the payload are the same as ours;
  each of them twice: with the SDK's own stdio transport (what any MCP server
  has: the issue's floors), and with mcp-tars' stdio transport
  (``mcp_tars/stdio.py``: event-loop pipes, no worker threads, about 0.3 ms
  faster per call), which isolates what the pipeline itself costs;
* for reference, a direct SDK call from the client process.

Each server process serves exactly two timed calls per round (mcp-tars: hit and
miss; one floor process: noop and noop_shaped; another: the passthroughs; the
processes on our transport: their two each). A process that waits longer between calls
answers more slowly on a busy two-core machine (its caches go cold), so an
unbalanced design would favour whichever process is called most.

Overhead = our round trip - its floor, at p50, p95 and p99 (percentile minus
percentile). Targets (issue 8): p50 within 1 ms of the floor on a hit and 2 ms
on a miss; p99 within 10 ms. Three verdicts are printed: against the bare SDK
floors (the issue's own: a no-op tool; a no-op plus a direct SDK call; these
decide the exit status), against the answer-shaped SDK floors, and against the
floors on our own transport (the pipeline alone). Writes
bench/out/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from mcp_tars.server import CompleteResult
from bench.workloads import (
    BENCH_API_KEY,
    bench_config,
    percentile,
    remove_workdir,
    server_env,
    start_sim,
    stdio_params,
    workdir,
    write_json,
)

TARGETS_MS = {"hit_p50": 1.0, "miss_p50": 2.0, "p99": 10.0}
MODEL = "claude-haiku-5-5"  # where the router sends these simple questions
MAX_TOKENS = 200
SESSION_MODEL = "claude-sonnet-5-5"
# about the length of the sim's answer to these questions
CANNED_TEXT = ("Simulated answer (model=claude-haiku-5-5, q=0123456789): The short answer depends on the details you "
               "gave. Here is a careful walk through the main points. The result holds under the usual conditions.")
_COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "Chile", "Egypt", "India", "Peru",
              "Spain", "Ghana", "Nepal", "Cuba", "Fiji", "Laos", "Mali", "Oman", "Chad", "Iran"]
_ASKS = ["the capital", "the population", "the currency", "the official language", "the highest mountain",
         "the largest city", "the national dish", "the time zone", "the area", "the longest river"]


def miss_prompt(i: int) -> str:
    """A question no earlier call asked (distinct number and subject)."""
    return f"What is {_ASKS[i % len(_ASKS)]} of {_COUNTRIES[(i // len(_ASKS)) % len(_COUNTRIES)]} in year {1800 + i}?"


def hit_prompt(i: int) -> str:
    return f"What is {_ASKS[i % len(_ASKS)]} of {_COUNTRIES[(i // len(_ASKS)) % len(_COUNTRIES)]}?"


def paraphrase_prompt(i: int, form: int) -> str:
    """hit_prompt(i) in other words: a semantic hit, never an exact one."""
    question = hit_prompt(i)
    return (question.replace("What is", "What's", 1) if form % 2 == 0
            else "Tell me " + question.removeprefix("What is ").removesuffix("?") + ", please.")


# -- the floors: a tiny MCP server over the same transport ---------------------------


class NoopResult(BaseModel):
    text: str


def _shaped(text: str, model: str, source: str) -> CompleteResult:
    """A canned result with optimized_complete's schema and about its size."""
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return CompleteResult(
        text=text, content=[{"type": "text", "text": text}], model=model, source=source, stop_reason="end_turn",
        cache={"kind": None, "similarity": None}, usage=usage, cost_usd=0.0, baseline_cost_usd=0.0, saved_usd=0.0,
        savings_by_lever={k: 0.0 for k in ("cache", "routing", "pruning", "prompt_cache", "batch")},
        pricing_source="table", routing={"level": "simple", "score": 0, "reason": "floor"}, pruning=None,
        prompt_cache=None, request_id=None, response_id="floor", session_id=None, latency_ms=0.0, attempts=0,
        warnings=[])


def noop_server():
    """A tiny MCP server: a tool that does nothing (the floor of a hit) and a
    tool that only forwards the request to the API with the SDK (the floor of a
    miss), each returning either a one-field result or a canned result with
    optimized_complete's schema (so the client's schema check and the payload
    are the same as ours)."""
    import anthropic

    # the log level mcp-tars serves with (the SDK's default, INFO, would log
    # every HTTP request of the passthroughs and slow the floor down)
    server = MCPServer("floor", log_level="WARNING")
    clients: dict[str, anthropic.AsyncAnthropic] = {}

    def new_client() -> anthropic.AsyncAnthropic:
        # built as the engine builds its client: explicit key (no credential
        # discovery), no SDK retries, the same timeout
        return anthropic.AsyncAnthropic(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.environ["ANTHROPIC_BASE_URL"],
                                        max_retries=0, timeout=bench_config().api.timeout_seconds)

    async def forward(prompt: str, max_tokens: int) -> tuple[str, str]:
        if "client" not in clients:
            clients["client"] = new_client()
        m = await clients["client"].messages.create(model=MODEL, max_tokens=max_tokens,
                                                    messages=[{"role": "user", "content": prompt}])
        return "".join(b.text for b in m.content if b.type == "text"), m.model

    @server.tool()
    async def noop(
        prompt: Annotated[str | None, Field(description="Ignored.")] = None,
        max_tokens: Annotated[int, Field(description="Ignored.")] = 1024,
    ) -> NoopResult:
        """Return at once."""
        return NoopResult(text="")

    @server.tool()
    async def noop_shaped(
        prompt: Annotated[str | None, Field(description="Ignored.")] = None,
        max_tokens: Annotated[int, Field(description="Ignored.")] = 1024,
    ) -> CompleteResult:
        """Return a canned answer at once."""
        return _shaped(CANNED_TEXT, MODEL, "cache")

    @server.tool()
    async def passthrough(
        prompt: Annotated[str, Field(description="The question.")],
        max_tokens: Annotated[int, Field(description="Most output tokens.")] = 1024,
    ) -> NoopResult:
        """Send the prompt to the API as it is and return the answer's text."""
        text, _ = await forward(prompt, max_tokens)
        return NoopResult(text=text)

    @server.tool()
    async def passthrough_shaped(
        prompt: Annotated[str, Field(description="The question.")],
        max_tokens: Annotated[int, Field(description="Most output tokens.")] = 1024,
    ) -> CompleteResult:
        """Send the prompt to the API as it is; answer in optimized_complete's shape."""
        text, model = await forward(prompt, max_tokens)
        return _shaped(text, model, "api")

    @server.tool()
    async def passthrough_messages(
        messages: Annotated[list[dict[str, Any]], Field(description="Messages API conversation.")],
        system: Annotated[str | None, Field(description="System prompt.")] = None,
        tools: Annotated[list[dict[str, Any]] | None, Field(description="Tool definitions.")] = None,
        max_tokens: Annotated[int, Field(description="Most output tokens.")] = 1024,
        session_id: Annotated[str | None, Field(description="Ignored.")] = None,
    ) -> CompleteResult:
        """Send the conversation to the API as it is; answer in optimized_complete's shape."""
        if "client" not in clients:
            clients["client"] = new_client()
        extra = {k: v for k, v in (("system", system), ("tools", tools)) if v is not None}
        m = await clients["client"].messages.create(model=SESSION_MODEL, max_tokens=max_tokens, messages=messages, **extra)
        return _shaped("".join(b.text for b in m.content if b.type == "text"), m.model, "api")

    return server


def noop_params(env: dict[str, str], *, our_transport: bool = False):
    from mcp import StdioServerParameters

    flag = "--noop-server-our-transport" if our_transport else "--noop-server"
    return StdioServerParameters(command=sys.executable, args=["-m", "bench.overhead", flag], env=env)


# -- measurement ----------------------------------------------------------------


async def _timed(coro) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await coro
    return (time.perf_counter() - began) * 1000, result


STEPS = ("noop", "noop_shaped", "passthrough", "passthrough_shaped", "ours_noop", "ours_noop_shaped",
         "ours_passthrough", "ours_passthrough_shaped", "sdk", "hit", "miss")
# which floor process serves each floor step (two steps per process, see the docstring)
FLOOR_PROCESS = {"noop": "hit_floor", "noop_shaped": "hit_floor", "passthrough": "miss_floor",
                 "passthrough_shaped": "miss_floor", "ours_noop": "ours_hit", "ours_noop_shaped": "ours_hit",
                 "ours_passthrough": "ours_miss", "ours_passthrough_shaped": "ours_miss"}


async def measure(calls: int, warmup: int = 30, hit_set: int = 50, seed: int = 5) -> dict:
    import anthropic
    from mcp import Client

    rng = random.Random(seed)
    sim = start_sim()
    wd = workdir("overhead")
    env = server_env(wd, sim.base_url, bench_config())
    samples: dict[str, list[float]] = {k: [] for k in (*STEPS, "hit_exact", "hit_semantic", "engine_hit", "engine_miss")}
    problems: list[str] = []
    try:
        sdk = anthropic.AsyncAnthropic(api_key=BENCH_API_KEY, base_url=sim.base_url, max_retries=0)
        async with Client(stdio_params(env)) as tars, Client(noop_params(env)) as hit_floor, \
                Client(noop_params(env)) as miss_floor, Client(noop_params(env, our_transport=True)) as ours_hit, \
                Client(noop_params(env, our_transport=True)) as ours_miss:
            floors = {"hit_floor": hit_floor, "miss_floor": miss_floor, "ours_hit": ours_hit, "ours_miss": ours_miss}

            async def call_tars(prompt: str):
                return await tars.call_tool("optimized_complete", {"prompt": prompt, "max_tokens": MAX_TOKENS})

            async def call_floor(step: str, prompt: str):
                tool = step.removeprefix("ours_")
                return await floors[FLOOR_PROCESS[step]].call_tool(tool, {"prompt": prompt, "max_tokens": MAX_TOKENS})

            async def call_sdk(prompt: str):
                return await sdk.messages.create(model=MODEL, max_tokens=MAX_TOKENS,
                                                 messages=[{"role": "user", "content": prompt}])

            # warm every path (imports, connections, the hit set in the cache)
            for i in range(hit_set):
                await call_tars(hit_prompt(i))
            for i in range(warmup):
                for step in FLOOR_PROCESS:
                    await call_floor(step, miss_prompt(10_000 + i))
                await call_sdk(miss_prompt(10_000 + i))
                await call_tars(miss_prompt(20_000 + i))
                await call_tars(hit_prompt(i % hit_set))
            for i in range(calls):
                prompt = miss_prompt(i)
                steps = list(STEPS)
                rng.shuffle(steps)
                for step in steps:
                    if step == "sdk":
                        ms, r = await _timed(call_sdk(prompt))
                    elif step == "hit":
                        # half the hits are the same question (exact), half a paraphrase (semantic)
                        kind = rng.choice(("exact", "semantic"))
                        k = rng.randrange(hit_set)
                        ms, r = await _timed(call_tars(hit_prompt(k) if kind == "exact" else paraphrase_prompt(k, i)))
                        got = None if r.is_error else (r.structured_content["source"], r.structured_content["cache"]["kind"])
                        if got != ("cache", kind):
                            problems.append(f"expected a {kind} cache hit: {r.content[0].text[:200] if r.is_error else got}")
                        else:
                            samples["engine_hit"].append(r.structured_content["latency_ms"])
                            samples[f"hit_{kind}"].append(ms)
                    elif step == "miss":
                        ms, r = await _timed(call_tars(prompt))
                        if r.is_error or r.structured_content["source"] != "api":
                            problems.append(f"expected a miss: {r.content[0].text[:200] if r.is_error else r.structured_content['source']}")
                        else:
                            samples["engine_miss"].append(r.structured_content["latency_ms"])
                    else:
                        ms, r = await _timed(call_floor(step, prompt))
                        if r.is_error:
                            problems.append(f"{step}: {r.content[0].text[:200]}")
                    samples[step].append(ms)
        await sdk.close()
    finally:
        sim.stop()
        remove_workdir(wd)
    return summarise(samples, problems)


ROWS = (
    ("noop", "floor: no-op tool"),
    ("noop_shaped", "floor: no-op tool, answer-shaped result"),
    ("passthrough", "floor: no-op tool + SDK call to the sim"),
    ("passthrough_shaped", "floor: same, answer-shaped result"),
    ("ours_noop", "floor on our transport: no-op tool"),
    ("ours_noop_shaped", "  same, answer-shaped result"),
    ("ours_passthrough", "floor on our transport: no-op + SDK call"),
    ("ours_passthrough_shaped", "  same, answer-shaped result"),
    ("sdk", "(direct SDK call from the client process)"),
    ("hit", "optimized_complete, cache hit (all)"),
    ("hit_exact", "  exact hits (the same question)"),
    ("hit_semantic", "  semantic hits (a paraphrase)"),
    ("miss", "optimized_complete, cache miss"),
    ("engine_hit", "(latency_ms field, hit; before ledger write)"),
    ("engine_miss", "(latency_ms field, miss; before ledger write)"),
)


def summarise(samples: dict[str, list[float]], problems: list[str]) -> dict:
    rows = {}
    for key, _ in ROWS:
        values = samples[key]
        rows[key] = {p: round(percentile(values, q), 3) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        rows[key]["mean"] = round(statistics.fmean(values), 3) if values else None
        rows[key]["n"] = len(values)

    def minus(a: str, b: str) -> dict:
        return {p: round(rows[a][p] - rows[b][p], 3) for p in ("p50", "p95", "p99")}

    overhead = {
        "hit": minus("hit", "noop_shaped"), "miss": minus("miss", "passthrough_shaped"),
        "hit_vs_bare": minus("hit", "noop"), "miss_vs_bare": minus("miss", "passthrough"),
        "semantic_hit_vs_bare": minus("hit_semantic", "noop"),
        "hit_vs_our_transport": minus("hit", "ours_noop"),
        "semantic_hit_vs_our_transport": minus("hit_semantic", "ours_noop"),
        "miss_vs_our_transport": minus("miss", "ours_passthrough"),
    }
    verdict = {
        "hit_p50_within_1ms": overhead["hit"]["p50"] <= TARGETS_MS["hit_p50"],
        "miss_p50_within_2ms": overhead["miss"]["p50"] <= TARGETS_MS["miss_p50"],
        "hit_p99_within_10ms": overhead["hit"]["p99"] <= TARGETS_MS["p99"],
        "miss_p99_within_10ms": overhead["miss"]["p99"] <= TARGETS_MS["p99"],
        "no_unexpected_outcomes": not problems,
    }
    bare = {
        "hit_p50_within_1ms": overhead["hit_vs_bare"]["p50"] <= TARGETS_MS["hit_p50"],
        "semantic_hit_p50_within_1ms": overhead["semantic_hit_vs_bare"]["p50"] <= TARGETS_MS["hit_p50"],
        "miss_p50_within_2ms": overhead["miss_vs_bare"]["p50"] <= TARGETS_MS["miss_p50"],
        "p99_within_10ms": max(overhead["hit_vs_bare"]["p99"], overhead["miss_vs_bare"]["p99"]) <= TARGETS_MS["p99"],
    }
    same_transport = {
        "hit_p50_within_1ms": overhead["hit_vs_our_transport"]["p50"] <= TARGETS_MS["hit_p50"],
        "semantic_hit_p50_within_1ms": overhead["semantic_hit_vs_our_transport"]["p50"] <= TARGETS_MS["hit_p50"],
        "miss_p50_within_2ms": overhead["miss_vs_our_transport"]["p50"] <= TARGETS_MS["miss_p50"],
        "p99_within_10ms": max(overhead["hit_vs_our_transport"]["p99"],
                               overhead["miss_vs_our_transport"]["p99"]) <= TARGETS_MS["p99"],
    }
    return {"rows": rows, "overhead_ms": overhead, "targets_ms": TARGETS_MS, "verdict": verdict,
            "verdict_vs_bare_floors": bare, "verdict_vs_our_transport": same_transport, "problems": problems[:10],
            "calls": len(samples["miss"])}


async def measure_sessions(turns: int, seed: int = 9) -> dict:
    """Long agent-session turns (the whole conversation re-sent each turn, with
    tools): optimized_complete (pruning, prompt-cache shaping, routing) against a
    floor tool that forwards the same conversation with the SDK, interleaved."""
    from mcp import Client

    from bench.conversations import generate_session
    from bench.workloads import _session_tools

    rng = random.Random(seed)
    sim = start_sim()
    wd = workdir("overhead-sessions")
    env = server_env(wd, sim.base_url, bench_config())
    samples: dict[str, list[float]] = {"session_floor": [], "session": [], "engine_session": [], "pruned": []}
    try:
        async with Client(stdio_params(env)) as tars, Client(noop_params(env)) as floor:
            # warm both processes as the hit/miss measurement does (imports, the
            # tokenizer's first load, connections): one turn each, not timed
            warm = generate_session(seed - 1, target_tokens=5_000, output_scale=0.5)
            warm_args = {"messages": warm.messages[:1], "system": warm.system, "max_tokens": 256}
            await tars.call_tool("optimized_complete", warm_args)
            await floor.call_tool("passthrough_messages", warm_args)
            s = 0
            while len(samples["session"]) < turns:
                session = generate_session(seed + s, target_tokens=45_000, output_scale=0.5)
                tools = _session_tools(session.messages)
                for i, message in enumerate(session.messages):
                    if message["role"] != "user" or len(samples["session"]) >= turns:
                        continue
                    args = {"messages": session.messages[: i + 1], "system": session.system, "tools": tools,
                            "max_tokens": 1024, "session_id": f"overhead-{s}"}
                    order = ["tars", "floor"]
                    rng.shuffle(order)
                    for who in order:
                        if who == "floor":
                            ms, r = await _timed(floor.call_tool("passthrough_messages", args))
                            samples["session_floor"].append(ms)
                        else:
                            ms, r = await _timed(tars.call_tool("optimized_complete", args))
                            samples["session"].append(ms)
                            if not r.is_error:
                                samples["engine_session"].append(r.structured_content["latency_ms"])
                                samples["pruned"].append(1.0 if r.structured_content["pruning"] else 0.0)
                s += 1
    finally:
        sim.stop()
        remove_workdir(wd)
    rows = {k: {p: round(percentile(v, q), 3) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))} | {"n": len(v)}
            for k, v in samples.items() if k != "pruned"}
    over = {p: round(rows["session"][p] - rows["session_floor"][p], 3) for p in ("p50", "p95", "p99")}
    return {"rows": rows, "overhead_ms": over, "pruned_share": statistics.fmean(samples["pruned"]) if samples["pruned"] else 0.0}


def session_table(result: dict) -> str:
    r, o = result["rows"], result["overhead_ms"]
    lines = [f"Long agent-session turns (45K-token sessions re-sent every turn, with tools; "
             f"{result['pruned_share']:.0%} of turns pruned), ms"]
    for key, label in (("session_floor", "floor: tool forwarding the conversation"),
                       ("session", "optimized_complete, session turn"),
                       ("engine_session", "(engine time inside the server)")):
        lines.append(f"{label:<44} {r[key]['p50']:>8.2f} {r[key]['p95']:>8.2f} {r[key]['p99']:>8.2f} {r[key]['n']:>6}")
    lines.append(f"{'overhead of a session turn':<44} {o['p50']:>8.2f} {o['p95']:>8.2f} {o['p99']:>8.2f}   (informative: no target)")
    return "\n".join(lines)


def table(result: dict) -> str:
    lines = ["Round trip per call over stdio, ms (all paths interleaved in one run)",
             f"{'path':<44} {'p50':>8} {'p95':>8} {'p99':>8} {'n':>6}"]
    for key, label in ROWS:
        r = result["rows"][key]
        lines.append(f"{label:<44} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} {r['n']:>6}")
    o = result["overhead_ms"]
    for key, label in (("hit", "overhead of a hit (vs answer-shaped no-op)"),
                       ("miss", "overhead of a miss (vs answer-shaped SDK)"),
                       ("hit_vs_bare", "overhead of a hit (vs bare no-op)"),
                       ("miss_vs_bare", "overhead of a miss (vs bare no-op + SDK)"),
                       ("semantic_hit_vs_bare", "overhead of a semantic hit (vs bare no-op)"),
                       ("hit_vs_our_transport", "hit vs bare no-op on our transport"),
                       ("semantic_hit_vs_our_transport", "semantic hit vs the same"),
                       ("miss_vs_our_transport", "miss vs no-op + SDK on our transport")):
        lines.append(f"{label:<44} {o[key]['p50']:>8.2f} {o[key]['p95']:>8.2f} {o[key]['p99']:>8.2f}")
    v, b = result["verdict"], result["verdict_vs_bare_floors"]
    lines.append("targets vs answer-shaped floors: hit p50 <= 1 ms {} | miss p50 <= 2 ms {} | p99 <= 10 ms: hit {}, miss {}{}".format(
        _ok(v["hit_p50_within_1ms"]), _ok(v["miss_p50_within_2ms"]), _ok(v["hit_p99_within_10ms"]),
        _ok(v["miss_p99_within_10ms"]), "" if v["no_unexpected_outcomes"] else f" | PROBLEMS: {result['problems'][:3]}"))
    lines.append("targets vs bare floors:           hit p50 <= 1 ms {} (semantic hits alone: {}) | miss p50 <= 2 ms {} | "
                 "p99 <= 10 ms {}".format(_ok(b["hit_p50_within_1ms"]), _ok(b["semantic_hit_p50_within_1ms"]),
                                          _ok(b["miss_p50_within_2ms"]), _ok(b["p99_within_10ms"])))
    o = result["verdict_vs_our_transport"]
    lines.append("targets vs floors on our transport: hit p50 <= 1 ms {} (semantic hits alone: {}) | miss p50 <= 2 ms {} | "
                 "p99 <= 10 ms {}".format(_ok(o["hit_p50_within_1ms"]), _ok(o["semantic_hit_p50_within_1ms"]),
                                          _ok(o["miss_p50_within_2ms"]), _ok(o["p99_within_10ms"])))
    return "\n".join(lines)


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def run(quick: bool = False, calls: int | None = None) -> dict:
    calls = calls or (150 if quick else 1000)
    result = asyncio.run(measure(calls, warmup=10 if quick else 30))
    print(table(result), flush=True)
    result["sessions"] = asyncio.run(measure_sessions(40 if quick else 150))
    print(session_table(result["sessions"]), flush=True)
    path = write_json("overhead", result)
    print(f"wrote {path}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="timed calls per path (default 1000; --quick 150)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--noop-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--noop-server-our-transport", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.noop_server:
        noop_server().run()
        return 0
    if args.noop_server_our_transport:
        from mcp_tars import stdio

        stdio.run(noop_server())
        return 0
    result = run(args.quick, args.calls)
    return 0 if all(result["verdict"].values()) and all(result["verdict_vs_bare_floors"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
