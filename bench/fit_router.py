"""Fit the model router's weights and write them to mcp_tars/data/router.json.

    python -m bench.fit_router            # fit on everything, write the model
    python -m bench.fit_router --check    # fit again and compare with the shipped file

What it fits: a logistic regression of "the strong tier is needed" on the named
features and word terms of ``mcp_tars.routing.features`` (pure Python; FTRL-
proximal with L1 + L2, so most words get no weight and the file stays small).

On what, with which labels:

* ``routellm``: /work/shared/data/routellm-dev.jsonl.gz (or ``--routellm``),
  7,464 GSM8K and MMLU prompts with whether a weak model (Mixtral-8x7B) and a
  strong one (GPT-4) answered correctly. Label 1 when the weak model was wrong
  and the strong one right (only then does the strong tier buy anything);
  read at run time, never copied into the repository.
* ``ours``: tests/data/routing_prompts.jsonl, prompts written for this project
  with a level each. complex/expert -> 1 (the default model is needed);
  simple/moderate -> 0 (routine lookups, edits, explanations and generation a
  cheap model does). The labels are the writer's judgement, not outcomes, and
  are reported apart from the outside data.

``bench.routing`` cross-validates this same procedure and prints the figures;
the summary is stored in the file beside the weights.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mcp_tars.routing.features import extract
from mcp_tars.routing.model import RouterModel, packaged_model_path, sigmoid

ROOT = Path(__file__).resolve().parent.parent
ROUTELLM_PATH = ROOT.parent / "shared" / "data" / "routellm-dev.jsonl.gz"
if not ROUTELLM_PATH.exists():
    ROUTELLM_PATH = Path("/work/shared/data/routellm-dev.jsonl.gz")
OURS_PATH = ROOT / "tests" / "data" / "routing_prompts.jsonl"


@dataclass(frozen=True)
class Hyper:
    """Fitting knobs, chosen by cross-validating a small grid (out-of-fold figures: python -m bench.routing)."""

    alpha: float = 0.05  # FTRL learning rate
    beta: float = 1.0
    l1: float = 5.0  # most terms get no weight: a small file, and fewer words learned by heart
    l2: float = 2.0
    epochs: int = 10
    min_df: int = 10  # a term seen in fewer training prompts gets no weight
    ours_weight: float = 10.0  # one of our labelled prompts counts as this many outside prompts
    term_value: float = 0.5  # terms enter the fit at this value: regularised harder than named signals


HYPER = Hyper()


@dataclass
class Example:
    source: str  # "routellm" | "ours"
    group: str  # subject (MMLU), "gsm8k", or our prompt's level
    label: int  # 1: the strong tier is needed
    x: list[tuple[str, float]]  # feature -> value (terms 1.0)
    weak_ok: bool | None = None
    strong_ok: bool | None = None
    dataset: str = ""
    level: str = ""
    id: str = ""
    text: str = ""


def vectorise(messages: list[dict], system=None, tools=None) -> list[tuple[str, float]]:
    f = extract(messages, system, tools)
    return [(k, v) for k, v in f.values.items() if v] + [(t, 1.0) for t in sorted(f.terms)]  # one order: a repeatable fit


def load_routellm(path: Path = ROUTELLM_PATH) -> list[Example]:
    if not path.exists():
        raise SystemExit(f"{path}: the RouteLLM dev data is missing (pass --routellm PATH)")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            weak, strong = bool(r["weak_ok"]), bool(r["strong_ok"])
            out.append(Example("routellm", r["subject"] or r["dataset"], int(strong and not weak),
                               vectorise([{"role": "user", "content": r["prompt"]}]), weak, strong,
                               r["dataset"], id=f"{r['dataset']}-{i}", text=r["prompt"]))
    return out


def load_ours(path: Path = OURS_PATH) -> list[Example]:
    out = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "_meta" in r:
            continue
        messages = r.get("messages") or [{"role": "user", "content": r["prompt"]}]
        out.append(Example("ours", r["level"], int(r["level"] in ("complex", "expert")),
                           vectorise(messages, r.get("system"), r.get("tools")), level=r["level"], id=r["id"]))
    return out


# --------------------------------------------------------------------------- fitting


def fit(train: list[Example], hyper: Hyper = HYPER, seed: int = 0) -> tuple[float, dict[str, float]]:
    """FTRL-proximal logistic regression (McMahan et al. 2013), a few passes in a
    fixed shuffled order: deterministic for a given seed."""
    df = Counter(name for e in train for name, _ in e.x if ":" in name)
    allowed = {name for name, n in df.items() if n >= hyper.min_df}
    tv = hyper.term_value
    rows = [([(n, v) if ":" not in n else (n, v * tv) for n, v in e.x if ":" not in n or n in allowed],
             e.label, hyper.ours_weight if e.source == "ours" else 1.0) for e in train]
    z: dict[str, float] = {}
    n: dict[str, float] = {}
    a, b, l1, l2 = hyper.alpha, hyper.beta, hyper.l1, hyper.l2

    def weight(name: str) -> float:
        zi = z.get(name, 0.0)
        if abs(zi) <= l1:
            return 0.0
        return -(zi - math.copysign(l1, zi)) / ((b + math.sqrt(n.get(name, 0.0))) / a + l2)

    order = list(range(len(rows)))
    rng = random.Random(seed)
    bias_name = "(bias)"
    for _ in range(hyper.epochs):
        rng.shuffle(order)
        for i in order:
            x, y, w = rows[i]
            x = [(bias_name, 1.0), *x]
            ws = [weight(name) for name, _ in x]
            p = sigmoid(sum(wi * v for wi, (_, v) in zip(ws, x)))
            g = (p - y) * w
            for wi, (name, v) in zip(ws, x):
                gi = g * v
                ni = n.get(name, 0.0)
                sigma = (math.sqrt(ni + gi * gi) - math.sqrt(ni)) / a
                z[name] = z.get(name, 0.0) + gi - sigma * wi
                n[name] = ni + gi * gi
    weights = {name: weight(name) * (tv if ":" in name else 1.0) for name in z}  # terms score 1.0 at run time
    bias = weights.pop(bias_name, 0.0)
    return bias, {k: round(v, 5) for k, v in sorted(weights.items()) if abs(v) >= 1e-4}


def predict(bias: float, weights: dict[str, float], e: Example) -> float:
    return sigmoid(bias + sum(weights.get(name, 0.0) * v for name, v in e.x))


def build_model(examples: list[Example], hyper: Hyper = HYPER, about: dict | None = None) -> RouterModel:
    bias, weights = fit(examples, hyper)
    return RouterModel(round(bias, 5), weights, about or {})


def describe_fit(examples: list[Example], hyper: Hyper, cv: dict | None = None) -> dict:
    counts = Counter(e.source for e in examples)
    positives = Counter(e.source for e in examples if e.label)
    about = {
        "fitted_by": "python -m bench.fit_router",
        "fitted_at": dt.date.today().isoformat(),
        "model": "logistic regression (FTRL-proximal, L1 + L2) over named features and word/word-pair terms "
                 "of mcp_tars/routing/features.py; p = P(the cheap model fails where the strong one succeeds)",
        "data": {
            "routellm": {"file": "shared/data/routellm-dev.jsonl.gz (lm-sys/RouteLLM GSM8K + MMLU, dev half)",
                         "prompts": counts["routellm"], "label_1": positives["routellm"],
                         "label": "weak model (Mixtral-8x7B) wrong and strong model (GPT-4) right"},
            "ours": {"file": "tests/data/routing_prompts.jsonl (written for this project)",
                     "prompts": counts["ours"], "label_1": positives["ours"],
                     "label": "level complex or expert (the writer's judgement)"},
        },
        "hyperparameters": hyper.__dict__,
    }
    if cv:
        about["cross_validation"] = cv
    return about


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fit_router", description=__doc__.splitlines()[0])
    parser.add_argument("--routellm", type=Path, default=ROUTELLM_PATH)
    parser.add_argument("--out", type=Path, default=packaged_model_path())
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validation summary stored in the file")
    parser.add_argument("--check", action="store_true", help="fit and compare with --out instead of writing it")
    args = parser.parse_args(argv)
    examples = load_routellm(args.routellm) + load_ours()
    cv = None
    if not args.no_cv:
        from bench.routing import cross_validate, summary_for_model_file

        cv = summary_for_model_file(cross_validate(examples, HYPER, k=5), examples, folds=5)
    model = build_model(examples, HYPER, describe_fit(examples, HYPER, cv))
    if args.check:
        shipped = RouterModel.from_dict(json.loads(args.out.read_text("utf-8")))
        same = shipped.weights == model.weights and shipped.bias == model.bias
        print(f"{args.out}: {'matches' if same else 'DIFFERS FROM'} a fresh fit ({len(model.weights)} weights)")
        return 0 if same else 1
    args.out.write_text(json.dumps(model.to_dict(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.out}: {len(model.weights)} weights, bias {model.bias:+.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
