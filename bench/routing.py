"""Model-routing benchmark: does the fitted router beat a random one, on data it did not fit?

    python -m bench.routing              # cross-validated figures (a few minutes)
    python -m bench.routing --folds 10 --seeds 2000

1. Outside data (RouteLLM GSM8K + MMLU dev half, real weak/strong outcomes):
   the fitting procedure of ``bench.fit_router`` is cross-validated (k folds;
   each prompt is scored by a model fitted without it) in two ways: folds at
   random, and folds that keep every MMLU subject whole (a subject's words
   cannot leak from training into its test fold). For the default dial
   (``routing.strong_threshold``): the share sent to the strong tier, the
   routed mix's accuracy, a random router sending the same share (mean and
   spread over many random routers), PGR (performance gap recovered:
   (acc - weak) / (strong - weak); a random router recovers its share) and the
   z-score of the routed accuracy over the random routers; per dataset too.
2. The dial curve: for each threshold, share to the strong tier, accuracy, PGR,
   z, and the ESTIMATED cost against sending everything to the default model
   (same tokens on either model, priced with the packaged table).
3. Our own labelled prompts (tests/data/routing_prompts.jsonl, written for this
   project, labels are the writer's judgement): out-of-fold, complex/expert
   sent to the cheap tier and simple (and moderate) sent to the strong tier,
   for each threshold; the shipped model on the same prompts (in-sample: they
   are part of its fit, so this row only shows what the shipped file does); and
   the shipped model on tests/data/routing_holdout.jsonl, ours too, never fitted on.
4. Latency of ``classify`` (median of the per-call times, and p99).

Writes bench/out/routing.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

from bench.fit_router import HYPER, OURS_PATH, Example, Hyper, fit, load_ours, load_routellm, predict
from mcp_tars.pricing import PriceTable
from mcp_tars.routing import RoutingSettings, choose_model, classify
from mcp_tars.settings import HAIKU, SONNET

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
HOLDOUT_PATH = ROOT / "tests" / "data" / "routing_holdout.jsonl"
DIAL = (0.1, 0.15, 0.2, 0.25, 0.3, 0.33, 0.35, 0.4, 0.5, 0.6)
SCHEMES = ("random", "subject")


# --------------------------------------------------------------------------- cross-validation


def assign_folds(examples: list[Example], k: int, scheme: str, seed: int = 0) -> list[int]:
    """Fold of each example. "subject": every MMLU subject whole in one fold
    (balanced by size); GSM8K and our prompts at random either way."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    folds = [0] * len(examples)
    for position, i in enumerate(order):
        folds[i] = position % k
    if scheme == "subject":
        sizes: dict[str, int] = defaultdict(int)
        for e in examples:
            if e.dataset == "mmlu":
                sizes[e.group] += 1
        load = [0] * k
        fold_of: dict[str, int] = {}
        for subject in sorted(sizes, key=lambda g: (-sizes[g], g)):
            j = min(range(k), key=lambda j: load[j])
            fold_of[subject] = j
            load[j] += sizes[subject]
        folds = [fold_of[e.group] if e.dataset == "mmlu" else f for e, f in zip(examples, folds)]
    return folds


def cross_validate(examples: list[Example], hyper: Hyper = HYPER, k: int = 5,
                   schemes: tuple[str, ...] = SCHEMES) -> dict[str, list[float]]:
    """Out-of-fold probability of every example, per fold scheme."""
    out: dict[str, list[float]] = {}
    for scheme in schemes:
        folds = assign_folds(examples, k, scheme)
        p = [0.0] * len(examples)
        for j in range(k):
            bias, weights = fit([e for e, f in zip(examples, folds) if f != j], hyper)
            for i, (e, f) in enumerate(zip(examples, folds)):
                if f == j:
                    p[i] = predict(bias, weights, e)
        out[scheme] = p
    return out


# --------------------------------------------------------------------------- scoring


