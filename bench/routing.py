"""Model-routing benchmark: classifier quality on the labelled set, the (estimated)
cost of the routed mix, and how much of a strong model's accuracy the router
recovers compared with a random router sending the same share to the strong tier.

    python -m bench.routing
    python -m bench.routing --seeds 2000

1. tests/data/routing_prompts.jsonl: every prompt through ``classify`` and
   ``choose_model`` with the default settings. Prints the confusion matrix
   (true level x predicted level), the share sent to each model, the two
   acceptance rates (complex/expert sent to the cheap tier; simple sent to a
   strong tier) and the latency of ``classify``.
2. Cost, ESTIMATED: input tokens from ``mcp_tars.tokens`` (offline estimate),
   output tokens from a per-true-level guess (OUTPUT_TOKENS_BY_LEVEL below),
   priced with the packaged price table. Compared with sending everything to
   the configured default model. No API call is made; no number here is a bill.
3. tests/data/routing_outcomes.jsonl (maths word problems and multiple-choice
   questions with SYNTHETIC weak/strong correctness labels, see that file's
   header): accuracy of weak-only, strong-only, the router (cheap tier = weak,
   every other tier = strong) and a random router with the same strong share,
   averaged over many seeds. Recovery = (acc - weak) / (strong - weak).

Writes bench/out/routing.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path

from mcp_tars.pricing import PriceTable, Usage
from mcp_tars.routing import LEVELS, RoutingSettings, choose_model, classify
from mcp_tars.tokens import estimate_request_tokens

ROOT = Path(__file__).resolve().parent.parent
PROMPTS_PATH = ROOT / "tests" / "data" / "routing_prompts.jsonl"
OUTCOMES_PATH = ROOT / "tests" / "data" / "routing_outcomes.jsonl"
OUT_DIR = ROOT / "bench" / "out"

# Guessed answer lengths by true level (tokens). Only used for the estimate.
OUTPUT_TOKENS_BY_LEVEL = {"simple": 150, "moderate": 600, "complex": 1500, "expert": 2500}
# The labelled set over-represents hard prompts on purpose (it tests the
# classifier). For the cost estimate we also reweight per-level costs to an
# assumed everyday agent mix. An assumption, printed with the result.
ASSUMED_TRAFFIC_MIX = {"simple": 0.45, "moderate": 0.30, "complex": 0.20, "expert": 0.05}


def load_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                if "_meta" not in row:
                    rows.append(row)
    return rows


def messages_of(row: dict) -> list[dict]:
    return row.get("messages") or [{"role": "user", "content": row["prompt"]}]


def route_labelled(settings: RoutingSettings, prices: PriceTable) -> dict:
    rows = load_jsonl(PROMPTS_PATH)
    confusion: Counter = Counter()
    models: Counter = Counter()
    routed_cost = default_cost = 0.0
    cost_by_level = {lvl: [0.0, 0.0, 0] for lvl in LEVELS}  # routed, default, count
    timings: list[float] = []
    misroutes: list[dict] = []
    cheap = settings.tier_models["simple"]
    for row in rows:
        msgs = messages_of(row)
        started = time.perf_counter()
        complexity = classify(msgs, row.get("system"), row.get("tools"), settings=settings)
        timings.append(time.perf_counter() - started)
        decision = choose_model(complexity, settings)
        confusion[(row["level"], decision.level)] += 1
        models[decision.model] += 1
        out_tokens = OUTPUT_TOKENS_BY_LEVEL[row["level"]]
        in_routed = estimate_request_tokens(msgs, row.get("system"), row.get("tools"), decision.model)
        in_default = estimate_request_tokens(msgs, row.get("system"), row.get("tools"), settings.default_model)
        routed = prices.cost(Usage(input_tokens=in_routed, output_tokens=out_tokens), decision.model).usd or 0.0
        default = prices.cost(Usage(input_tokens=in_default, output_tokens=out_tokens), settings.default_model).usd or 0.0
        routed_cost += routed
        default_cost += default
        level_cost = cost_by_level[row["level"]]
        level_cost[0] += routed
        level_cost[1] += default
        level_cost[2] += 1
        hard_to_cheap = row["level"] in ("complex", "expert") and decision.model == cheap
        simple_to_strong = row["level"] == "simple" and decision.model != cheap
        if hard_to_cheap or simple_to_strong:
            misroutes.append({"id": row["id"], "true": row["level"], "predicted": decision.level, "reason": complexity.reason})

    hard_total = sum(v for (t, _), v in confusion.items() if t in ("complex", "expert"))
    hard_cheap = sum(1 for m in misroutes if m["true"] in ("complex", "expert"))
    simple_total = sum(v for (t, _), v in confusion.items() if t == "simple")
    simple_strong = sum(1 for m in misroutes if m["true"] == "simple")
    exact = sum(v for (t, p), v in confusion.items() if t == p)
    mix_routed = sum(ASSUMED_TRAFFIC_MIX[lvl] * c[0] / c[2] for lvl, c in cost_by_level.items() if c[2])
    mix_default = sum(ASSUMED_TRAFFIC_MIX[lvl] * c[1] / c[2] for lvl, c in cost_by_level.items() if c[2])
    return {
        "prompts": len(rows),
        "confusion": {t: {p: confusion[(t, p)] for p in LEVELS} for t in LEVELS},
        "exact_level_accuracy": exact / len(rows),
        "confusion_share_hard": hard_total / len(rows),
        "model_share": {m: n / len(rows) for m, n in models.most_common()},
        "hard_to_cheap_rate": hard_cheap / hard_total if hard_total else 0.0,
        "simple_to_strong_rate": simple_strong / simple_total if simple_total else 0.0,
        "estimated_cost_routed_usd": routed_cost,
        "estimated_cost_default_usd": default_cost,
        "estimated_saving_pct": 100 * (1 - routed_cost / default_cost) if default_cost else 0.0,
        "estimated_cost_per_call_by_true_level": {
            lvl: {"routed_usd": c[0] / c[2], "default_usd": c[1] / c[2], "prompts": c[2]} for lvl, c in cost_by_level.items() if c[2]
        },
        "assumed_traffic_mix": ASSUMED_TRAFFIC_MIX,
        "estimated_saving_pct_assumed_mix": 100 * (1 - mix_routed / mix_default) if mix_default else 0.0,
        "classify_ms_mean": 1000 * statistics.mean(timings),
        "classify_ms_p99": 1000 * sorted(timings)[int(0.99 * (len(timings) - 1))],
        "misroutes": misroutes,
    }


def accuracy_recovery(settings: RoutingSettings, seeds: int) -> dict:
    rows = load_jsonl(OUTCOMES_PATH)
    cheap = settings.tier_models["simple"]
    to_strong = [choose_model(classify(messages_of(r), settings=settings), settings).model != cheap for r in rows]
    weak = [bool(r["weak_correct"]) for r in rows]
    strong = [bool(r["strong_correct"]) for r in rows]
    n = len(rows)
    acc_weak = sum(weak) / n
    acc_strong = sum(strong) / n
    acc_routed = sum(s if go else w for go, w, s in zip(to_strong, weak, strong)) / n
    k = sum(to_strong)
    random_accs = []
    for seed in range(seeds):
        picked = set(random.Random(seed).sample(range(n), k))
        random_accs.append(sum(strong[i] if i in picked else weak[i] for i in range(n)) / n)
    acc_random = statistics.mean(random_accs)
    gap = acc_strong - acc_weak

    def recovery(acc: float) -> float:
        return (acc - acc_weak) / gap if gap else 0.0

    by_difficulty: dict[str, dict] = {}
    for r, go in zip(rows, to_strong):
        d = by_difficulty.setdefault(f"{r['kind']}:{r['difficulty']}", {"n": 0, "to_strong": 0})
        d["n"] += 1
        d["to_strong"] += int(go)
    return {
        "prompts": n,
        "strong_share": k / n,
        "accuracy_weak_only": acc_weak,
        "accuracy_strong_only": acc_strong,
        "accuracy_routed": acc_routed,
        "accuracy_random_same_share_mean": acc_random,
        "accuracy_random_same_share_stdev": statistics.pstdev(random_accs),
        "recovery_routed": recovery(acc_routed),
        "recovery_random_mean": recovery(acc_random),
        "random_seeds": seeds,
        "random_runs_at_or_above_routed": sum(a >= acc_routed for a in random_accs) / seeds,
        "to_strong_by_difficulty": by_difficulty,
        "note": "outcome labels are synthetic (see the header of tests/data/routing_outcomes.jsonl)",
    }


def print_report(labelled: dict, recovery: dict) -> None:
    print(f"Labelled set: {labelled['prompts']} prompts ({PROMPTS_PATH.relative_to(ROOT)})")
    print()
    print("confusion (rows: true level, columns: routed level)")
    print(f"{'':>10}" + "".join(f"{p:>10}" for p in LEVELS))
    for t in LEVELS:
        print(f"{t:>10}" + "".join(f"{labelled['confusion'][t][p]:>10}" for p in LEVELS))
    print()
    print(f"exact level accuracy                 {labelled['exact_level_accuracy']:.1%}")
    print(f"complex/expert -> cheap tier         {labelled['hard_to_cheap_rate']:.1%}   (target <= 5%)")
    print(f"simple -> strong tier                {labelled['simple_to_strong_rate']:.1%}   (target <= 20%)")
    print("share by model                       " + ", ".join(f"{m} {s:.0%}" for m, s in labelled["model_share"].items()))
    print(f"classify latency                     mean {labelled['classify_ms_mean']:.3f} ms, p99 {labelled['classify_ms_p99']:.3f} ms")
    print()
    print("ESTIMATED cost (offline token estimates, guessed output lengths, packaged prices)")
    print(f"  routed mix                         ${labelled['estimated_cost_routed_usd']:.4f}")
    print(f"  all on the default model           ${labelled['estimated_cost_default_usd']:.4f}")
    print(f"  saving on this set                 {labelled['estimated_saving_pct']:.1f}%  (the set is {labelled['confusion_share_hard']:.0%} complex/expert)")
    print("  per call by true level             " + ", ".join(
        f"{lvl} ${c['routed_usd']:.4f} vs ${c['default_usd']:.4f}" for lvl, c in labelled["estimated_cost_per_call_by_true_level"].items()))
    mix = ", ".join(f"{k} {v:.0%}" for k, v in labelled["assumed_traffic_mix"].items())
    print(f"  saving at an assumed mix ({mix}): {labelled['estimated_saving_pct_assumed_mix']:.1f}%")
    if labelled["misroutes"]:
        print()
        print("misroutes counted above:")
        for m in labelled["misroutes"]:
            print(f"  {m['id']} {m['true']} -> {m['predicted']}: {m['reason'][:110]}")
    print()
    r = recovery
    print(f"Accuracy recovery on {r['prompts']} word problems / multiple-choice questions (SYNTHETIC outcome labels)")
    print(f"  strong share (routed)              {r['strong_share']:.1%}")
    print(f"  accuracy weak only / strong only   {r['accuracy_weak_only']:.1%} / {r['accuracy_strong_only']:.1%}")
    print(f"  routed                             {r['accuracy_routed']:.1%}  recovers {r['recovery_routed']:.0%} of the gap")
    print(f"  random router, same share          {r['accuracy_random_same_share_mean']:.1%} ± {r['accuracy_random_same_share_stdev']:.1%}"
          f"  recovers {r['recovery_random_mean']:.0%}  ({r['random_seeds']} seeds; {r['random_runs_at_or_above_routed']:.1%} of runs >= routed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000, help="random-router seeds to average over")
    args = parser.parse_args()
    settings = RoutingSettings()
    prices = PriceTable()
    labelled = route_labelled(settings, prices)
    recovery = accuracy_recovery(settings, args.seeds)
    print_report(labelled, recovery)
    # The same routing with expert work kept on the default model: what the
    # Opus tier costs on top of the downward routing.
    no_opus = RoutingSettings(tier_models={**settings.tier_models, "expert": settings.default_model})
    variant = route_labelled(no_opus, prices)
    print()
    print(f"Variant: expert tier = {settings.default_model} (tier_models.expert in the config)")
    print(f"  ESTIMATED saving on this set {variant['estimated_saving_pct']:.1f}%, at the assumed mix {variant['estimated_saving_pct_assumed_mix']:.1f}%")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "routing.json").write_text(
        json.dumps({"labelled": labelled, "recovery": recovery, "variant_expert_on_default": variant}, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
