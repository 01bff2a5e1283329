"""Prompt-caching benchmark: multi-turn agent sessions replayed through the real
server (``python -m mcp_tars serve`` over stdio) against the simulated API,
which bills prompt caching the way the API does (cache reads, 5-minute and
1-hour writes, TTLs on the shared clock).

    python -m bench.prompt_caching
    python -m bench.prompt_caching --sessions 10 --seed 7

Each session is an agent at work: a system prompt of 3K-8K tokens, 4-12 tool
definitions, 15-25 API calls. The assistant turns are the server's answers;
every tool_use gets a tool_result (file contents, test logs, search hits,
JSON) of a realistic size, every text answer a user follow-up (most ask for
more tool work, some ask for an explanation with a long answer). Between
calls the shared clock (MCP_TARS_CLOCK_FILE, read by the server and by the
simulator in this process) moves on by a pause drawn from what the previous
answer waits on: a tool run (seconds, now and then a build of several
minutes) or a person (seconds to minutes, and in every session several
pauses of 6-40 minutes). Some sessions pin a model, the others let routing
choose (sticky per session_id); the three modes see the same model sequence.

The same sessions run three times, each with a fresh database and a fresh
simulator: prompt caching off (``enabled: false``), plain 5-minute automatic
caching (``strategy: "auto_5m"``) and ours (the default). Reported per mode
and session, from the simulator's bill: the cost, and the share of input
tokens billed as cache reads after each session's first call
(sum of cache reads / sum of input + cache writes + cache reads, calls 2..N).
Targets: ours reads >= 90% and costs less than auto_5m.

``--caller-markers``: the agent marks its own system prompt with a TTL-less
``cache_control: {"type": "ephemeral"}`` (the API's default 5 minutes), as
many agents do; a fourth mode runs ours with
``adopt_caller_markers_without_ttl: false`` (such a marker then forces 5m on
every breakpoint after it), so the table shows adoption on against off. (In
that scenario "no prompt caching" still sends the caller's own marker.)

Writes bench/out/prompt_caching.json. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcp_tars import clock
from mcp_tars.config import Config
from mcp_tars.tokens import estimate_text_tokens

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
API_KEY = "sk-ant-bench-prompt-caching"
MODES: dict[str, dict[str, Any]] = {
    "none": {"enabled": False},
    "auto_5m": {"strategy": "auto_5m"},
    "ours": {},
}
# With --caller-markers only: ours with the caller's TTL-less markers left at 5 minutes.
CALLER_MARKER_MODES: dict[str, dict[str, Any]] = {"ours_no_adopt": {"adopt_caller_markers_without_ttl": False}}
MODE_LABELS = {"none": "no prompt caching", "auto_5m": "5-min automatic only", "ours": "mcp-tars",
               "ours_no_adopt": "mcp-tars, adoption off"}
CALLER_MARKER = {"type": "ephemeral"}  # no ttl: the API's default 5 minutes
TARGET_READ_SHARE = 0.90
SESSION_SEPARATION_SECONDS = 2 * 3600  # sessions do not share cache entries through time
MAX_TOKENS = 2048

# --------------------------------------------------------------------------- the workload

AGENTS = [
    {
        "role": "coding agent for a Python monorepo",
        "nouns": ["module", "fixture", "migration", "endpoint", "serializer", "queue worker", "config loader",
                  "retry policy", "schema", "cache layer", "CLI command", "test suite", "lock file", "dataclass"],
        "tools": ["read_file", "edit_file", "run_tests", "grep", "list_dir", "git_diff", "run_linter", "shell",
                  "write_file", "git_log", "search_symbols", "open_pr"],
        "task": "The nightly build fails in services/billing: use the tools to find why and fix it.",
    },
    {
        "role": "data analysis agent for a retail company",
        "nouns": ["sales table", "cohort", "revenue metric", "SQL view", "dashboard", "forecast", "outlier",
                  "seasonality", "region", "product category", "refund rate", "conversion funnel"],
        "tools": ["run_sql", "describe_table", "plot_chart", "load_csv", "compute_stats", "export_report"],
        "task": "Explain the drop in Q3 revenue for the north region; use the tools to query the warehouse.",
    },
    {
        "role": "customer support agent for a SaaS product",
        "nouns": ["ticket", "subscription", "invoice", "refund", "SSO setup", "API key", "webhook",
                  "rate limit", "workspace", "seat count", "billing cycle"],
        "tools": ["lookup_customer", "get_invoices", "search_kb", "create_ticket_note", "issue_refund"],
        "task": "Customer 4411 says they were charged twice this month; use the tools to check and resolve it.",
    },
    {
        "role": "devops agent for a Kubernetes platform",
        "nouns": ["deployment", "pod", "ingress", "helm chart", "node pool", "secret", "HPA", "alert rule",
                  "terraform module", "load balancer", "certificate", "log stream", "canary"],
        "tools": ["kubectl_get", "kubectl_logs", "kubectl_describe", "helm_diff", "terraform_plan",
                  "query_metrics", "run_shell", "read_runbook", "page_oncall", "rollout_status"],
        "task": "The checkout service returns 502s since the last rollout; use the tools to find the cause.",
    },
    {
        "role": "research assistant agent for a biology lab",
        "nouns": ["paper", "protocol", "assay", "gene", "sample", "dataset", "citation", "figure",
                  "statistical test", "control group", "replicate", "reagent"],
        "tools": ["search_papers", "fetch_abstract", "read_pdf_page", "run_python", "save_note", "list_samples"],
        "task": "Summarise the evidence on CRISPR off-target effects in our samples; use the tools to search.",
    },
]

VERBS = ["check", "validate", "update", "inspect", "compare", "document", "verify", "refactor", "summarise",
         "migrate", "review", "log", "escalate", "confirm", "measure", "rename", "test", "archive"]
ADJECTIVES = ["stale", "failing", "duplicated", "missing", "deprecated", "slow", "flaky", "inconsistent",
              "unexpected", "critical", "partial", "legacy", "pending", "corrupted"]
CONNECTIVES = ["before", "after", "whenever", "unless", "only if", "even when", "as soon as"]


@dataclass
class SessionSpec:
    name: str
    session_id: str
    agent: str
    model: str | None  # None: routing chooses (sticky per session_id)
    system: str
    tools: list[dict]
    calls: int
    seed: int
    output_scale: float = 1.0  # tool outputs x this (long sessions cross the pruning threshold)
    max_pause_seconds: float = math.inf  # e.g. 240: a workload without long pauses
    caller_marks_system: bool = False  # the agent puts its own TTL-less cache_control on its system prompt
    system_tokens: int = 0
    tools_tokens: int = 0


def _sentence(rng: random.Random, nouns: list[str]) -> str:
    a, b, c = rng.sample(nouns, 3)
    return (f"{rng.choice(VERBS).capitalize()} the {rng.choice(ADJECTIVES)} {a} {rng.choice(CONNECTIVES)} "
            f"you {rng.choice(VERBS)} the {b}, and record the {c} in the session notes.")


def make_system_prompt(rng: random.Random, agent: dict, target_tokens: int) -> str:
    parts = [f"You are a {agent['role']}. Work carefully, explain what you change, and never guess "
             "when a tool can give you the answer.\n"]
    section = 0
    while estimate_text_tokens("".join(parts), "claude-sonnet-5-5") < target_tokens:
        section += 1
        parts.append(f"\n## Section {section}: {rng.choice(VERBS)} {rng.choice(agent['nouns'])}s\n")
        for rule in range(rng.randint(4, 9)):
            parts.append(f"{rule + 1}. {_sentence(rng, agent['nouns'])}\n")
    return "".join(parts)


def make_tools(rng: random.Random, agent: dict, count: int) -> list[dict]:
    tools = []
    for name in agent["tools"][:count]:
        description = " ".join(_sentence(rng, agent["nouns"]) for _ in range(rng.randint(2, 8)))
        properties = {"target": {"type": "string", "description": f"The {rng.choice(agent['nouns'])} to act on."}}
        required = ["target"]
        for extra in rng.sample(["limit", "path", "query", "dry_run", "timeout_seconds", "format"], rng.randint(0, 3)):
            kind = {"limit": "integer", "timeout_seconds": "integer", "dry_run": "boolean"}.get(extra, "string")
            properties[extra] = {"type": kind, "description": f"Optional {extra.replace('_', ' ')}."}
        tools.append({"name": name, "description": f"{name.replace('_', ' ').capitalize()}. {description}",
                      "input_schema": {"type": "object", "properties": properties, "required": required}})
    return tools


def build_sessions(count: int = 6, seed: int = 0, output_scale: float = 1.0,
                   max_pause_seconds: float = math.inf, caller_marks_system: bool = False) -> list[SessionSpec]:
    """Varied agent sessions; every other one lets routing choose the model."""
    pinned = ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"]
    sessions = []
    for i in range(count):
        rng = random.Random(f"session:{seed}:{i}")
        agent = AGENTS[i % len(AGENTS)]
        system = make_system_prompt(rng, agent, rng.randint(3000, 8000))
        tools = make_tools(rng, agent, rng.randint(4, len(agent["tools"])))
        model = pinned[(i // 2) % len(pinned)] if i % 2 == 0 else None
        spec = SessionSpec(
            name=f"s{i + 1}-{agent['tools'][0].split('_')[0]}", session_id=f"bench-pc-{seed}-{i}",
            agent=agent["role"], model=model, system=system, tools=tools, calls=rng.randint(15, 25),
            seed=rng.randrange(1 << 30), output_scale=output_scale, max_pause_seconds=max_pause_seconds,
            caller_marks_system=caller_marks_system,
        )
        spec.system_tokens = estimate_text_tokens(system, "claude-sonnet-5-5")
        spec.tools_tokens = estimate_text_tokens(json.dumps(tools), "claude-sonnet-5-5")
        sessions.append(spec)
    return sessions


def _lines(rng: random.Random, agent: dict, target_tokens: int, style: str) -> str:
    out: list[str] = []
    n = 0
    while estimate_text_tokens("\n".join(out), "claude-sonnet-5-5") < target_tokens:
        n += 1
        noun = rng.choice(agent["nouns"]).replace(" ", "_")
        if style == "file":
            out.append(f"{n:4d}    def {rng.choice(VERBS)}_{noun}(self, {noun}_id: int) -> bool:  # {rng.choice(ADJECTIVES)}")
        elif style == "log":
            out.append(f"[{n:05d}] {rng.choice(['INFO', 'INFO', 'WARN', 'ERROR'])} {noun}: {rng.choice(ADJECTIVES)} "
                       f"after {rng.randint(1, 999)} ms ({rng.choice(VERBS)} retried {rng.randint(0, 5)}x)")
        elif style == "json":
            out.append(json.dumps({"id": rng.randint(1000, 99999), "kind": noun, "state": rng.choice(ADJECTIVES),
                                   "value": round(rng.uniform(0, 1000), 2)}))
        else:
            out.append(f"{rng.choice(['src', 'lib', 'docs'])}/{noun}.txt:{rng.randint(1, 900)}: {_sentence(rng, agent['nouns'])}")
    return "\n".join(out)


def tool_result_text(rng: random.Random, agent: dict, scale: float = 1.0) -> str:
    """A tool's output: mostly a few hundred tokens, sometimes a whole file or log."""
    size = int(scale * min(3000, max(40, rng.lognormvariate(math.log(350), 0.9))))
    return _lines(rng, agent, size, rng.choice(["file", "log", "json", "search"]))


