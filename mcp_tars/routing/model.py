"""The fitted router: a logistic model over named features, shipped as data.

``mcp_tars/data/router.json`` holds the weights (one per named signal and per
word or word pair that earned one) and the bias, and records how, when and on
what they were fitted, with the cross-validated figures (``bench/fit_router.py``
writes it; nothing here fits anything).

Scoring is a sum of the weights of the features present: pure Python, no
network, a few microseconds per feature.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .features import Features

FORMAT = "mcp-tars-router/1"


@dataclass(frozen=True)
class RouterModel:
    bias: float
    weights: dict[str, float]
    about: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "RouterModel":
        if data.get("format") != FORMAT:
            raise ValueError(f"router model: expected format {FORMAT!r}, got {data.get('format')!r}")
        return cls(float(data["bias"]), {k: float(v) for k, v in data["weights"].items()}, data.get("about", {}))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "about": self.about, "bias": self.bias, "weights": self.weights}

    def contributions(self, features: Features) -> list[tuple[str, float]]:
        """(feature, weight x value) for every feature that moved the score."""
        w = self.weights
        out = [(name, w[name] * value) for name, value in features.values.items() if value and name in w]
        out.extend((term, w[term]) for term in features.terms if term in w)
        return out

    def logit(self, features: Features) -> float:
        return self.bias + sum(c for _, c in self.contributions(features))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def packaged_model_path() -> Path:
    return Path(str(resources.files("mcp_tars").joinpath("data/router.json")))


@lru_cache(maxsize=8)
def load_model(path: str | None = None) -> RouterModel:
    """The router model at ``path`` (default: the packaged one), read once."""
    p = Path(path).expanduser() if path else packaged_model_path()
    try:
        data = json.loads(p.read_text("utf-8"))
        return RouterModel.from_dict(data)
    except FileNotFoundError:
        raise ValueError(f"{p}: router model file not found (routing.model_path)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{p}: not a router model written by bench/fit_router.py ({e})") from None
