"""Fit the semantic cache's calibrated decision and write it as data.

    python -m bench.cache_fit            # cross-validate, fit, write mcp_tars/data/cache_decision.json
    python -m bench.cache_fit --check    # cross-validate only, print the table

Data: the Quora Question Pairs dev half (``../shared/data/qqp-dev.jsonl.gz``,
read at run time, never copied) and our own labelled pairs
(``tests/data/cache_pairs.jsonl``, context-free ones). Every pair goes through
the guards first; a vetoed pair scores 0 (the cache never answers it). The
rest get ``pair_features`` and a logistic model (L2, Newton's method, numpy).

Cross-validation: 5 folds grouped by connected question (a question never
sits in two folds, as in the independent check's sample with no question
reused). Reported figures are out-of-fold only. The shipped threshold is the
out-of-fold score above which at most ``TARGET_FALSE_HIT_RATE`` of the Quora
non-duplicates would be answered, and above every out-of-fold score of our
own negatives; the model is then refitted on all pairs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

from mcp_tars.cache.analysis import analyse
from mcp_tars.cache.decision import DECISION_FILE, same_question
from mcp_tars.cache.embedding import MODEL_NAME, shared_embedder
from mcp_tars.cache.guards import FEATURES, guard_veto, pair_features

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the repository (a worktree sits one level deeper)
QQP_CANDIDATES = (ROOT.parent / "shared" / "data" / "qqp-dev.jsonl.gz",
                  ROOT.parent.parent / "shared" / "data" / "qqp-dev.jsonl.gz")
PAIRS_PATH = ROOT / "tests" / "data" / "cache_pairs.jsonl"
OUT_PATH = ROOT / "mcp_tars" / "data" / DECISION_FILE
FOLDS = 5
L2 = 1.0
# Aim at half of the 0.3% the independent check allows: the held-out half
# has been measured at about twice the dev half's false-hit rate before.
TARGET_FALSE_HIT_RATE = 0.0015
OPERATING_POINTS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01)
TERMS: tuple[tuple[str, ...], ...] = tuple((f,) for f in FEATURES) + (
    ("cos", "cos"), ("cos_terms", "cos_terms"), ("cos", "overlap"), ("cos_terms", "unmatched_max"),
    ("same_terms", "same_soft"), ("same_terms", "cos"), ("one_term_differs", "cos"), ("one_term_differs", "unmatched_max"),
)


def qqp_path(path: Path | None = None) -> Path:
    p = path or next((c for c in QQP_CANDIDATES if c.exists()), QQP_CANDIDATES[0])
    if not p.exists():
        raise SystemExit(f"{p} not found: the Quora dev pairs live in ../shared/data/ beside the repository")
    return p


def load_pairs(qqp: Path | None = None) -> list[dict]:
    """Every pair as {a, b, label, source, group}."""
    rows = []
    with gzip.open(qqp_path(qqp), "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"a": r["text_a"], "b": r["text_b"], "label": int(r["label"]), "source": "qqp"})
    with open(PAIRS_PATH, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("a_context") or r.get("b_context") or r["category"].startswith("context_"):
                continue
            rows.append({"a": r["a"], "b": r["b"], "label": int(r["label"] == "hit"), "source": "ours",
                         "category": r["category"]})
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in rows:
        parent[find(r["source"] + r["a"])] = find(r["source"] + r["b"])
    for r in rows:
        r["group"] = find(r["source"] + r["a"])
    return rows


def featurize(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Term matrix (vetoed rows: zeros), labels, veto reasons ("same question":
    the decision matches it before the model, as ``decide`` does)."""
    emb = shared_embedder()
    X = np.zeros((len(rows), len(TERMS)))
    vetoes: list[str | None] = []
    for i, r in enumerate(rows):
        a, b = analyse(r["a"]), analyse(r["b"])
        reason = guard_veto(a, b, embedder=emb)
        if reason is None and same_question(a, b):
            reason = "same question"
        vetoes.append(reason)
        if reason:
            continue
        f = pair_features(a, b, emb.embed(r["a"]), emb.embed(r["b"]), emb)
        X[i] = [np.prod([f[n] for n in term]) for term in TERMS]
    return X, np.array([r["label"] for r in rows]), vetoes


def fit_logistic(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, weights, bias) by Newton's method with an L2 penalty."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
    w = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], L2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(Z @ w, -60, 60)))
        grad = Z.T @ (p - y) + penalty * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[:-1], float(w[-1])


def predict(params, X: np.ndarray) -> np.ndarray:
    mean, scale, w, b = params
    return 1 / (1 + np.exp(-np.clip(((X - mean) / scale) @ w + b, -60, 60)))