def follow_up(rng: random.Random, agent: dict, tools: list[dict], call: int) -> str:
    noun = rng.choice(agent["nouns"])
    if rng.random() < 0.7:
        tool = rng.choice(tools)["name"]
        return (f"Thanks. Now use the {tool} tool to {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {noun} "
                f"(step {call}).")
    length = rng.randint(120, 700)  # a request for a longer written answer
    return (f"Before going on, explain in detail why the {noun} is {rng.choice(ADJECTIVES)} and what we should "
            f"{rng.choice(VERBS)} next (step {call}). [sim:output_tokens={length}]")


def pause_after(rng: random.Random, stop_reason: str | None) -> float:
    """Seconds until the next call: a tool run after tool_use, a person otherwise."""
    r = rng.random()
    if stop_reason == "tool_use":
        if r < 0.70:
            return rng.uniform(1, 20)
        if r < 0.92:
            return rng.uniform(20, 120)
        if r < 0.98:
            return rng.uniform(120, 280)
        return rng.uniform(320, 540)  # a long build or test run
    if r < 0.35:
        return rng.uniform(5, 60)
    if r < 0.68:
        return rng.uniform(60, 240)
    return rng.uniform(360, 2400)  # the person went away: 6-40 minutes


# --------------------------------------------------------------------------- replay