def routed_figures(rows: list[tuple[float, Example]], threshold: float, seeds: int = 0) -> dict:
    """Accuracy of sending p >= threshold to the strong model, against random
    routers sending the same share (analytic spread; simulated too if seeds)."""
    n = len(rows)
    to_strong = [p >= threshold for p, _ in rows]
    k = sum(to_strong)
    weak = [int(e.weak_ok) for _, e in rows]
    strong = [int(e.strong_ok) for _, e in rows]
    acc_weak, acc_strong = sum(weak) / n, sum(strong) / n
    acc = sum(s if go else w for go, w, s in zip(to_strong, weak, strong)) / n
    gain = [s - w for w, s in zip(weak, strong)]
    mean_gain = sum(gain) / n
    variance = sum((g - mean_gain) ** 2 for g in gain) / n
    random_mean = acc_weak + (k / n) * (acc_strong - acc_weak)
    random_sd = math.sqrt(k * (n - k) / (n - 1) * variance) / n if 0 < k < n else 0.0
    gap = acc_strong - acc_weak
    figures = {
        "prompts": n, "strong_share": k / n, "accuracy_weak": acc_weak, "accuracy_strong": acc_strong,
        "accuracy_routed": acc, "accuracy_random_mean": random_mean, "accuracy_random_sd": random_sd,
        "pgr": (acc - acc_weak) / gap if gap else 0.0, "pgr_random": k / n,
        "z": (acc - random_mean) / random_sd if random_sd else 0.0,
        "estimated_cost_vs_default": estimated_cost_share(k / n),
    }
    if seeds:
        accs = []
        for seed in range(seeds):
            picked = set(random.Random(seed).sample(range(n), k))
            accs.append(sum(strong[i] if i in picked else weak[i] for i in range(n)) / n)
        sd = statistics.pstdev(accs)
        figures["z_simulated"] = (acc - statistics.mean(accs)) / sd if sd else 0.0
        figures["random_seeds"] = seeds
        figures["random_at_or_above_routed"] = sum(a >= acc for a in accs) / seeds
    return figures


_PRICES = PriceTable()


def estimated_cost_share(strong_share: float, cheap: str = HAIKU, default: str = SONNET) -> float:
    """ESTIMATE: cost of the mix over all-on-default, with the same tokens on
    either model (the blend of input and output price ratios, weighted 3:1)."""
    c, _ = _PRICES.price(cheap)
    d, _ = _PRICES.price(default)
    ratio = float((3 * c.input + c.output) / (3 * d.input + d.output))
    return strong_share + (1 - strong_share) * ratio


def ours_figures(rows: list[tuple[float, Example]], threshold: float) -> dict:
    by_level: dict[str, list[float]] = defaultdict(list)
    for p, e in rows:
        by_level[e.level].append(p)
    hard = by_level["complex"] + by_level["expert"]
    return {
        "prompts": len(rows),
        "hard_to_cheap": sum(p < threshold for p in hard) / len(hard),
        "simple_to_strong": sum(p >= threshold for p in by_level["simple"]) / len(by_level["simple"]),
        "moderate_to_strong": sum(p >= threshold for p in by_level["moderate"]) / len(by_level["moderate"]),
        "strong_share": sum(p >= threshold for p, _ in rows) / len(rows),
    }


def evaluate(examples: list[Example], probabilities: list[float], threshold: float, seeds: int = 0) -> dict:
    outside = [(p, e) for p, e in zip(probabilities, examples) if e.source == "routellm"]
    ours = [(p, e) for p, e in zip(probabilities, examples) if e.source == "ours"]
    return {
        "routellm": routed_figures(outside, threshold, seeds),
        "by_dataset": {d: routed_figures([(p, e) for p, e in outside if e.dataset == d], threshold)
                       for d in ("gsm8k", "mmlu")},
        "ours": ours_figures(ours, threshold),
    }


def summary_for_model_file(cv: dict[str, list[float]], examples: list[Example], folds: int) -> dict:
    """The cross-validated headline figures stored beside the weights."""
    threshold = RoutingSettings().strong_threshold
    out: dict = {"folds": folds, "threshold": threshold, "full figures": "python -m bench.routing"}
    for scheme, p in cv.items():
        r = evaluate(examples, p, threshold)
        out[scheme] = {"strong_share": round(r["routellm"]["strong_share"], 4), "pgr": round(r["routellm"]["pgr"], 4),
                       "z": round(r["routellm"]["z"], 2), "ours_hard_to_cheap": round(r["ours"]["hard_to_cheap"], 4),
                       "ours_simple_to_strong": round(r["ours"]["simple_to_strong"], 4)}
    return out