def folds_of(rows: list[dict]) -> np.ndarray:
    """A fold per connected group, balanced by pair count (deterministic)."""
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[r["group"]] = sizes.get(r["group"], 0) + 1
    load = [0] * FOLDS
    fold_of: dict[str, int] = {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        k = min(range(FOLDS), key=lambda i: load[i])
        fold_of[g] = k
        load[k] += sizes[g]
    return np.array([fold_of[r["group"]] for r in rows])


def cross_validate(rows, X, y, vetoes) -> np.ndarray:
    """Out-of-fold probabilities (0 for vetoed pairs, 1 for the same question in another framing)."""
    folds = folds_of(rows)
    live = np.array([v is None for v in vetoes])
    oof = np.array([1.0 if v == "same question" else 0.0 for v in vetoes])
    for k in range(FOLDS):
        train, test = (folds != k) & live, (folds == k) & live
        oof[test] = predict(fit_logistic(X[train], y[train]), X[test])
    return oof


def threshold_for(scores_neg: np.ndarray, rate: float, forced: np.ndarray | None = None) -> float:
    """The smallest threshold with at most ``rate`` of these negatives
    answered, counting the ``forced`` ones (same question) that always are."""
    n_forced = int(forced.sum()) if forced is not None else 0
    s = np.sort(scores_neg[~forced] if forced is not None else scores_neg)[::-1]
    allowed = int(rate * len(scores_neg)) - n_forced
    if allowed < 0:
        return 1.0
    return float(np.nextafter(s[allowed], 1.0)) if allowed < len(s) else 0.0


def operating_table(rows, y, oof, vetoes) -> list[dict]:
    qqp = np.array([r["source"] == "qqp" for r in rows])
    forced = np.array([v == "same question" for v in vetoes])
    ours = ~qqp
    table = []
    for rate in OPERATING_POINTS:
        t = max(threshold_for(oof[qqp & (y == 0)], rate, forced[qqp & (y == 0)]), 1e-9)
        hit = (oof >= t) | forced
        table.append({
            "target_false_hit_rate": rate, "threshold": round(t, 6),
            "qqp_false_hit_rate": float(hit[qqp & (y == 0)].mean()), "qqp_recall": float(hit[qqp & (y == 1)].mean()),
            "ours_false_hits": int(hit[ours & (y == 0)].sum()), "ours_negatives": int((ours & (y == 0)).sum()),
            "ours_recall": float(hit[ours & (y == 1)].mean()) if (ours & (y == 1)).any() else 0.0,
        })
    return table


def print_table(table: list[dict], title: str) -> None:
    print(title)
    print(f"{'target':>7} {'threshold':>9} | {'QQP false hits':>14} {'QQP recall':>10} | {'ours false hits':>15} {'ours recall':>11}")
    for row in table:
        print(f"{row['target_false_hit_rate']:>7.2%} {row['threshold']:>9.4f} | {row['qqp_false_hit_rate']:>14.3%} "
              f"{row['qqp_recall']:>10.1%} | {row['ours_false_hits']:>6}/{row['ours_negatives']:<8} {row['ours_recall']:>11.1%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cache_fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="cross-validate and print; write nothing")
    ap.add_argument("--qqp", type=Path, default=None, help="path of qqp-dev.jsonl.gz")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = load_pairs(args.qqp)
    X, y, vetoes = featurize(rows)
    print(f"{len(rows)} pairs featurised in {time.perf_counter() - t0:.0f} s "
          f"({sum(v not in (None, 'same question') for v in vetoes)} vetoed by a guard, "
          f"{sum(v == 'same question' for v in vetoes)} the same question in another framing)")
    oof = cross_validate(rows, X, y, vetoes)
    table = operating_table(rows, y, oof, vetoes)
    print_table(table, f"Out-of-fold ({FOLDS} folds grouped by question), guards then logistic decision:")
    if args.check:
        return 0
    qqp = np.array([r["source"] == "qqp" for r in rows])
    ours_neg = np.array([r["source"] == "ours" and r["label"] == 0 for r in rows])
    forced = np.array([v == "same question" for v in vetoes])
    threshold = max(threshold_for(oof[qqp & (y == 0)], TARGET_FALSE_HIT_RATE, forced[qqp & (y == 0)]),
                    float(np.nextafter(oof[ours_neg & ~forced].max(), 1.0)) if (ours_neg & ~forced).any() else 0.0)
    live = np.array([v is None for v in vetoes])
    mean, scale, w, b = fit_logistic(X[live], y[live])
    hit = (oof >= threshold) | forced
    data = {
        "embedding_model": MODEL_NAME,
        "terms": [list(t) for t in TERMS],
        "mean": [round(float(v), 8) for v in mean], "scale": [round(float(v), 8) for v in scale],
        "weights": [round(float(v), 8) for v in w], "bias": round(b, 8), "threshold": round(threshold, 6),
        "fit": {
            "script": "python -m bench.cache_fit",
            "data": {"qqp_dev_pairs": int(qqp.sum()), "our_pairs": int((~qqp).sum()),
                     "qqp_source": "Quora Question Pairs, dev half as packaged by GPTCache (../shared/data/qqp-dev.jsonl.gz)",
                     "ours_source": "tests/data/cache_pairs.jsonl (context-free pairs; written by this project)"},
            "method": f"guards as vetoes; logistic regression on the rest, L2={L2}, Newton; "
                      f"{FOLDS}-fold cross-validation grouped by connected question",
            "target_false_hit_rate": TARGET_FALSE_HIT_RATE,
            "cross_validated_at_threshold": {
                "qqp_false_hit_rate": float(hit[qqp & (y == 0)].mean()), "qqp_recall": float(hit[qqp & (y == 1)].mean()),
                "ours_false_hits": int(hit[ours_neg].sum()),
                "ours_recall": float(hit[~qqp & (y == 1)].mean()),
            },
            "operating_points": table,
        },
    }
    OUT_PATH.write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    print(f"threshold {threshold:.4f}: cross-validated QQP false hits {data['fit']['cross_validated_at_threshold']['qqp_false_hit_rate']:.3%}, "
          f"recall {data['fit']['cross_validated_at_threshold']['qqp_recall']:.1%}\nwrote {OUT_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