@dataclass
class CallRecord:
    session: str
    call: int
    pause_before_s: float
    response_id: str
    model: str
    stop_reason: str | None
    ttl: str | None
    prompt_cache_reason: str | None
    pruned: bool = False  # the server pruned this request (above pruning.auto_threshold_tokens)
    usage: dict = field(default_factory=dict)
    cost_usd: float = 0.0


def _bench_config(mode: str, ours_overrides: dict | None = None) -> dict:
    data = Config().model_dump(mode="json")
    settings = {**MODES, **CALLER_MARKER_MODES}[mode]
    data["prompt_cache"] = {**data["prompt_cache"], **settings, **((ours_overrides or {}) if mode.startswith("ours") else {})}
    data["batch"] = {**data["batch"], "worker_enabled": False}
    data["monitoring"] = {**data["monitoring"], "metrics_log": None}
    data["api"] = {**data["api"], "backoff_initial_seconds": 0.0, "backoff_max_seconds": 0.01}
    Config.model_validate(data)
    return data


async def replay_session(client, spec: SessionSpec, clock_file: str, with_session_id: bool = True) -> list[tuple[float, dict]]:
    """Drive one session through ``optimized_complete``; returns (pause, structured result) per call."""
    rng = random.Random(spec.seed)
    agent = next(a for a in AGENTS if a["role"] == spec.agent)
    messages: list[dict] = [{"role": "user", "content": agent["task"]}]
    results: list[tuple[float, dict]] = []
    pause = 0.0
    system: str | list[dict] = spec.system
    if spec.caller_marks_system:
        system = [{"type": "text", "text": spec.system, "cache_control": dict(CALLER_MARKER)}]
    for call in range(spec.calls):
        args: dict[str, Any] = {"messages": messages, "system": system, "tools": spec.tools, "max_tokens": MAX_TOKENS}
        if with_session_id:
            args["session_id"] = spec.session_id
        if spec.model:
            args["model"] = spec.model
        r = await client.call_tool("optimized_complete", args)
        if r.is_error:
            raise RuntimeError(f"{spec.name} call {call + 1}: {r.content[0].text}")
        result = r.structured_content
        results.append((pause, result))
        content = result["content"]
        messages = messages + [{"role": "assistant", "content": content}]
        tool_uses = [b for b in content if b.get("type") == "tool_use"]
        if tool_uses:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": b["id"], "content": tool_result_text(rng, agent, spec.output_scale)}
                for b in tool_uses]})
        else:
            messages.append({"role": "user", "content": follow_up(rng, agent, spec.tools, call + 1)})
        pause = min(pause_after(rng, result["stop_reason"]), spec.max_pause_seconds)
        clock.advance(pause, clock_file)
    return results


