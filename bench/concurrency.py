"""Concurrency: several server processes sharing one database, all at once.

    python -m bench.concurrency [--processes 4] [--calls 500] [--quick]

Starts N real ``mcp-tars serve`` processes over stdio, all with the same
``MCP_TARS_DB``, against one simulated API, and drives them at the same time,
``--calls`` calls each: questions from a shared pool (so one process answers
from entries another one stored, and two processes race to store the same
answer) and questions of their own. Then checks, from the database file and
the sim's bill:

* no lost ledger rows: one row per successful call, and the ledger's cost
  equals the bill;
* no "database is locked" (or any other) error, in tool results or on any
  server's stderr;
* throughput (calls per second over all processes).

Writes bench/out/concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import sqlite3
import sys
import time
from pathlib import Path

from mcp_tars.sim import RemoteSim

from bench.workloads import (
    bench_config,
    paraphrase_groups,
    remove_workdir,
    server_env,
    start_sim,
    workdir,
    write_json,
)


def _server_params(env: dict, stderr_path: Path):
    from mcp import StdioServerParameters

    command = f"exec {shlex.quote(sys.executable)} -m mcp_tars serve 2>>{shlex.quote(str(stderr_path))}"
    return StdioServerParameters(command="/bin/sh", args=["-c", command], env=env)


async def _drive(n: int, env: dict, stderr_path: Path, prompts: list[str], results: dict) -> None:
    from mcp import Client

    ok = errors = hits = 0
    messages: list[str] = []
    async with Client(_server_params(env, stderr_path), read_timeout_seconds=300) as client:
        for prompt in prompts:
            r = await client.call_tool("optimized_complete", {"prompt": prompt, "max_tokens": 300})
            if r.is_error:
                errors += 1
                messages.append(r.content[0].text[:300])
            else:
                ok += 1
                hits += r.structured_content["source"] == "cache"
    results[n] = {"ok": ok, "errors": errors, "cache_hits": hits, "messages": messages[:5]}


def run(processes: int = 4, calls: int = 500, seed: int = 3) -> dict:
    rng = random.Random(seed)
    groups, _ = paraphrase_groups()
    shared = [t for texts in groups.values() for t in texts]
    rng.shuffle(shared)
    shared = shared[:300]
    wd = workdir("concurrency")
    sim = start_sim()
    control = RemoteSim(sim.base_url, timeout=60)
    db = wd / "shared.db"
    results: dict[int, dict] = {}
    plans = []
    for p in range(processes):
        own = [f"Process {p} asks question number {i}: what is {i} times {p + 7}?" for i in range(calls)]
        plan = [rng.choice(shared) if rng.random() < 0.6 else own[i] for i in range(calls)]
        plans.append(plan)
    stderr_paths = [wd / f"server-{p}.stderr" for p in range(processes)]
    try:
        env = server_env(wd, sim.base_url, bench_config(), db_path=db)

        async def main() -> float:
            began = time.perf_counter()
            await asyncio.gather(*(_drive(p, env, stderr_paths[p], plans[p], results) for p in range(processes)))
            return time.perf_counter() - began

        seconds = asyncio.run(main())
        bill = control.bill()
    finally:
        sim.stop()
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT COUNT(*), COUNT(DISTINCT response_id), COALESCE(SUM(cost_usd), 0), "
                         "SUM(source = 'api'), SUM(source = 'cache') FROM ledger").fetchone()
    stderr_text = "".join(p.read_text("utf-8", errors="replace") for p in stderr_paths if p.exists())
    remove_workdir(wd)
    ok = sum(r["ok"] for r in results.values())
    errors = sum(r["errors"] for r in results.values())
    locked = stderr_text.lower().count("database is locked") + sum(
        m.lower().count("locked") for r in results.values() for m in r["messages"])
    out = {
        "processes": processes, "calls_per_process": calls, "calls": processes * calls, "ok": ok,
        "tool_errors": errors, "database_locked": locked, "ledger_rows": rows[0], "distinct_response_ids": rows[1],
        "lost_ledger_rows": ok - rows[0], "api_rows": rows[3], "cache_rows": rows[4],
        "bill_lines": len(bill["lines"]), "ledger_cost_usd": rows[2], "bill_usd": bill["total_usd"],
        "ledger_minus_bill_usd": rows[2] - bill["total_usd"], "seconds": round(seconds, 2),
        "calls_per_second": round(processes * calls / seconds, 1),
        "stderr_tail": stderr_text[-2000:], "per_process": results,
    }
    out["passed"] = (out["lost_ledger_rows"] == 0 and errors == 0 and locked == 0 and rows[0] == rows[1]
                     and out["api_rows"] == out["bill_lines"] and abs(out["ledger_minus_bill_usd"]) < 1e-9)
    print(table(out), flush=True)
    print(f"wrote {write_json('concurrency', out)}")
    return out


def table(r: dict) -> str:
    return "\n".join([
        f"{r['processes']} server processes sharing one SQLite file, {r['calls_per_process']} calls each, all at once",
        f"{'calls':>7} {'ok':>7} {'errors':>7} {'locked':>7} {'ledger rows':>12} {'lost':>5} {'api rows':>9} "
        f"{'bill lines':>11} {'cache rows':>11} {'ledger - bill USD':>18} {'calls/s':>8}",
        f"{r['calls']:>7} {r['ok']:>7} {r['tool_errors']:>7} {r['database_locked']:>7} {r['ledger_rows']:>12} "
        f"{r['lost_ledger_rows']:>5} {r['api_rows']:>9} {r['bill_lines']:>11} {r['cache_rows']:>11} "
        f"{r['ledger_minus_bill_usd']:>18.2e} {r['calls_per_second']:>8}",
        "passed: no lost rows, no errors, no 'database is locked', ledger = bill" if r["passed"] else
        f"FAILED: {r['per_process']}\n{r['stderr_tail'][-800:]}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=500, help="calls per process")
    parser.add_argument("--quick", action="store_true", help="(same as the full run: it takes well under a minute)")
    args = parser.parse_args(argv)
    return 0 if run(args.processes, args.calls)["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
