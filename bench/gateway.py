"""Gateway overhead: the Anthropic SDK straight to the simulated API, and through ``mcp-tars gateway``, side by side.

    python -m bench.gateway [--calls N] [--runs R] [--quick] [--shape agent|claude-code]

One simulated API process and one real ``mcp-tars gateway`` process (default
configuration: ledger, exact response cache, prompt-cache TTL adoption) in
front of it. The client is the real ``anthropic`` SDK, one keep-alive client
per path. Each round times, in a random order, four calls with a fresh
question each (no cache hit helps the gateway):

* non-streaming ``messages.create``: direct, and through the gateway (time to
  the parsed message);
* streaming ``messages.create(stream=True)``: direct, and through the gateway
  (time to the first event, ``message_start``; the stream is then read to its
  end untimed);
* the same two calls through a bare TCP relay process (bytes copied both ways,
  nothing parsed): the floor of any gateway in its own process, i.e. what the
  extra process hop alone costs on this machine at this moment.

The request is agent-shaped: a system prompt, two tools and a short
conversation (about 2.5 KB of JSON); ``--shape claude-code`` sends one of
Claude Code 2.1's shape and size instead (77 KB: 24 tools, three system
blocks with markers, a mid-conversation system message, adaptive thinking,
context management, betas), generated at run time. Overhead = gateway p50 - direct p50, per
run (and, apart, gateway p50 - relay p50: the gateway's own work); the table
gives the median over the runs (each run has its own processes), with each
run's figure beside it. Target (issue 16): <= 1 ms
added at p50 to a non-streaming call and to the time to first event. The
gateway's ledger is checked against the sim's bill at the end of each run.
``--baseline DIR`` runs a second gateway from another checkout (a git
worktree of an older commit) in the same runs, interleaved with the rest, and
prints its added p50 beside this checkout's: how a change is measured side by
side (a third gateway process makes every path a little slower; compare the
two gateways with each other, not with a run without a baseline).
Writes bench/out/gateway.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anthropic

from bench.workloads import BENCH_API_KEY, bench_config, percentile, remove_workdir, server_env, start_sim, workdir, write_json
from mcp_tars.store import ledger as ledger_store
from mcp_tars.store import open_store

TARGET_MS = 1.0
REPO = Path(__file__).resolve().parent.parent  # this checkout
SYSTEM = "You are a coding agent in the user's repository. Use the tools to read files and run commands; keep answers short."
TOOLS = [
    {"name": "read_file", "description": "Read a file of the repository.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "run", "description": "Run a shell command and return its output.",
     "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
]


def request(i: int) -> dict:
    return {
        "model": "claude-sonnet-5-5", "max_tokens": 256, "system": SYSTEM, "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "The build fails on CI but passes locally; here is the log:\n" + "ERROR step 3 " * 40},
            {"role": "assistant", "content": "Which Python version does CI use?"},
            {"role": "user", "content": f"Python 3.11 (question {i}): what should I check first?"},
        ],
    }


_WORDS = ("file", "path", "command", "output", "the", "tool", "returns", "when", "user", "asks", "read", "edit",
          "must", "never", "a", "line", "range", "search", "pattern", "result", "shell", "directory", "absolute")


def _prose(seed: int, chars: int) -> str:
    words = random.Random(seed)  # its own generator: no global random state
    text: list[str] = []
    while sum(map(len, text)) + len(text) < chars:
        text.append(words.choice(_WORDS))
    return " ".join(text)


@functools.cache
def _claude_code_prefix() -> tuple[list, list]:
    """Tools and system prompt the size and shape of Claude Code 2.1's (24 tools,
    64 KB of JSON; three system blocks, 6 KB, the last two marked), generated
    here: the same every call, as Claude Code sends them."""
    tools = [{"name": f"Tool{k}", "description": _prose(k, 1900),
              "input_schema": {"type": "object", "additionalProperties": False, "required": ["arg0"],
                               "properties": {f"arg{j}": {"type": "string", "description": _prose(100 * k + j, 120)}
                                              for j in range(4)}}}
             for k in range(24)]
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cc_entrypoint=sdk-cli;"},
              {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": _prose(999, 6000), "cache_control": {"type": "ephemeral"}}]
    return tools, system


CLAUDE_CODE_HEADERS = {"anthropic-beta": "context-management-2025-06-27,mid-conversation-system-2026-04-07",
                       "x-claude-code-session-id": "bench-session"}


def claude_code_request(i: int) -> dict:
    """A Claude Code-shaped turn (76 KB of JSON): its tools and system blocks,
    a mid-conversation system message, adaptive thinking, context management,
    its markers on the last user block, a fresh question each call."""
    tools, system = _claude_code_prefix()
    return {
        "model": "claude-sonnet-5-5", "max_tokens": 64000, "system": system, "tools": tools,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>" + _prose(7, 3000) + "</system-reminder>"},
                                         {"type": "text", "text": "Why does the build fail on CI?"}]},
            {"role": "system", "content": "The user prefers short answers."},
            {"role": "assistant", "content": [{"type": "text", "text": _prose(8, 2000)}]},
            {"role": "user", "content": [{"type": "text", "text": f"Python 3.11 (question {i}): what should I check first?",
                                          "cache_control": {"type": "ephemeral"}}]},
        ],
        "extra_body": {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
                       "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                       "metadata": {"user_id": json.dumps({"session_id": "bench-session"})}},
        "extra_headers": CLAUDE_CODE_HEADERS,
        "timeout": 60,  # the SDK refuses a non-streamed 64K-token call without one
    }


SHAPES = {"agent": request, "claude-code": claude_code_request}


def run_relay(port: int, upstream_port: int) -> None:
    """A bare TCP relay on loopback: every connection piped to the upstream, byte for byte."""
    import asyncio

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not start: {log.read_text()}")
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (what the gateway itself spends, whatever the machine's load)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _start_gateway(work: Path, sim_url: str, source: str | None = None) -> tuple[subprocess.Popen, int, Path]:
    """A gateway process (``source``: another checkout's code, on PYTHONPATH) with its own database."""
    work.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = server_env(work, sim_url, bench_config())
    # The code comes from PYTHONPATH, the process runs in its work directory:
    # `python -m` puts the working directory first on sys.path, so a gateway
    # started from this checkout would import this checkout's code whatever
    # PYTHONPATH says (the baseline would be measured against itself).
    env["PYTHONPATH"] = str(Path(source).resolve()) if source else str(REPO)
    code = Path(env["PYTHONPATH"]) / "mcp_tars"
    if _package_dir(env, work) != code:
        raise RuntimeError(f"a gateway started from {env['PYTHONPATH']} would not run its code ({code})")
    log = work / "gateway.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mcp_tars", "gateway", "--port", str(port)], env=env, cwd=work,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    return proc, port, log


