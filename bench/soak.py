"""Soak test: many calls through the HTTP transport against a faulty simulated API.

    python -m bench.soak                 # 10,000 calls, 20 concurrent clients, 5% faults
    python -m bench.soak --calls 500     # a quick run

What runs (three processes, all on loopback):
  - the simulated Anthropic API (``python -m mcp_tars.sim``), failing each API
    request with probability ``--fault-rate`` (429, 529, 500, connection reset,
    and an overloaded_error inside a streaming 200 for the streamed calls);
  - the real server, ``mcp-tars serve --transport http``, with a fresh ledger;
  - this process: ``--clients`` MCP client sessions over streamable HTTP, each
    making its share of ``optimized_complete`` calls one after another. About
    1 call in 10 repeats an earlier prompt (a response-cache hit) and 1 in 10
    streams.

Checked at the end, from the ledger file and the simulator's bill:
  ledger rows == successful calls (every answer recorded once),
  API rows == billed responses, with the same response ids (nothing billed is
  missing, nothing unbilled is recorded), no duplicate response id in the bill
  or the ledger. Memory: the server's RSS is sampled every ``--sample-seconds``;
  "flat" compares the mean RSS over the last tenth of the calls with the mean
  over the second tenth (the first tenth is warm-up).

Prints a table and writes bench/out/soak.json. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mcp_tars.store import ledger, open_store
from mcp_tars.store.schema import exact_usd

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
API_KEY = "sk-ant-soak-test-key"
FAULT_KINDS = ["429", "529", "500", "reset", "stream_overloaded"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise SystemExit("the server did not listen in time")
        time.sleep(0.05)


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float):
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, RSS bytes, calls done)
        self.calls_done = 0
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                rss = self.process.memory_info().rss
            except Exception:  # noqa: BLE001 - the server has exited
                return
            self.samples.append((time.monotonic() - self._t0, rss, self.calls_done))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _prompt(i: int, rng: random.Random) -> str:
    topics = ["DNS resolution", "TCP slow start", "B-trees", "garbage collection", "TLS handshakes",
              "consistent hashing", "bloom filters", "vector clocks", "write-ahead logs", "rate limiting"]
    return f"Request {i}: in two sentences, explain {rng.choice(topics)} to a new engineer (ticket {i * 7919 % 100003})."


async def run_clients(url: str, calls: int, clients: int, sampler: RssSampler, seed: int) -> dict:
    import anyio
    from mcp import Client

    rng = random.Random(seed)
    plan = []
    for i in range(calls):
        repeat = i > 50 and rng.random() < 0.10
        prompt = plan[rng.randrange(len(plan))]["prompt"] if repeat else _prompt(i, rng)
        plan.append({"prompt": prompt, "max_tokens": 200, "stream": rng.random() < 0.10,
                     "session_id": f"soak-{i % 97}"})
    shares = [plan[k::clients] for k in range(clients)]
    ok = errors = 0
    error_messages: dict[str, int] = {}
    latencies: list[float] = []

    async def one_client(share: list[dict]) -> None:
        nonlocal ok, errors
        async with Client(url) as client:
            for args in share:
                started = time.perf_counter()
                with anyio.fail_after(300):
                    r = await client.call_tool("optimized_complete", args)
                latencies.append(time.perf_counter() - started)
                if r.is_error:
                    errors += 1
                    key = r.content[0].text[:90] if r.content else "?"
                    error_messages[key] = error_messages.get(key, 0) + 1
                else:
                    ok += 1
                sampler.calls_done += 1

    async with anyio.create_task_group() as tg:
        for share in shares:
            tg.start_soon(one_client, share)
    latencies.sort()
    return {"ok": ok, "errors": errors, "error_messages": error_messages,
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)

    from mcp_tars.config import Config
    from mcp_tars.sim import SimProcess

    work = Path(tempfile.mkdtemp(prefix="mcp-tars-soak-"))
    db = work / "soak.db"
    config = Config().model_dump(mode="json")
    config["api"].update({"max_retries": 4, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05})
    config["batch"]["worker_enabled"] = False
    config["monitoring"]["metrics_log"] = str(work / "metrics.log")
    (work / "performance-config.json").write_text(json.dumps(config), "utf-8")

    sim_env = {**os.environ}
    with SimProcess.start("--no-request-bodies", "--seed", str(args.seed), env=sim_env) as sim:
        sim.control.fault_rate(args.fault_rate, kinds=FAULT_KINDS, seed=args.seed)
        port = _free_port()
        env = {**os.environ, "ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": API_KEY,
               "MCP_TARS_DB": str(db), "MCP_TARS_CONFIG": str(work / "performance-config.json"),
               "ANTHROPIC_CONFIG_DIR": str(work), "MCP_TARS_STRICT_RESPONSES": "1"}
        env.pop("MCP_TARS_TOKEN", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "mcp_tars", "serve", "--transport", "http", "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stderr=open(work / "server.stderr", "wb"),
        )
        try:
            _wait_listening(port, server)
            sampler = RssSampler(server.pid, args.sample_seconds)
            sampler.start()
            started = time.monotonic()
            outcome = asyncio.run(run_clients(f"http://127.0.0.1:{port}/mcp", args.calls, args.clients,
                                              sampler, args.seed))
            elapsed = time.monotonic() - started
            sampler.stop()
            requests = sim.control.requests()["requests"]
            bill = sim.control.bill()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    message_requests = [r for r in requests if r["path"] == "/v1/messages"]
    billed_ids = [line["response_id"] for line in bill["lines"]]
    with open_store(db) as store:
        rows = [(r["response_id"], r["source"], r["cost_picousd"]) for r in ledger.rows(store)]
    dup_ledger = len(rows) - len({r[0] for r in rows})  # the UNIQUE index makes it 0; counted, not assumed
    api_rows = [r for r in rows if r[1] == "api"]
    ledger_api_usd = float(sum(exact_usd(r[2] or 0) for r in api_rows))
    missing = set(billed_ids) - {r[0] for r in api_rows}
    unbilled = {r[0] for r in api_rows} - set(billed_ids)
    rss = [s[1] for s in sampler.samples]
    # warm-up (imports, first sessions, caches filling) is the first tenth of the
    # calls; compare the second tenth with the last tenth
    second_tenth = [b for _, b, n in sampler.samples if args.calls * 0.1 <= n <= args.calls * 0.2] or rss[:1]
    last_tenth = [b for _, b, n in sampler.samples if n >= args.calls * 0.9] or rss[-1:]
    first = statistics.fmean(second_tenth)
    last = statistics.fmean(last_tenth)
    growth = (last - first) / first

    result = {
        "calls": args.calls, "clients": args.clients, "fault_rate": args.fault_rate,
        "seconds": round(elapsed, 1), "calls_per_second": round(args.calls / elapsed, 1),
        "answered": outcome["ok"], "errors": outcome["errors"], "error_messages": outcome["error_messages"],
        "api_requests": len(message_requests),
        "faults_injected": len(message_requests) - len(billed_ids),
        "billed_responses": len(billed_ids),
        "ledger_rows": len(rows), "ledger_api_rows": len(api_rows),
        "ledger_cache_rows": sum(1 for r in rows if r[1] == "cache"),
        "duplicates_ledger": dup_ledger, "duplicates_bill": len(billed_ids) - len(set(billed_ids)),
        "billed_not_in_ledger": len(missing), "in_ledger_not_billed": len(unbilled),
        "billed_usd": round(bill["total_usd"], 6), "ledger_api_usd": round(ledger_api_usd, 6),
        "p50_ms": outcome["p50_ms"], "p99_ms": outcome["p99_ms"],
        "rss_start_mb": round(rss[0] / 2**20, 1), "rss_peak_mb": round(max(rss) / 2**20, 1),
        "rss_first_tenth_mb": round(first / 2**20, 1), "rss_last_tenth_mb": round(last / 2**20, 1),
        "rss_growth_pct": round(100 * growth, 1),
        "rss_samples": [(round(t, 1), round(b / 2**20, 1), n) for t, b, n in sampler.samples[:: max(1, len(sampler.samples) // 20)]],
    }
    checks = {
        "every answer is one ledger row": result["ledger_rows"] == result["answered"],
        "every billed response is in the ledger": not missing,
        "nothing unbilled in the ledger": not unbilled,
        "no duplicates": dup_ledger == 0 and result["duplicates_bill"] == 0,
        "ledger cost == bill": abs(ledger_api_usd - bill["total_usd"]) < 1e-6,
        "memory flat (last tenth of the calls within 15% of the second tenth)": growth < 0.15,
    }
    result["checks"] = checks

    rows_out = [
        ("calls", f"{args.calls:,} from {args.clients} concurrent clients over HTTP"),
        ("time", f"{result['seconds']} s ({result['calls_per_second']} calls/s; p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms)"),
        ("API requests", f"{result['api_requests']:,}"),
        ("faults injected", f"{result['faults_injected']:,} ({100 * result['faults_injected'] / max(1, result['api_requests']):.1f}% of API requests)"),
        ("answered / errors", f"{result['answered']:,} / {result['errors']:,}"),
        ("ledger rows", f"{result['ledger_rows']:,} ({result['ledger_api_rows']:,} api + {result['ledger_cache_rows']:,} cache)"),
        ("billed responses", f"{result['billed_responses']:,}"),
        ("billed but not in ledger", f"{result['billed_not_in_ledger']}"),
        ("in ledger but not billed", f"{result['in_ledger_not_billed']}"),
        ("duplicate response ids", f"{result['duplicates_ledger']} in ledger, {result['duplicates_bill']} in bill"),
        ("billed vs ledger (USD)", f"{result['billed_usd']:.6f} vs {result['ledger_api_usd']:.6f}"),
        ("server RSS", f"start {result['rss_start_mb']} MB, peak {result['rss_peak_mb']} MB, "
                       f"calls 10-20% {result['rss_first_tenth_mb']} MB -> last 10% {result['rss_last_tenth_mb']} MB "
                       f"({result['rss_growth_pct']:+.1f}%)"),
    ]
    width = max(len(k) for k, _ in rows_out)
    print(f"python -m bench.soak --calls {args.calls} --clients {args.clients} --fault-rate {args.fault_rate}")
    for k, v in rows_out:
        print(f"  {k:<{width}}  {v}")
    print("  RSS over the run (s, MB, calls done): " + ", ".join(f"{t:g}s {m}MB {n}" for t, m, n in result["rss_samples"]))
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAIL'}] {name}")
    if outcome["error_messages"]:
        print("  errors:", json.dumps(outcome["error_messages"], indent=1))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "soak.json").write_text(json.dumps(result, indent=2), "utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