async def run_mode(mode: str, sessions: list[SessionSpec], workdir: Path, ours_overrides: dict | None = None,
                   with_session_id: bool = True) -> dict:
    from mcp import Client, StdioServerParameters

    from mcp_tars.sim import SimulatedAnthropic

    mode_dir = workdir / mode
    mode_dir.mkdir(parents=True)
    clock_file = str(mode_dir / "clock")
    Path(clock_file).write_text("0", "utf-8")
    config_path = mode_dir / "performance-config.json"
    config_path.write_text(json.dumps(_bench_config(mode, ours_overrides)), "utf-8")
    previous_clock = os.environ.get("MCP_TARS_CLOCK_FILE")
    os.environ["MCP_TARS_CLOCK_FILE"] = clock_file  # the in-process simulator reads the same clock
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({"ANTHROPIC_API_KEY": API_KEY, "MCP_TARS_DB": str(mode_dir / "tars.db"),
                "MCP_TARS_CONFIG": str(config_path), "MCP_TARS_CLOCK_FILE": clock_file})
    records: list[CallRecord] = []
    started = time.perf_counter()
    try:
        with SimulatedAnthropic(keep_request_bodies=False) as sim:
            env["ANTHROPIC_BASE_URL"] = sim.base_url
            params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_tars", "serve"], env=env)
            async with Client(params) as client:
                for spec in sessions:
                    for i, (pause, result) in enumerate(await replay_session(client, spec, clock_file, with_session_id)):
                        pc = result.get("prompt_cache") or {}
                        records.append(CallRecord(spec.name, i + 1, pause, result["response_id"], result["model"],
                                                  result["stop_reason"], pc.get("ttl"), pc.get("reason"),
                                                  result.get("pruning") is not None))
                    clock.advance(SESSION_SEPARATION_SECONDS, clock_file)
            bill = {line.response_id: line for line in sim.bill}
            total_bill = sim.bill_total_usd()
    finally:
        if previous_clock is None:
            os.environ.pop("MCP_TARS_CLOCK_FILE", None)
        else:
            os.environ["MCP_TARS_CLOCK_FILE"] = previous_clock
    for record in records:
        line = bill[record.response_id]  # every answer came from the API: a cache hit would be a bug here
        record.usage = _usage(line.usage)
        record.cost_usd = line.cost_usd
    return summarise(mode, sessions, records, total_bill, time.perf_counter() - started)