# --------------------------------------------------------------------------- shipped model


def shipped_on(path: Path, settings: RoutingSettings) -> dict:
    """The shipped model and default settings on a file of our labelled prompts."""
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if "_meta" not in r]
    cheap = settings.tier_models["simple"]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # level -> [to cheap, total]
    above_default = 0
    timings: list[float] = []
    for r in rows:
        messages = r.get("messages") or [{"role": "user", "content": r["prompt"]}]
        started = time.perf_counter()
        c = classify(messages, r.get("system"), r.get("tools"), settings=settings)
        timings.append(time.perf_counter() - started)
        d = choose_model(c, settings)
        counts[r["level"]][0] += d.model == cheap
        counts[r["level"]][1] += 1
        above_default += d.model not in (cheap, settings.default_model)
    hard = [counts["complex"][i] + counts["expert"][i] for i in (0, 1)]
    return {"prompts": len(rows), "hard_to_cheap": hard[0] / hard[1],
            "simple_to_strong": 1 - counts["simple"][0] / counts["simple"][1],
            "moderate_to_strong": 1 - counts["moderate"][0] / counts["moderate"][1],
            "above_default_model": above_default,
            "classify_ms_p50": 1000 * statistics.median(timings), "classify_ms_p99": 1000 * sorted(timings)[int(0.99 * (len(timings) - 1))]}


def latency(examples_text: list[str], settings: RoutingSettings, repeats: int = 3) -> dict:
    per_run = []
    for _ in range(repeats):
        timings = []
        for text in examples_text:
            started = time.perf_counter()
            classify([{"role": "user", "content": text}], settings=settings)
            timings.append(time.perf_counter() - started)
        per_run.append((statistics.median(timings), sorted(timings)[int(0.99 * (len(timings) - 1))]))
    return {"prompts": len(examples_text), "runs": repeats, "load_average": os.getloadavg()[0],
            "p50_ms": 1000 * statistics.median(r[0] for r in per_run), "p99_ms": 1000 * statistics.median(r[1] for r in per_run)}


# --------------------------------------------------------------------------- report


