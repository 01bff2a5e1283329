"""Concurrency: several server processes, on one or more (simulated) machines,
sharing one database, all at once.

    python -m bench.concurrency                                # 4 processes, one SQLite file
    python -m bench.concurrency --backend postgres --hosts 2   # 4 processes on 2 hosts, one PostgreSQL
    python -m bench.concurrency --both                         # both of the above, one table
    options: [--processes 4] [--calls 500] [--tasks 50] [--postgres URL]

Starts N real ``mcp-tars serve`` processes over stdio, all with the same
``MCP_TARS_DB``, against one simulated API, and drives them at the same time:
``--calls`` calls each, from a shared pool of questions (so one process
answers from entries another one stored, and two processes race to store the
same answer) and questions of their own, with ``--tasks`` deferred tasks
interleaved, each followed by ``process_deferred`` (forced), and at the end
``process_deferred`` until the queue is empty: the processes race to claim,
submit, poll and collect each other's tasks (one tenant: one API key).

With ``--hosts H``, the processes run on H simulated machines: each host is a
process tree of its own in its own PID and UTS namespaces (``unshare``, as
root), with its own hostname; pids repeat across hosts, so nothing may judge
another host's process through /proc. Only a database server can be shared
that way: ``--hosts`` > 1 needs PostgreSQL.

Then checks, from the database and the sim's bill:

* no lost ledger rows: one row per successful call and per deferred task;
* no duplicates: every billed response exactly once in the ledger;
* every deferred task succeeded, was sent in exactly one batch request and
  has exactly one ledger row;
* the ledger's cost equals the bill;
* no error in tool results or on any server's stderr ("database is locked",
  deadlocks, tracebacks).

The questions are ours, generated here. Writes bench/out/concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.workloads import (
    BENCH_API_KEY,
    bench_config,
    remove_workdir,
    server_env,
    start_sim,
    workdir,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL_FILE = ROOT / ".ci" / "postgres-url"
FAILURE_WORDS = ("database is locked", "deadlock", "traceback", "storeerror")


# -- the plan -------------------------------------------------------------------------------------


def plans(processes: int, calls: int, tasks: int, seed: int) -> list[list[dict]]:
    """Each process's steps: ("call", prompt) or ("defer", prompt)."""
    rng = random.Random(seed)
    shared = [f"Shared question {k}: what is the capital of country number {k} in our list?" for k in range(60)]
    out = []
    for p in range(processes):
        steps = [{"op": "call", "prompt": rng.choice(shared) if rng.random() < 0.6 else
                  f"Process {p} asks question number {i}: what is {i} times {p + 7}?"} for i in range(calls)]
        every = max(1, calls // max(1, tasks))
        for t in range(tasks):
            steps.insert(min(len(steps), t * (every + 1)),
                         {"op": "defer", "prompt": f"Process {p}, deferred task {t}: summarise note {t} in one line."})
        out.append(steps)
    return out


# -- one host: drive its servers (runs in the host's own namespaces) ---------------------------------


def _server_params(env: dict, stderr_path: Path):
    from mcp import StdioServerParameters

    command = f"exec {shlex.quote(sys.executable)} -m mcp_tars serve 2>>{shlex.quote(str(stderr_path))}"
    return StdioServerParameters(command="/bin/sh", args=["-c", command], env=env)


async def _drive_server(env: dict, stderr_path: Path, steps: list[dict]) -> dict:
    from mcp import Client

    ok = errors = hits = passes = 0
    messages: list[str] = []
    task_ids: list[str] = []
    async with Client(_server_params(env, stderr_path), read_timeout_seconds=300) as client:
        for step in steps:
            if step["op"] == "call":
                r = await client.call_tool("optimized_complete", {"prompt": step["prompt"], "max_tokens": 300})
            else:
                r = await client.call_tool("defer_task", {"prompt": step["prompt"], "max_tokens": 200,
                                                          "priority": "normal", "max_wait_seconds": 86400})
            if r.is_error:
                errors += 1
                messages.append(r.content[0].text[:300])
            elif step["op"] == "call":
                ok += 1
                hits += r.structured_content["source"] == "cache"
            else:
                task_ids.append(r.structured_content["task_id"])
                # send it now: the processes race to claim, submit and collect each other's tasks
                r = await client.call_tool("process_deferred", {"force": True})
                if r.is_error:
                    errors += 1
                    messages.append(r.content[0].text[:300])
        for passes in range(1, 31):  # until this process sees nothing left to do (bounded)
            r = await client.call_tool("process_deferred", {"force": True})
            if r.is_error:
                errors += 1
                messages.append(r.content[0].text[:300])
                continue
            if r.structured_content["queued"] == 0 and r.structured_content["pending_batches"] == 0:
                break
    return {"ok": ok, "errors": errors, "cache_hits": hits, "task_ids": task_ids, "passes": passes,
            "messages": messages[:5], "host": os.uname().nodename, "pid_of_driver": os.getpid()}


def drive_host(spec_path: Path) -> None:
    """The body of one simulated host: its servers, all at once; results to spec["out"]."""
    spec = json.loads(spec_path.read_text())

    async def main() -> list[dict]:
        return await asyncio.gather(*(_drive_server(spec["env"], Path(spec["stderr"][i]), steps)
                                      for i, steps in enumerate(spec["plans"])))

    results = asyncio.run(main())
    Path(spec["out"]).write_text(json.dumps(results))


def unshare_works() -> bool:
    """Whether this machine can give a process tree its own PID and UTS namespaces (root, Linux)."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", "hostname sim-check"],
                          capture_output=True, timeout=30)
    return done.returncode == 0


def _host_command(spec_path: Path, host: str | None) -> list[str]:
    driver = [sys.executable, "-m", "bench.concurrency", "--drive", str(spec_path)]
    if host is None:
        return driver
    return ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", 'hostname "$0" && exec "$@"', host,
            *driver]


# -- the run ---------------------------------------------------------------------------------------


def postgres_server_url() -> str | None:
    url = os.environ.get("MCP_TARS_TEST_POSTGRES_URL")
    if not url and POSTGRES_URL_FILE.exists():
        url = POSTGRES_URL_FILE.read_text().strip()
    return url or None


def fresh_postgres_schema(server_url: str, prefix: str) -> tuple[str, callable]:
    """A URL whose tables live in a new schema of ``server_url``, and the function that drops it."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return f"{server_url}{'&' if '?' in server_url else '?'}options=-csearch_path%3D{schema}", drop


def run(processes: int = 4, calls: int = 500, tasks: int = 50, *, db_url: str | None = None, hosts: int = 1,
        seed: int = 3, verbose: bool = True) -> dict:
    """Run the workload; ``db_url`` None is a fresh SQLite file. Returns the figures and ``passed``."""
    from mcp_tars.engine import tenant_of
    from mcp_tars.store import ledger, open_store
    from mcp_tars.store import tasks as task_store
    from mcp_tars.store.schema import exact_usd

    if processes % hosts:
        raise ValueError(f"{processes} processes do not split evenly over {hosts} hosts")
    wd = workdir("concurrency")
    db = db_url or str(wd / "shared.db")
    backend = "postgres" if db.startswith("postgresql:") else "sqlite"
    if hosts > 1 and backend == "sqlite":
        raise ValueError("several hosts cannot share one SQLite file: use --backend postgres")
    open_store(db).close()  # migrated once, before the servers race to
    sim = start_sim()
    control = sim.control
    all_plans = plans(processes, calls, tasks, seed)
    per_host = processes // hosts
    stderr_paths = [wd / f"server-{p}.stderr" for p in range(processes)]
    env = server_env(wd, sim.base_url, bench_config(), db_path=db)
    hosts_out: list[list[dict]] = []
    try:
        launched = []
        for h in range(hosts):
            spec = wd / f"host-{h}.json"
            out = wd / f"host-{h}.out.json"
            spec.write_text(json.dumps({"env": env, "plans": all_plans[h * per_host:(h + 1) * per_host],
                                        "stderr": [str(p) for p in stderr_paths[h * per_host:(h + 1) * per_host]],
                                        "out": str(out)}))
            name = f"sim-host-{h}" if hosts > 1 else None
            child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            launched.append((subprocess.Popen(_host_command(spec, name), cwd=ROOT, env=child_env,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out))
        began = time.perf_counter()
        driver_output = []
        for proc, out in launched:
            text, _ = proc.communicate(timeout=1800)
            driver_output.append(text.decode("utf-8", "replace")[-2000:])
            hosts_out.append(json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else [])
        seconds = time.perf_counter() - began
        bill = control.bill()
        sim_batches = control.batches()
    finally:
        sim.stop()

    results = [r for host in hosts_out for r in host]
    tenant = tenant_of(BENCH_API_KEY, None)
    with open_store(db) as store:
        rows = ledger.rows(store)
        task_ids = [t for r in results for t in r["task_ids"]]
        statuses = Counter((task_store.get_task(store, tenant, t) or {}).get("status") for t in task_ids)
        submissions = {t: len(task_store.submissions(store, t)) for t in task_ids}
    stderr_text = "".join(p.read_text("utf-8", errors="replace") for p in stderr_paths if p.exists())
    remove_workdir(wd)

    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    failures = sum(stderr_text.lower().count(w) for w in FAILURE_WORDS) + sum(
        m.lower().count(w) for r in results for m in r["messages"] for w in FAILURE_WORDS)
    billed = Counter(line["response_id"] for line in bill["lines"] if not line["batch"])
    billed_tasks = Counter(line["custom_id"] for line in bill["lines"] if line["batch"])
    in_ledger = Counter(r["response_id"] for r in rows)
    sent = Counter(req["custom_id"] for b in sim_batches.values() for req in b["requests"])
    batch_rows = Counter(r["task_id"] for r in rows if r["source"] == "batch")
    ledger_usd = sum(exact_usd(r["cost_picousd"] or 0) for r in rows)
    out = {
        "backend": backend, "hosts": hosts, "host_names": sorted({r["host"] for r in results}),
        "processes": processes, "calls_per_process": calls, "tasks_per_process": tasks,
        "calls": processes * calls, "ok": ok, "tool_errors": errors, "failures_logged": failures,
        "ledger_rows": len(rows), "lost_ledger_rows": ok + len(task_ids) - len(rows),
        "duplicate_rows": sum(n - 1 for n in in_ledger.values()),
        "billed_not_in_ledger": sum(1 for rid in billed if rid not in in_ledger),
        "billed_twice": sum(n - 1 for n in billed.values()) + sum(n - 1 for n in billed_tasks.values()),
        "api_rows": sum(r["source"] == "api" for r in rows), "cache_rows": sum(r["source"] == "cache" for r in rows),
        "bill_lines": len(bill["lines"]),
        "tasks": len(task_ids), "tasks_succeeded": statuses.get("succeeded", 0),
        "tasks_sent_once": sum(1 for t in task_ids if sent[t] == 1 and submissions[t] == 1 and billed_tasks[t] == 1),
        "tasks_with_one_ledger_row": sum(1 for t in task_ids if batch_rows[t] == 1),
        "task_requests_sent": sum(sent.values()), "batches": len(sim_batches),
        "ledger_cost_usd": float(ledger_usd), "bill_usd": bill["total_usd"],
        "ledger_minus_bill_usd": float(ledger_usd) - bill["total_usd"], "seconds": round(seconds, 2),
        "calls_per_second": round((processes * calls + len(task_ids)) / seconds, 1),
        "stderr_tail": stderr_text[-2000:], "driver_output": driver_output if not all(hosts_out) else [],
        "per_process": [{k: v for k, v in r.items() if k != "task_ids"} for r in results],
    }
    out["passed"] = (len(results) == processes and out["lost_ledger_rows"] == 0 and errors == 0 and failures == 0
                     and out["duplicate_rows"] == 0 and out["billed_not_in_ledger"] == 0 and out["billed_twice"] == 0
                     and out["api_rows"] == len(billed) and len(task_ids) == processes * tasks
                     and out["tasks_succeeded"] == out["tasks_sent_once"] == out["tasks_with_one_ledger_row"]
                     == out["task_requests_sent"] == len(task_ids)
                     and abs(out["ledger_minus_bill_usd"]) < 1e-9
                     and len(out["host_names"]) == (hosts if hosts > 1 else 1))
    if verbose:
        print(table([out]), flush=True)
    return out


def table(runs: list[dict]) -> str:
    head = (f"{'database':<11} {'hosts':>5} {'procs':>5} {'calls':>6} {'ok':>6} {'errors':>6} {'ledger rows':>11} "
            f"{'lost':>4} {'dupl.':>5} {'tasks':>5} {'once':>5} {'batches':>7} {'ledger - bill USD':>17} "
            f"{'calls/s':>7}  result")
    lines = [head]
    for r in runs:
        lines.append(
            f"{r['backend']:<11} {r['hosts']:>5} {r['processes']:>5} {r['calls']:>6} {r['ok']:>6} "
            f"{r['tool_errors'] + r['failures_logged']:>6} {r['ledger_rows']:>11} {r['lost_ledger_rows']:>4} "
            f"{r['duplicate_rows'] + r['billed_twice']:>5} {r['tasks']:>5} {r['tasks_sent_once']:>5} {r['batches']:>7} "
            f"{r['ledger_minus_bill_usd']:>17.2e} {r['calls_per_second']:>7}  "
            + ("passed" if r["passed"] else "FAILED"))
    lines.append("once: deferred tasks that succeeded, were sent in exactly one batch request, billed once and have "
                 "one ledger row")
    for r in runs:
        if not r["passed"]:
            lines.append(f"FAILED ({r['backend']}): {json.dumps(r['per_process'])[:1500]}\n{r['stderr_tail'][-800:]}\n"
                         + "\n".join(r["driver_output"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--both", action="store_true", help="SQLite on one host, then PostgreSQL on --hosts hosts")
    parser.add_argument("--hosts", type=int, default=None, help="simulated hosts (default 1; 2 with --both)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=500, help="calls per process")
    parser.add_argument("--tasks", type=int, default=50, help="deferred tasks per process")
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: $MCP_TARS_TEST_POSTGRES_URL or "
                                           ".ci/postgres-url); the run uses a schema of its own in it")
    parser.add_argument("--quick", action="store_true", help="(the same run: it takes well under a minute)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # internal: the body of one simulated host
    args = parser.parse_args(argv)
    if args.drive:
        drive_host(Path(args.drive))
        return 0
    runs = []
    wanted = [("sqlite", 1), ("postgres", args.hosts or 2)] if args.both else [(args.backend, args.hosts or 1)]
    for backend, hosts in wanted:
        if hosts > 1 and not unshare_works():
            print("cannot simulate several hosts here: unshare --pid --uts needs root on Linux", file=sys.stderr)
            return 2
        if backend == "sqlite":
            runs.append(run(args.processes, args.calls, args.tasks, hosts=hosts, verbose=False))
            continue
        server = args.postgres or postgres_server_url()
        if not server:
            print("no PostgreSQL: run .ci/postgres as root, or pass --postgres URL", file=sys.stderr)
            return 2
        url, drop = fresh_postgres_schema(server, "bench_concurrency")
        try:
            runs.append(run(args.processes, args.calls, args.tasks, db_url=url, hosts=hosts, verbose=False))
        finally:
            drop()
    print(table(runs), flush=True)
    print(f"wrote {write_json('concurrency', runs if len(runs) > 1 else runs[0])}")
    return 0 if all(r["passed"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