def _package_dir(env: dict, cwd: Path) -> Path:
    """Where a process started with ``env`` in ``cwd`` imports ``mcp_tars`` from."""
    out = subprocess.run([sys.executable, "-c", "import mcp_tars, os; print(os.path.dirname(mcp_tars.__file__))"],
                         env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).resolve()


def one_run(calls: int, seed: int, shape: str = "agent", baseline: str | None = None) -> dict:
    work = workdir("gateway")
    sim = start_sim()
    proc, port, log = _start_gateway(work, sim.base_url)
    other = _start_gateway(work / "baseline", sim.base_url, baseline) if baseline else None
    relay_port = _free_port()
    sim_port = int(sim.base_url.rsplit(":", 1)[1])
    relay = subprocess.Popen([sys.executable, "-m", "bench.gateway", "--relay", str(relay_port), str(sim_port)],
                             stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc, log)
        _wait_listening(relay_port, relay, log)
        clients = {
            "direct": anthropic.Anthropic(api_key=BENCH_API_KEY, base_url=sim.base_url, max_retries=0),
            "relay": anthropic.Anthropic(api_key=BENCH_API_KEY, base_url=f"http://127.0.0.1:{relay_port}", max_retries=0),
            "gateway": anthropic.Anthropic(api_key=BENCH_API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0),
        }
        if other is not None:
            _wait_listening(other[1], other[0], other[2])
            clients["baseline"] = anthropic.Anthropic(api_key=BENCH_API_KEY, base_url=f"http://127.0.0.1:{other[1]}",
                                                      max_retries=0)
        timings: dict[str, list[float]] = {f"{path}/{kind}": [] for path in clients for kind in ("create", "first_event")}
        rng = random.Random(seed)
        cpu_before = _cpu_seconds(proc.pid)
        n = 0
        for round_ in range(calls + 10):  # the first 10 rounds warm connections and caches, untimed
            order = [(path, kind) for path in clients for kind in ("create", "first_event")]
            rng.shuffle(order)
            for path, kind in order:
                n += 1
                params = SHAPES[shape](n)
                client = clients[path]
                started = time.perf_counter()
                if kind == "create":
                    client.messages.create(**params)
                    elapsed = time.perf_counter() - started
                else:
                    with client.messages.create(**params, stream=True) as stream:
                        first = next(iter(stream))
                        elapsed = time.perf_counter() - started
                        assert first.type == "message_start"
                        for _ in stream:
                            pass
                if round_ >= 10:
                    timings[f"{path}/{kind}"].append(elapsed * 1000)
        for client in clients.values():
            client.close()
        time.sleep(0.2)  # the gateway records a stream's row just after its last event
        cpu_ms = (_cpu_seconds(proc.pid) - cpu_before) * 1000
        store = open_store(work / "tars.db")
        try:
            ledger = {r["response_id"]: r["cost_usd"] for r in ledger_store.rows(store, source="api")}
        finally:
            store.close()
        # the sim bills the direct calls too: the gateway's are the lines with the ledger's response ids
        lines = [line for line in sim.control.bill()["lines"] if line["response_id"] in ledger]
        through = 2 * (calls + 10)  # calls through the gateway: both kinds, warm-up included
        return {"timings": timings, "ledger_rows": len(ledger), "ledger_usd": sum(ledger.values()),
                "bill_lines": len(lines), "bill_usd": sum(line["cost_usd"] for line in lines),
                "gateway_calls": through, "gateway_cpu_ms_per_call": cpu_ms / through}
    finally:
        for child in (proc, relay) + ((other[0],) if other else ()):
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sim.stop()
        remove_workdir(work)