def _usage(u: dict) -> dict:
    creation = u.get("cache_creation") or {}
    return {"input": u["input_tokens"], "cache_read": u.get("cache_read_input_tokens", 0),
            "write_5m": creation.get("ephemeral_5m_input_tokens", 0),
            "write_1h": creation.get("ephemeral_1h_input_tokens", 0), "output": u["output_tokens"]}


def read_share(records: list[CallRecord]) -> float:
    """Cache reads / all input tokens, over every call but each session's first."""
    later = [r for r in records if r.call > 1]
    read = sum(r.usage["cache_read"] for r in later)
    total = sum(r.usage["input"] + r.usage["cache_read"] + r.usage["write_5m"] + r.usage["write_1h"] for r in later)
    return read / total if total else 0.0


LOSS_CAUSES = ("new_content", "model_switch", "pause_over_1h", "pause_after_5m_write", "pruning", "other")


def uncached_by_cause(records: list[CallRecord]) -> dict[str, int]:
    """Input tokens of calls 2..N not billed as cache reads, by the likeliest cause.

    What the prompt grew by since the session's previous call is new content
    (it has to be written once, whatever the strategy); anything beyond that
    was in the cache and got lost: to a model switch, a pause longer than every
    TTL, a pause after a call that wrote with the 5-minute TTL, or pruning
    (the server pruned this or the previous request, so the bytes differ)."""
    causes = dict.fromkeys(LOSS_CAUSES, 0)
    previous: CallRecord | None = None
    for record in records:
        size = sum(record.usage[k] for k in ("input", "cache_read", "write_5m", "write_1h"))
        if record.call > 1 and previous is not None:
            uncached = size - record.usage["cache_read"]
            growth = max(0, size - sum(previous.usage[k] for k in ("input", "cache_read", "write_5m", "write_1h")))
            causes["new_content"] += min(growth, uncached)
            lost = max(0, uncached - growth)
            if record.model != previous.model:
                causes["model_switch"] += lost
            elif record.pause_before_s > 3600:
                causes["pause_over_1h"] += lost
            elif record.pruned or previous.pruned:
                causes["pruning"] += lost
            elif record.pause_before_s > 300 and previous.ttl != "1h":
                causes["pause_after_5m_write"] += lost
            else:
                causes["other"] += lost
        previous = record
    return causes


