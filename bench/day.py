"""A day of agent traffic through the real server, against a baseline, from the API's own bill.

    python -m bench.day [--quick]

The day (``bench.workloads.build_day``) is replayed twice, each time against
a fresh simulated Anthropic API in its own process:

* mcp-tars: every call goes through ``mcp-tars serve`` over stdio (packaged
  default configuration; the shared clock moves through the 24 hours so cache
  TTLs and session gaps are real); deferrable jobs go through ``defer_task``
  and ``process_deferred(force=True)`` every few simulated hours, and their
  answers come back through ``task_status``;
* baseline: the same requests sent directly with the Anthropic SDK on the
  default model, full context, no prompt caching, no response cache, standard
  rate (what the agent pays without us).

Both costs are the simulated API's own bill. Savings count only correct
answers: an answer is correct when its ``q=`` tag is the tag of the question
asked or of a paraphrase of it (same group); a wrong answer is charged again
at its baseline price (the agent would have to ask again). A cache hit whose
tag belongs to another question is a wrong cache hit: the target is zero.
Writes bench/out/day.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mcp_tars import clock
from mcp_tars.sim import RemoteSim

from bench.workloads import (
    BENCH_API_KEY,
    Call,
    Day,
    answer_tags,
    bench_config,
    build_day,
    remove_workdir,
    server_env,
    start_sim,
    stdio_params,
    workdir,
    write_json,
)

KINDS = ("question", "near_miss", "simple_task", "hard_task", "session", "deferred")
TARGET_SAVING = 0.75
PROCESS_EVERY_S = 4 * 3600  # the heartbeat that submits deferred work, in simulated time
BASELINE_CONCURRENCY = 4


def _day_start() -> float:
    now = time.time()
    return now - now % 86400  # today, 00:00 UTC


def _set_clock(clock_file: Path, target: float) -> None:
    """Make clock.now() read ``target`` in every process sharing the file."""
    tmp = clock_file.with_suffix(".tmp")
    tmp.write_text(repr(target - time.time()), "utf-8")
    tmp.replace(clock_file)


# -- mcp-tars -----------------------------------------------------------------------


async def run_tars(day: Day, progress: bool = True) -> dict:
    from mcp import Client

    wd = workdir("day")
    clock_file = wd / "clock"
    start = _day_start()
    _set_clock(clock_file, start)
    sim = start_sim(clock_file)
    control = RemoteSim(sim.base_url, timeout=120)
    env = server_env(wd, sim.base_url, bench_config(), clock_file=clock_file)
    outcomes: dict[int, dict] = {}
    tasks: dict[int, str] = {}
    errors: list[str] = []
    began = time.perf_counter()
    try:
        async with Client(stdio_params(env), read_timeout_seconds=600) as client:
            next_process = PROCESS_EVERY_S
            for n, call in enumerate(day.calls):
                while call.at >= next_process:
                    _set_clock(clock_file, start + next_process)
                    await _process(client, errors)
                    next_process += PROCESS_EVERY_S
                _set_clock(clock_file, start + call.at)
                if call.kind == "deferred":
                    r = await client.call_tool("defer_task", call.args)
                    if r.is_error:
                        errors.append(f"defer_task: {r.content[0].text[:300]}")
                    else:
                        tasks[call.index] = r.structured_content["task_id"]
                    continue
                r = await client.call_tool("optimized_complete", call.args)
                if r.is_error:
                    errors.append(f"{call.kind}: {r.content[0].text[:300]}")
                    outcomes[call.index] = {"error": True}
                    continue
                s = r.structured_content
                outcomes[call.index] = {k: s[k] for k in ("source", "model", "response_id", "text", "cost_usd",
                                                          "baseline_cost_usd", "saved_usd")}
                outcomes[call.index]["cache_kind"] = s["cache"]["kind"]
                outcomes[call.index]["pruned"] = s["pruning"] is not None
                if progress and n % 200 == 0:
                    print(f"  mcp-tars: {n}/{len(day.calls)} calls, {time.perf_counter() - began:.0f} s", flush=True)
            _set_clock(clock_file, start + 86400 - 60)
            await _process(client, errors)
            for index, task_id in tasks.items():
                r = await client.call_tool("task_status", {"task_id": task_id})
                st = r.structured_content if not r.is_error else {"status": "error", "error": r.content[0].text}
                outcomes[index] = {"source": "batch", "status": st["status"], "text": st.get("text"),
                                   "model": st.get("model"), "cost_usd": st.get("cost_usd"), "error": st.get("error")}
                if st["status"] != "succeeded":
                    errors.append(f"deferred {task_id}: {st['status']} {st.get('error')}")
            report = await client.call_tool("cost_report", {"period": "all", "group_by": "strategy", "format": "json"})
            ledger = report.structured_content if not report.is_error else {"error": report.content[0].text}
        bill = control.bill()
        requests = control.requests()["requests"]
    finally:
        sim.stop()
        remove_workdir(wd)
    return {"outcomes": outcomes, "bill": bill, "requests": requests, "ledger": ledger, "errors": errors,
            "seconds": time.perf_counter() - began}


async def _process(client, errors: list[str]) -> None:
    r = await client.call_tool("process_deferred", {"force": True})
    if r.is_error:
        errors.append(f"process_deferred: {r.content[0].text[:300]}")


# -- baseline -------------------------------------------------------------------------


async def run_baseline(day: Day, default_model: str) -> dict:
    import anthropic

    sim = start_sim()
    control = RemoteSim(sim.base_url, timeout=120)
    outcomes: dict[int, dict] = {}
    errors: list[str] = []
    began = time.perf_counter()
    try:
        client = anthropic.AsyncAnthropic(api_key=BENCH_API_KEY, base_url=sim.base_url, max_retries=2)
        gate = asyncio.Semaphore(BASELINE_CONCURRENCY)

        async def one(call: Call) -> None:
            async with gate:
                try:
                    m = await client.messages.create(**call.api_request(default_model))
                except anthropic.APIError as e:
                    errors.append(f"{call.kind}: {e}")
                    return
                text = "".join(b.text for b in m.content if b.type == "text")
                outcomes[call.index] = {"response_id": m.id, "text": text}

        await asyncio.gather(*(one(c) for c in day.calls))
        await client.close()
        bill = control.bill()
    finally:
        sim.stop()
    return {"outcomes": outcomes, "bill": bill, "errors": errors, "seconds": time.perf_counter() - began}


# -- scoring ---------------------------------------------------------------------------


def score(day: Day, tars: dict, base: dict) -> dict:
    base_cost = {line["response_id"]: line["cost_usd"] for line in base["bill"]["lines"]}
    tars_cost = {line["response_id"]: line["cost_usd"] for line in tars["bill"]["lines"]}
    batch_total = sum(line["cost_usd"] for line in tars["bill"]["lines"] if line.get("batch"))
    per_kind: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    models: dict[str, dict[str, int]] = defaultdict(dict)
    wrong_hits: list[dict] = []
    wrong_answers: list[dict] = []
    mapped = 0.0
    for call in day.calls:
        k = per_kind[call.kind]
        k["calls"] += 1
        b = base["outcomes"].get(call.index)
        baseline_usd = base_cost.get(b["response_id"], 0.0) if b else 0.0
        k["baseline_usd"] += baseline_usd
        if b and not (answer_tags(b["text"]) & call.accepted_tags):
            k["baseline_wrong"] += 1
        t = tars["outcomes"].get(call.index) or {"error": True}
        if t.get("error") and t.get("source") != "batch":
            k["errors"] += 1
            k["recharged_usd"] += baseline_usd
            continue
        if t["source"] == "api":
            cost = tars_cost.get(t["response_id"], 0.0)
            k["tars_usd"] += cost
            mapped += cost
        k[t["source"]] += 1
        if t["source"] in ("api", "batch") and t.get("model"):
            models[call.kind][t["model"]] = models[call.kind].get(t["model"], 0) + 1
        if t.get("pruned"):
            k["pruned"] += 1
        correct = bool(answer_tags(t.get("text")) & call.accepted_tags)
        if correct:
            k["correct"] += 1
        else:
            k["recharged_usd"] += baseline_usd
            item = {"kind": call.kind, "index": call.index, "source": t["source"], "asked": _asked(call),
                    "answer": (t.get("text") or "")[:120]}
            (wrong_hits if t["source"] == "cache" else wrong_answers).append(item)
    if "deferred" in per_kind:
        per_kind["deferred"]["tars_usd"] = batch_total
        mapped += batch_total
    tars_total = tars["bill"]["total_usd"]
    base_total = base["bill"]["total_usd"]
    per_kind["(other API calls)"]["tars_usd"] = max(0.0, tars_total - mapped)
    recharged = sum(k["recharged_usd"] for k in per_kind.values())
    effective = tars_total + recharged
    rejected = [r for r in tars["requests"] if (r.get("status") or 0) >= 400]
    ledger = tars["ledger"]
    totals = ledger.get("totals", {})
    levers = {name: v.get("usd") if isinstance(v, dict) else v for name, v in ledger.get("savings_by_lever", {}).items()}
    summary = {
        "calls": len(day.calls),
        "baseline_bill_usd": base_total,
        "tars_bill_usd": tars_total,
        "recharged_wrong_usd": recharged,
        "effective_usd": effective,
        "saving": 1 - effective / base_total if base_total else 0.0,
        "saving_bill_only": 1 - tars_total / base_total if base_total else 0.0,
        "wrong_cache_hits": len(wrong_hits),
        "wrong_api_answers": len(wrong_answers),
        "rejected_requests": len(rejected),
        "tool_errors": len(tars["errors"]),
        "baseline_errors": len(base["errors"]),
        "ledger_cost_usd": totals.get("cost_usd"),
        "ledger_baseline_usd": totals.get("baseline_cost_usd"),
        "ledger_saved_usd": totals.get("saved_usd"),
        "ledger_vs_bill_usd": (totals.get("cost_usd") or 0.0) - tars_total,
        "savings_by_lever_ledger_usd": levers,
        "models_by_kind": {k: dict(v) for k, v in models.items()},
        "tars_seconds": round(tars["seconds"], 1),
        "baseline_seconds": round(base["seconds"], 1),
    }
    summary["routing"] = routing_figures(summary["models_by_kind"], bench_config())
    summary["cache_recall"] = cache_recall(day, tars, min(bench_config().cache.ttl_seconds.values()))
    summary["target_met"] = (summary["saving"] >= TARGET_SAVING and not wrong_hits and not rejected
                             and not tars["errors"] and summary["routing"]["targets_met"])
    return {"summary": summary, "per_kind": {k: dict(v) for k, v in per_kind.items()},
            "wrong_cache_hits": wrong_hits[:20], "wrong_api_answers": wrong_answers[:20],
            "errors": tars["errors"][:20], "baseline_errors": base["errors"][:5],
            "rejected": [{"path": r.get("path"), "status": r.get("status")} for r in rejected[:20]]}


# issue 13: what routing may do to each kind of traffic (shares of the calls that reached the API)
ROUTING_TARGETS = {"hard_task_to_cheap": 0.05, "simple_task_to_strong": 0.10, "session_to_cheap": 0.10}


def routing_figures(models_by_kind: dict[str, dict[str, int]], config) -> dict:
    """Shares of hard tasks on the cheap tier, simple tasks on a stronger one,
    session turns on the cheap tier, and calls on a model dearer than the default."""
    from mcp_tars.routing import is_dearer

    cheap = config.routing.tier_models["simple"]

    def share(kind: str, on_cheap: bool) -> float:
        models = models_by_kind.get(kind, {})
        total = sum(models.values())
        hits = sum(n for m, n in models.items() if (m == cheap) == on_cheap)
        return hits / total if total else 0.0

    out = {"hard_task_to_cheap": share("hard_task", True), "simple_task_to_strong": share("simple_task", False),
           "session_to_cheap": share("session", True),
           "calls_above_default": sum(n for models in models_by_kind.values() for m, n in models.items()
                                      if is_dearer(m, config.default_model))}
    out["targets_met"] = (all(out[k] <= v for k, v in ROUTING_TARGETS.items()) and not out["calls_above_default"])
    return out


def cache_recall(day: Day, tars: dict, ttl_seconds: float) -> dict:
    """How often the cache answered a question it could have: an exact repeat
    (the same words answered by the API less than ``ttl_seconds`` before: the
    cache's shortest time to live) and a paraphrase (another wording of a
    question of the same group answered that recently; these words not)."""
    answered_text: dict[str, float] = {}
    answered_group: dict[str, float] = {}
    counts = {"exact_repeats": [0, 0], "paraphrases": [0, 0]}
    for call in sorted(day.calls, key=lambda c: c.at):
        if call.kind != "question" or call.group is None:
            continue
        text = call.args.get("prompt", "")
        fresh = lambda at: at is not None and call.at - at < ttl_seconds  # noqa: E731
        kind = ("exact_repeats" if fresh(answered_text.get(text))
                else "paraphrases" if fresh(answered_group.get(call.group)) else None)
        source = (tars["outcomes"].get(call.index) or {}).get("source")
        if kind:
            counts[kind][0] += source == "cache"
            counts[kind][1] += 1
        if source == "api":
            answered_text[text] = answered_group[call.group] = call.at
    return {k: {"hits": h, "calls": n, "recall": h / n if n else None} for k, (h, n) in counts.items()}


def _asked(call: Call) -> str:
    a = call.args
    return (a.get("prompt") or json.dumps(a.get("messages", [])[-1:]))[:120]


def table(result: dict) -> str:
    s, per = result["summary"], result["per_kind"]
    lines = [f"A day of agent traffic: {s['calls']:,} calls; cost from the simulated API's own bill (USD)",
             f"{'traffic':<18} {'calls':>6} {'baseline':>10} {'mcp-tars':>10} {'saving':>7} {'cache':>6} "
             f"{'api':>5} {'batch':>6} {'pruned':>6} {'correct':>8}"]
    for kind in (*KINDS, "(other API calls)"):
        k = per.get(kind)
        if not k:
            continue
        base, ours = k.get("baseline_usd", 0.0), k.get("tars_usd", 0.0) + k.get("recharged_usd", 0.0)
        saving = f"{1 - ours / base:>6.1%}" if base else "     -"
        calls = int(k.get("calls", 0))
        lines.append(f"{kind:<18} {calls:>6} {base:>10.4f} {ours:>10.4f} {saving:>7} {int(k.get('cache', 0)):>6} "
                     f"{int(k.get('api', 0)):>5} {int(k.get('batch', 0)):>6} {int(k.get('pruned', 0)):>6} "
                     f"{int(k.get('correct', 0)):>4}/{calls:<4}" if calls else
                     f"{kind:<18} {'':>6} {'':>10} {ours:>10.4f}")
    lines.append(f"{'total':<18} {s['calls']:>6} {s['baseline_bill_usd']:>10.4f} {s['effective_usd']:>10.4f} "
                 f"{s['saving']:>7.1%}")
    lines.append(f"saving counting only correct answers: {s['saving']:.1%} (target >= {TARGET_SAVING:.0%}; bill alone "
                 f"{s['saving_bill_only']:.1%}; wrong answers re-charged at baseline: ${s['recharged_wrong_usd']:.4f})")
    lines.append(f"wrong cache hits: {s['wrong_cache_hits']} | wrong API answers: {s['wrong_api_answers']} | "
                 f"requests the API rejected: {s['rejected_requests']} | tool errors: {s['tool_errors']}")
    mix: dict[str, int] = {}
    for kind_models in s.get("models_by_kind", {}).values():
        for model, n in kind_models.items():
            mix[model] = mix.get(model, 0) + n
    if mix:
        sessions = s["models_by_kind"].get("session", {})
        lines.append("models of the calls that reached the API: " + ", ".join(f"{m} {n}" for m, n in sorted(mix.items()))
                     + (" (session turns: " + ", ".join(f"{m} {n}" for m, n in sorted(sessions.items())) + ")" if sessions else ""))
    r = s.get("routing")
    if r:
        lines.append(f"routing: hard tasks -> cheap tier {r['hard_task_to_cheap']:.1%} (target <= 5%) | simple tasks -> "
                     f"a stronger tier {r['simple_task_to_strong']:.1%} (<= 10%) | session turns -> cheap tier "
                     f"{r['session_to_cheap']:.1%} (<= 10%) | calls above the default model {r['calls_above_default']} (0)")
    c = s.get("cache_recall")
    if c:
        lines.append("response cache on questions it could answer: " + " | ".join(
            f"{name.replace('_', ' ')} {v['hits']}/{v['calls']}" + (f" ({v['recall']:.1%})" if v["calls"] else "")
            for name, v in c.items()) + " | wrong cache hits: " + str(s["wrong_cache_hits"])
                     + " (paraphrases from our own pairs, which the cache's decision was fitted on: in-sample)")
    levers = s["savings_by_lever_ledger_usd"]
    base = s["ledger_baseline_usd"] or 0.0
    if levers and base:
        lines.append(f"savings by lever (the ledger's own attribution, share of its ${base:.4f} baseline): " + ", ".join(
            f"{name} ${v or 0:.4f} ({(v or 0) / base:+.1%})" for name, v in levers.items()))
    if base and s["baseline_bill_usd"]:
        lines.append(f"the ledger's baseline estimate vs the baseline run's bill: {base / s['baseline_bill_usd'] - 1:+.1%}")
    lines.append(f"ledger cost vs bill: {s['ledger_vs_bill_usd']:+.6f} USD | mcp-tars run {s['tars_seconds']} s, "
                 f"baseline run {s['baseline_seconds']} s")
    return "\n".join(lines)


def run(quick: bool = False) -> dict:
    day = build_day(quick=quick)
    default_model = bench_config().default_model
    print(f"day: {len(day.calls):,} calls {day.counts()}", flush=True)
    tars = asyncio.run(run_tars(day))
    base = asyncio.run(run_baseline(day, default_model))
    result = score(day, tars, base)
    result["traffic"] = day.counts()
    print(table(result), flush=True)
    print(f"wrote {write_json('day', result)}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.day", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller day (about a third)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    return 0 if result["summary"]["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