def summarise(runs: list[dict]) -> dict:
    out: dict = {"runs": []}
    for run in runs:
        t = run["timings"]
        row = {}
        for kind in ("create", "first_event"):
            direct, relay, through = t[f"direct/{kind}"], t[f"relay/{kind}"], t[f"gateway/{kind}"]
            row[kind] = {"direct_p50": statistics.median(direct), "relay_p50": statistics.median(relay),
                         "gateway_p50": statistics.median(through),
                         "added_p50": statistics.median(through) - statistics.median(direct),
                         "added_p95": percentile(through, 95) - percentile(direct, 95),
                         "over_relay_p50": statistics.median(through) - statistics.median(relay)}
            if f"baseline/{kind}" in t:
                row[kind]["baseline_added_p50"] = statistics.median(t[f"baseline/{kind}"]) - statistics.median(direct)
        row["ledger_matches_bill"] = (run["ledger_rows"] == run["bill_lines"] == run["gateway_calls"]
                                      and abs(run["ledger_usd"] - run["bill_usd"]) < 1e-9)
        row["gateway_cpu_ms_per_call"] = run["gateway_cpu_ms_per_call"]
        out["runs"].append(row)
    out["gateway_cpu_ms_per_call"] = statistics.median(r["gateway_cpu_ms_per_call"] for r in out["runs"])
    for kind in ("create", "first_event"):
        keys = ["direct_p50", "relay_p50", "gateway_p50", "added_p50", "added_p95", "over_relay_p50"]
        keys += ["baseline_added_p50"] if "baseline_added_p50" in out["runs"][0][kind] else []
        out[kind] = {key: statistics.median(r[kind][key] for r in out["runs"]) for key in keys}
    return out