def summarise(mode: str, sessions: list[SessionSpec], records: list[CallRecord], total_bill: float, seconds: float) -> dict:
    per_session = []
    for spec in sessions:
        rows = [r for r in records if r.session == spec.name]
        per_session.append({
            "session": spec.name, "calls": len(rows), "cost_usd": sum(r.cost_usd for r in rows),
            "read_share_after_first": read_share(rows),
            "models": [r.model for r in rows],
            "ttl_1h_calls": sum(r.ttl == "1h" for r in rows), "ttl_5m_calls": sum(r.ttl == "5m" for r in rows),
            "long_pauses": sum(r.pause_before_s > 300 for r in rows),
            "pruned_calls": sum(r.pruned for r in rows),
            "tokens": {k: sum(r.usage[k] for r in rows) for k in ("input", "cache_read", "write_5m", "write_1h", "output")},
        })
    later_input = sum(sum(r.usage[k] for k in ("input", "cache_read", "write_5m", "write_1h")) for r in records if r.call > 1)
    return {"mode": mode, "label": MODE_LABELS[mode], "total_cost_usd": total_bill,
            "read_share_after_first": read_share(records), "calls": len(records), "seconds": round(seconds, 1),
            "not_read_share_by_cause": {k: v / later_input for k, v in uncached_by_cause(records).items()} if later_input else {},
            "sessions": per_session, "calls_detail": [asdict(r) for r in records]}


# --------------------------------------------------------------------------- output