def print_report(result: dict) -> None:
    t = result["threshold"]
    print(f"Fitted router, {result['folds']}-fold cross-validation (each prompt scored by a model fitted without it)")
    print(f"outside data: RouteLLM dev half, {result['routellm_prompts']:,} GSM8K + MMLU prompts with real weak "
          "(Mixtral-8x7B) / strong (GPT-4) outcomes")
    print(f"default dial: routing.strong_threshold = {t}")
    print()
    print(f"{'folds':<22} {'data':<7} {'prompts':>7} {'strong':>7} {'weak':>6} {'strong':>7} {'routed':>7} "
          f"{'random':>13} {'PGR':>6} {'rand':>5} {'z':>6}")
    for scheme in SCHEMES:
        r = result["cv"][scheme]["at_default"]
        label = "random folds" if scheme == "random" else "MMLU subjects held out"
        for name, f in (("all", r["routellm"]), *r["by_dataset"].items()):
            print(f"{label:<22} {name:<7} {f['prompts']:>7,} {f['strong_share']:>7.1%} {f['accuracy_weak']:>6.1%} "
                  f"{f['accuracy_strong']:>7.1%} {f['accuracy_routed']:>7.2%} {f['accuracy_random_mean']:>7.2%}±"
                  f"{f['accuracy_random_sd']:.2%} {f['pgr']:>6.3f} {f['pgr_random']:>5.2f} {f['z']:>6.2f}")
            label = ""
    sim = result["cv"]["random"]["at_default"]["routellm"]
    if "z_simulated" in sim:
        print(f"(random folds, all: z over {sim['random_seeds']:,} simulated random routers {sim['z_simulated']:.2f}; "
              f"{sim['random_at_or_above_routed']:.1%} of them as good as the router)")
    print()
    print("the dial (random folds): threshold -> share to the strong tier, accuracy, cost; our prompts out-of-fold")
    print(f"{'threshold':>12} | {'strong':>7} {'accuracy':>8} {'PGR':>6} {'z':>6} {'est. cost':>9} | "
          f"{'ours: hard->cheap':>17} {'simple->strong':>14} {'moderate->strong':>16} {'strong':>7}")
    for point in result["dial"]:
        f, o = point["routellm"], point["ours"]
        mark = "  <- default" if point["threshold"] == t else ""
        print(f"{point['threshold']:>12.2f} | {f['strong_share']:>7.1%} {f['accuracy_routed']:>8.2%} {f['pgr']:>6.3f} "
              f"{f['z']:>6.2f} {f['estimated_cost_vs_default']:>9.1%} | {o['hard_to_cheap']:>17.1%} "
              f"{o['simple_to_strong']:>14.1%} {o['moderate_to_strong']:>16.1%} {o['strong_share']:>7.1%}{mark}")
    w = result["routellm_reference"]
    print(f"{'(all weak)':>12} | {0:>7.1%} {w['accuracy_weak']:>8.2%} {0:>6.3f} {'':>6} {estimated_cost_share(0):>9.1%} |")
    print(f"{'(all strong)':>12} | {1:>7.1%} {w['accuracy_strong']:>8.2%} {1:>6.3f} {'':>6} {1:>9.1%} |")
    print("est. cost: ESTIMATED share of the all-default bill (same tokens on either model; packaged Haiku 5.5 / "
          "Sonnet 5.5 prices)")
    print()
    s = result["shipped_on_ours"]
    ours_cv = result["cv"]["random"]["at_default"]["ours"]
    print(f"our labelled prompts ({s['prompts']}, tests/data/routing_prompts.jsonl, written for this project):")
    print(f"  out-of-fold (honest)   complex/expert -> cheap {ours_cv['hard_to_cheap']:.1%}, simple -> strong "
          f"{ours_cv['simple_to_strong']:.1%}, moderate -> strong {ours_cv['moderate_to_strong']:.1%}")
    print(f"  shipped model (fitted on them, in-sample) complex/expert -> cheap {s['hard_to_cheap']:.1%}, simple -> strong "
          f"{s['simple_to_strong']:.1%}, moderate -> strong {s['moderate_to_strong']:.1%}, calls above the default model "
          f"{s['above_default_model']}")
    h = result["shipped_on_holdout"]
    print(f"our held-out prompts ({h['prompts']}, tests/data/routing_holdout.jsonl, never fitted on): complex/expert -> "
          f"cheap {h['hard_to_cheap']:.1%}, simple -> strong {h['simple_to_strong']:.1%}, moderate -> strong "
          f"{h['moderate_to_strong']:.1%}, calls above the default model {h['above_default_model']}")
    lat = result["latency"]
    print(f"classify latency: p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms (median of {lat['runs']} runs over "
          f"{lat['prompts']:,} RouteLLM prompts; target p50 < 0.5 ms; load average {lat['load_average']:.1f} on "
          f"{os.cpu_count()} CPUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1000, help="simulated random routers for the headline z")
    args = parser.parse_args(argv)
    settings = RoutingSettings()
    t = settings.strong_threshold
    started = time.perf_counter()
    outside = load_routellm()
    examples = outside + load_ours()
    cv = cross_validate(examples, HYPER, k=args.folds)
    result = {"threshold": t, "folds": args.folds, "routellm_prompts": len(outside), "hyperparameters": HYPER.__dict__,
              "cv": {scheme: {"at_default": evaluate(examples, p, t, args.seeds if scheme == "random" else 0)}
                     for scheme, p in cv.items()}}
    result["dial"] = [{"threshold": x, **evaluate(examples, cv["random"], x)} for x in DIAL]
    result["routellm_reference"] = result["cv"]["random"]["at_default"]["routellm"]
    result["shipped_on_ours"] = shipped_on(OURS_PATH, settings)
    result["shipped_on_holdout"] = shipped_on(HOLDOUT_PATH, settings)
    result["latency"] = latency([e.text for e in outside[:2000]], settings)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_report(result)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "routing.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"wrote {OUT_DIR / 'routing.json'} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