def table(summary: dict, calls: int) -> str:
    lines = [f"gateway overhead ({len(summary['runs'])} runs x {calls} calls per path; medians of the runs' figures, ms)",
             "", "| call | direct p50 | bare relay p50 | through the gateway p50 | added p50 | added p95 | added p50 per run "
             "| gateway - relay p50 | target (added p50) |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"create": "messages.create (whole answer)", "first_event": "stream: time to first event"}
    for kind, name in names.items():
        s = summary[kind]
        per_run = ", ".join(f"{r[kind]['added_p50']:.2f}" for r in summary["runs"])
        verdict = "met" if s["added_p50"] <= TARGET_MS else "MISSED"
        lines.append(f"| {name} | {s['direct_p50']:.2f} | {s['relay_p50']:.2f} | {s['gateway_p50']:.2f} | "
                     f"{s['added_p50']:.2f} | {s['added_p95']:.2f} | {per_run} | {s['over_relay_p50']:.2f} | "
                     f"<= {TARGET_MS:.0f} ms: {verdict} |")
    if "baseline_added_p50" in summary["create"]:
        lines.append("")
        for kind, name in names.items():
            per_run = ", ".join(f"{r[kind]['baseline_added_p50']:.2f}" for r in summary["runs"])
            lines.append(f"baseline ({summary['baseline']}), {name}: added p50 {summary[kind]['baseline_added_p50']:.2f} "
                         f"(per run {per_run}); this checkout {summary[kind]['added_p50']:.2f}, same runs")
    ok = all(r["ledger_matches_bill"] for r in summary["runs"])
    load = os.getloadavg()[0]
    lines += ["", f"gateway process CPU per call (user + system, all calls): {summary['gateway_cpu_ms_per_call']:.2f} ms",
              f"ledger = simulator's bill in every run (one row per call through the gateway): {'yes' if ok else 'NO'}",
              f"machine load average at the end: {load:.1f} on {os.cpu_count()} cores (a busy machine adds scheduling "
              "waits to every process hop: compare runs made at similar load)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="timed calls per path and run (default 400; --quick 80)")
    parser.add_argument("--runs", type=int, default=None, help="runs, each with fresh processes (default 5; --quick 3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="agent",
                        help="the request: agent (2.5 KB, the default) or claude-code (76 KB, Claude Code 2.1's shape)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout of mcp-tars (e.g. a git worktree of an older commit): its gateway runs "
                             "in the same runs, interleaved with this one's, so a change is measured side by side")
    parser.add_argument("--relay", nargs=2, type=int, metavar=("PORT", "UPSTREAM_PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        run_relay(*args.relay)
        return 0
    calls = args.calls or (80 if args.quick else 400)
    runs = args.runs or (3 if args.quick else 5)
    if args.baseline and not (Path(args.baseline) / "mcp_tars" / "gateway.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of mcp-tars with a gateway (no mcp_tars/gateway.py)")
    results = [one_run(calls, seed, args.shape, args.baseline) for seed in range(runs)]
    summary = summarise(results)
    if args.baseline:
        summary["baseline"] = args.baseline
    print(f"request shape: {args.shape}")
    print(table(summary, calls), flush=True)
    name = "gateway" if args.shape == "agent" else f"gateway-{args.shape}"
    print(f"wrote {write_json(name, {'calls': calls, 'shape': args.shape, **summary})}")
    met = all(summary[k]["added_p50"] <= TARGET_MS for k in ("create", "first_event"))
    return 0 if met and all(r["ledger_matches_bill"] for r in summary["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
