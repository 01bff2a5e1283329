"""Context-pruning benchmark: token reduction and fact retention per level, and
the brief's 500K-token conversation pruned to 10K.

    python -m bench.pruning                    # 24 sessions (12 per phrasing pool)
    python -m bench.pruning --sessions 60 --size 80000

1. Long agent sessions from ``bench/conversations.py`` (file reads and edits,
   logs, test runs, installs, git, searches, discussions), each with 12 facts
   planted in its first half and asked about in its last message; sizes vary
   from 0.5x to 1.6x ``--size`` tokens. Half use the ``dev`` phrasings, half the
   disjoint ``holdout`` ones. Every session is pruned at light, medium and
   aggressive, and with level=auto at a few targets. Per row: token reduction
   (of the summed tokens), fact retention (a fact is retained when its value
   string appears in the pruned conversation), credential values leaked
   (must be 0), conversations the validator rejects (must be 0), the median
   time per session. Caches are cleared before every call (cold timings).
2. A ~500K-token conversation of thousands of messages pruned to 10K tokens
   with level=auto: median wall and CPU time of 5 cold runs, reduction, facts.

Target: medium keeps >= 95% of planted facts while cutting >= 50% of tokens;
500K -> 10K in under 1 s. Writes bench/out/pruning.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.conversations import Session, build_long_conversation, fact_report, generate_sessions
from mcp_tars import credentials
from mcp_tars import tokens as tok
from mcp_tars.pruning import PruningSettings, facts, prune_messages, validate_conversation

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
LEVEL_ROWS = [("light", None), ("medium", None), ("aggressive", None)]
AUTO_TARGETS = (4_000, 10_000, 20_000)


def cold_prune(session: Session, **kwargs):
    """One pruning call with every cache cleared: (result, wall seconds, CPU seconds)."""
    tok.clear_count_cache()
    credentials.clear_memo()
    facts._scored_pieces.cache_clear()
    wall, cpu = time.perf_counter(), time.process_time()
    result = prune_messages(session.messages, system=session.system, settings=PruningSettings(), **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_levels(sessions: list[Session]) -> list[dict]:
    rows = [(level, None) for level, _ in LEVEL_ROWS] + [("auto", t) for t in AUTO_TARGETS]
    out = []
    for level, target in rows:
        before = after = facts = retained = leaked = invalid = 0
        times: list[float] = []
        lost: dict[str, int] = {}
        for session in sessions:
            # An explicit level applies its own shape; the target only matters to auto.
            result, wall, _ = cold_prune(session, level=level, max_tokens=target or 1_000)
            report = fact_report(session, result.messages, session.system)
            before += result.tokens_before
            after += result.tokens_after
            facts += report["facts"]
            retained += report["retained"]
            leaked += len(report["leaked"])
            invalid += bool(validate_conversation(result.messages))
            times.append(wall)
            for kind, carrier, _ in report["lost"]:
                key = f"{kind} ({carrier})"
                lost[key] = lost.get(key, 0) + 1
        out.append({
            "level": level if target is None else f"auto@{target // 1000}K",
            "sessions": len(sessions),
            "tokens_before": before,
            "tokens_after": after,
            "reduction_pct": round(100 * (1 - after / before), 1),
            "facts": facts,
            "retained": retained,
            "retention_pct": round(100 * retained / facts, 1),
            "credential_values_leaked": leaked,
            "invalid_conversations": invalid,
            "median_ms": round(1000 * statistics.median(times), 1),
            "lost_by_kind": dict(sorted(lost.items(), key=lambda kv: -kv[1])),
        })
    return out


def run_500k(repeats: int = 5) -> dict:
    session = build_long_conversation(500_000)
    exact = tok.estimate_request_tokens(session.messages, session.system)
    tok._encoding()  # the tokenizer loads once per process, not per call
    walls, cpus = [], []
    result = None
    for _ in range(repeats):
        result, wall, cpu = cold_prune(session, level="auto", max_tokens=10_000)
        walls.append(wall)
        cpus.append(cpu)
    assert result is not None
    report = fact_report(session, result.messages, session.system)
    return {
        "messages": len(session.messages),
        "tokens_exact": exact,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "reduction_pct": result.reduction_pct,
        "level": result.level,
        "valid": validate_conversation(result.messages) == [],
        "facts": report["facts"],
        "retained": report["retained"],
        "credential_values_leaked": len(report["leaked"]),
        "median_wall_s": round(statistics.median(walls), 3),
        "median_cpu_s": round(statistics.median(cpus), 3),
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
    }


def print_levels(rows: list[dict]) -> None:
    print(f"\n{'level':<11} {'tokens before':>13} {'after':>10} {'cut':>6} {'facts kept':>13} {'leaked':>6} {'invalid':>7} {'median':>8}")
    for r in rows:
        kept = f"{r['retained']}/{r['facts']} {r['retention_pct']:.1f}%"
        print(f"{r['level']:<11} {r['tokens_before']:>13,} {r['tokens_after']:>10,} {r['reduction_pct']:>5.1f}% {kept:>13} "
              f"{r['credential_values_leaked']:>6} {r['invalid_conversations']:>7} {r['median_ms']:>6.0f}ms")
    for r in rows:
        if r["lost_by_kind"]:
            print(f"  lost at {r['level']}: " + ", ".join(f"{k} x{v}" for k, v in r["lost_by_kind"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pruning", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=24, help="sessions in total, split between the two phrasing pools")
    ap.add_argument("--size", type=int, default=60_000, help="typical session size in tokens")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--repeats", type=int, default=5, help="cold runs of the 500K case")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    half = max(1, args.sessions // 2)
    sessions = generate_sessions(half, seed=args.seed, target_tokens=args.size, pool="dev")
    sessions += generate_sessions(args.sessions - half, seed=args.seed + 1, target_tokens=args.size, pool="holdout")
    sizes = [tok.estimate_request_tokens(s.messages, s.system) for s in sessions]
    print(f"{len(sessions)} sessions, {min(sizes):,}-{max(sizes):,} tokens (median {int(statistics.median(sizes)):,}), "
          f"{min(len(s.messages) for s in sessions)}-{max(len(s.messages) for s in sessions)} messages, "
          f"{sum(len(s.facts) for s in sessions)} planted facts")
    levels = run_levels(sessions)
    print_levels(levels)

    big = run_500k(args.repeats)
    print(f"\n500K -> 10K (level=auto): {big['messages']:,} messages, {big['tokens_exact']:,} tokens "
          f"(estimated {big['tokens_before']:,}) -> {big['tokens_after']:,}, cut {big['reduction_pct']}% at {big['level']}, "
          f"valid {big['valid']}, facts {big['retained']}/{big['facts']}, leaked {big['credential_values_leaked']}")
    print(f"  median of {args.repeats} cold runs: {big['median_wall_s']:.3f} s wall, {big['median_cpu_s']:.3f} s CPU "
          f"(wall {big['wall_s']}; CPU time excludes waiting for a shared core)")

    medium = next(r for r in levels if r["level"] == "medium")
    checks = {
        "medium keeps >= 95% of facts": medium["retention_pct"] >= 95.0,
        "medium cuts >= 50% of tokens": medium["reduction_pct"] >= 50.0,
        "no credential value survives": all(r["credential_values_leaked"] == 0 for r in levels) and big["credential_values_leaked"] == 0,
        "every result is valid": all(r["invalid_conversations"] == 0 for r in levels) and big["valid"],
        "500K -> 10K within the target": big["tokens_after"] <= 10_000 and big["reduction_pct"] >= 95,
        "500K -> 10K under 1 s (median wall)": big["median_wall_s"] < 1.0,
    }
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = {"sessions": len(sessions), "size": args.size, "seed": args.seed, "levels": levels, "prune_500k_to_10k": big, "checks": checks}
    (OUT_DIR / "pruning.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {OUT_DIR / 'pruning.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