def print_tables(sessions: list[SessionSpec], results: dict[str, dict]) -> None:
    print("Sessions")
    print(f"  {'session':<14} {'model':<18} {'system':>7} {'tools':>6} {'calls':>5} {'pauses>5m':>9}")
    ours = results["ours"]["sessions"]
    for spec, row in zip(sessions, ours):
        print(f"  {spec.name:<14} {(spec.model or 'routed:' + row['models'][0].split('-')[1]):<18} "
              f"{spec.system_tokens:>7,} {spec.tools_tokens:>6,} {spec.calls:>5} {row['long_pauses']:>9}")
    print()
    print("Cost per session (USD, from the simulator's bill) and cache-read share of input after the first call")
    header = f"  {'session':<14}" + "".join(f" {MODE_LABELS[m]:>22}" for m in results)
    print(header)
    for i, spec in enumerate(sessions):
        cells = "".join(f" ${results[m]['sessions'][i]['cost_usd']:>9.4f} {results[m]['sessions'][i]['read_share_after_first']:>10.1%}"
                        for m in results)
        print(f"  {spec.name:<14}{cells}")
    cells = "".join(f" ${results[m]['total_cost_usd']:>9.4f} {results[m]['read_share_after_first']:>10.1%}" for m in results)
    print(f"  {'TOTAL':<14}{cells}")
    print()
    none, auto, ours_total = (results[m]["total_cost_usd"] for m in ("none", "auto_5m", "ours"))
    ttl = {k: sum(s[f"ttl_{k}_calls"] for s in results["ours"]["sessions"]) for k in ("5m", "1h")}
    print(f"  ours vs no prompt caching: {1 - ours_total / none:.1%} cheaper; vs 5-min automatic: "
          f"{1 - ours_total / auto:.1%} cheaper")
    print(f"  ours chose ttl 1h on {ttl['1h']} calls and 5m on {ttl['5m']} calls")
    print("  input after the first call NOT read from cache, by cause (share of that input):")
    for m in results:
        if m == "none":
            continue
        causes = results[m]["not_read_share_by_cause"]
        print(f"    {MODE_LABELS[m]:<22} " + ", ".join(f"{k} {v:.1%}" for k, v in causes.items() if v >= 0.0005))
    if "ours_no_adopt" in results:
        on, off = results["ours"], results["ours_no_adopt"]
        print(f"  the agent marks its system prompt without a ttl: adoption on reads {on['read_share_after_first']:.1%} "
              f"for ${on['total_cost_usd']:.4f}, off {off['read_share_after_first']:.1%} for ${off['total_cost_usd']:.4f} "
              f"({1 - on['total_cost_usd'] / off['total_cost_usd']:.1%} cheaper on)")
        print("  (here 'no prompt caching' still sends the agent's own marker)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=6, help="number of agent sessions (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--output-scale", type=float, default=1.0,
                        help="multiply tool output sizes (e.g. 4: sessions grow past the 30K-token pruning threshold)")
    parser.add_argument("--ours", type=json.loads, default={}, metavar="JSON",
                        help='prompt_cache settings changed for "ours" only (and its adoption-off twin with --caller-markers), '
                             'e.g. \'{"prior_weight_calls": 8}\'')
    parser.add_argument("--max-pause", type=float, default=math.inf, metavar="SECONDS",
                        help="cap every pause (e.g. 240: no pause outlives a 5-minute entry; shows what 1h costs when it is not needed)")
    parser.add_argument("--no-session-id", action="store_true",
                        help="send no session_id (a client that does not group its turns: no gaps observed, no sticky routing)")
    parser.add_argument("--caller-markers", action="store_true",
                        help="the agent marks its own system prompt with a TTL-less cache_control; adds the mode "
                             "'ours, adopt_caller_markers_without_ttl off' to compare")
    args = parser.parse_args(argv)

    sessions = build_sessions(args.sessions, args.seed, args.output_scale, args.max_pause, args.caller_markers)
    modes = [*MODES, *(CALLER_MARKER_MODES if args.caller_markers else ())]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-prompt-caching-") as tmp:
        for mode in modes:
            results[mode] = asyncio.run(run_mode(mode, sessions, Path(tmp), args.ours, not args.no_session_id))
            print(f"[{mode}] {results[mode]['calls']} calls in {results[mode]['seconds']} s", file=sys.stderr)

    same_models = len({json.dumps([s["models"] for s in r["sessions"]]) for r in results.values()}) == 1
    print_tables(sessions, results)
    if not same_models:
        print("  WARNING: the modes did not see the same model sequence; costs are not comparable")
    ours, auto = results["ours"], results["auto_5m"]
    passed = ours["read_share_after_first"] >= TARGET_READ_SHARE and ours["total_cost_usd"] < auto["total_cost_usd"] and same_models
    print(f"  target: ours reads >= {TARGET_READ_SHARE:.0%} after the first call and costs less than 5-min automatic: "
          f"{'PASS' if passed else 'FAIL'}")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = {
        "command": "python -m bench.prompt_caching " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "output_scale": args.output_scale,
        "max_pause_seconds": None if math.isinf(args.max_pause) else args.max_pause,
        "ours_overrides": args.ours,
        "session_ids_sent": not args.no_session_id,
        "caller_marks_system": args.caller_markers,
        "sessions": [{k: v for k, v in asdict(s).items() if k not in ("system", "tools")} for s in sessions],
        "modes": {m: {k: v for k, v in r.items() if k != "calls_detail"} for m, r in results.items()},
        "calls": {m: r["calls_detail"] for m, r in results.items()},
        "same_model_sequence": same_models,
        "target_read_share": TARGET_READ_SHARE,
        "passed": passed,
    }
    (OUT_DIR / "prompt_caching.json").write_text(json.dumps(out, indent=1), "utf-8")
    print(f"  wrote {OUT_DIR / 'prompt_caching.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
