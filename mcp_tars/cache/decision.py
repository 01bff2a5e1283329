"""The calibrated "same answer?" decision for two questions that passed the guards.

A logistic model over ``guards.pair_features`` (similarities of the static
embeddings, word overlap, unmatched words, one-sided entities / question
words / tense / persons, moved terms), fitted by ``python -m bench.cache_fit``
on the Quora Question Pairs dev half plus our own labelled pairs, with
grouped cross-validation (no question in two folds). Its parameters and the
record of the fit (data, folds, the cross-validated false-hit rate and recall
at the shipped threshold) are data: ``mcp_tars/data/cache_decision.json``.

The threshold is the operating point: the probability above which the cache
answers. It was chosen on the folds' held-out predictions for a stated
false-hit rate (see ``fit`` in the JSON); ``cache.decision_threshold`` in the
configuration overrides it (higher = stricter).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .analysis import QueryAnalysis
from .guards import FEATURES, guard_veto, pair_features
from .lexicon import NEUTRAL_FRAME_WORDS

DECISION_FILE = "cache_decision.json"


@dataclass(frozen=True)
class DecisionModel:
    terms: tuple[tuple[str, ...], ...]  # each term is a product of features (one name: the feature itself)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    embedding_model: str
    record: dict

    @classmethod
    def from_dict(cls, data: dict) -> "DecisionModel":
        terms = tuple(tuple(t) for t in data["terms"])
        unknown = {f for t in terms for f in t} - set(FEATURES)
        if unknown:
            raise ValueError(f"the cache decision file uses unknown features {sorted(unknown)}")
        n = len(terms)
        if not (len(data["mean"]) == len(data["scale"]) == len(data["weights"]) == n):
            raise ValueError("the cache decision file is inconsistent: terms, mean, scale, weights differ in length")
        return cls(terms, tuple(data["mean"]), tuple(data["scale"]), tuple(data["weights"]), float(data["bias"]),
                   float(data["threshold"]), data["embedding_model"], data.get("fit", {}))

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias
        for term, m, s, w in zip(self.terms, self.mean, self.scale, self.weights):
            x = 1.0
            for name in term:
                x *= features[name]
            z += w * (x - m) / s
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@lru_cache(maxsize=1)
def packaged_model() -> DecisionModel:
    text = resources.files("mcp_tars").joinpath("data", DECISION_FILE).read_text("utf-8")
    return DecisionModel.from_dict(json.loads(text))


@dataclass(frozen=True)
class Verdict:
    matched: bool
    similarity: float  # the decision's probability that both questions have the same answer (0 on a veto)
    reason: str | None  # the guard that vetoed, "threshold", or None on a match


_TOKEN = re.compile(r"\w+|[^\w\s]")  # words, and every other character on its own: a[1:] is not a[:1]
_SENTENCE_MARKS = frozenset("?!.,'’")


def _core_words(text: str) -> list[str]:
    """The question's tokens in order, without the neutral framing."""
    tokens = _TOKEN.findall(text.casefold())
    out = []
    for i, t in enumerate(tokens):
        if t in NEUTRAL_FRAME_WORDS or t in _SENTENCE_MARKS:
            continue
        if t == "about" and i and tokens[i - 1] in ("me", "information", "info"):
            continue
        out.append(t)
    return out


def same_question(a: QueryAnalysis, b: QueryAnalysis) -> bool:
    """The same question in another neutral framing: identical analysis and
    the same other tokens in the same order ("What is machine learning?" /
    "Tell me about machine learning", "How do I boil an egg?" / "how to boil
    an egg"). On the Quora dev pairs this rule answers 273 pairs that pass
    the guards, 11 of them labelled non-duplicates (all 11 read as the same
    question: "How do I invest my money wisely?" / "How can I invest my money
    wisely?"); the fitted model decides the rest."""
    if a.hard != b.hard or a.soft != b.soft or a.intents != b.intents:
        return False
    return _core_words(a.text) == _core_words(b.text)


def decide(a: QueryAnalysis, b: QueryAnalysis, va, vb, embedder, model: DecisionModel, *,
           threshold: float | None = None, has_history: bool = False) -> Verdict:
    """Guards first (a veto is final); the same question in another neutral
    framing matches; otherwise the calibrated probability >= threshold."""
    reason = guard_veto(a, b, has_history=has_history, embedder=embedder)
    if reason:
        return Verdict(False, 0.0, reason)
    if same_question(a, b):
        return Verdict(True, 1.0, None)
    p = model.probability(pair_features(a, b, va, vb, embedder))
    if p < (model.threshold if threshold is None else threshold):
        return Verdict(False, p, "threshold")
    return Verdict(True, p, None)
