"""The model catalogue: what we know about each model, as data (``data/models.json``).

One place for the facts several levers need: which ids name the same model
(dated ids such as ``claude-haiku-4-5-20251001`` are their alias), the context
window and the largest output, the minimum cacheable prefix, and the factor our
offline token estimate applies (``tokens.py``). Prices live beside it in
``prices.json`` (``pricing.py``). Fields the API documentation we work from does
not give are listed under ``assumed`` in the data.

The simulated API (``sim/``) reads the same windows, output limits and cache
minimums (facts of the API it stands for) but keeps its own tokenizer: our
estimate must not be graded by itself.

A leaf: imports nothing from the package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable

_DATED_ID = re.compile(r"^(?P<alias>.+)-(?P<date>\d{8})$")
FIELDS = ("context_window_tokens", "max_output_tokens", "cache_minimum_tokens", "estimate_factor")


@dataclass(frozen=True)
class ModelInfo:
    model: str  # the alias (or the id itself for a model the catalogue does not list)
    context_window_tokens: int
    max_output_tokens: int
    cache_minimum_tokens: int
    estimate_factor: float
    listed: bool  # False: the catalogue's defaults, for a model it does not know
    assumed: frozenset[str] = frozenset()


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("mcp_tars").joinpath("data/models.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _dated_ids() -> dict[str, str]:
    return {dated: alias for alias, m in _data()["models"].items() for dated in m.get("dated_ids", ())}


def undated(model: str) -> str:
    """The id without a trailing ``-YYYYMMDD`` date (the id itself when it has none)."""
    m = _DATED_ID.match(model)
    return m.group("alias") if m else model


def resolve(model: str, known: Iterable[str]) -> str | None:
    """The entry of ``known`` that ``model`` names: itself, the alias of a
    listed dated id, or the id without its date; None when none is known."""
    known = known if isinstance(known, (set, frozenset, dict)) else set(known)
    if model in known:
        return model
    alias = _dated_ids().get(model) or undated(model)
    return alias if alias in known else None


def models() -> list[str]:
    """Every model the catalogue lists."""
    return list(_data()["models"])


@lru_cache(maxsize=1024)
def info(model: str) -> ModelInfo:
    """What the catalogue knows about ``model`` (its defaults for a model it does not list)."""
    table = _data()["models"]
    alias = resolve(model, table)
    if alias is None:
        d = _data()["defaults"]
        return ModelInfo(model, *(type_(d[f]) for f, type_ in zip(FIELDS, (int, int, int, float))), listed=False,
                         assumed=frozenset(FIELDS))
    entry = {**_data()["defaults"], **table[alias]}
    return ModelInfo(alias, int(entry["context_window_tokens"]), int(entry["max_output_tokens"]),
                     int(entry["cache_minimum_tokens"]), float(entry["estimate_factor"]), listed=True,
                     assumed=frozenset(entry.get("assumed", ())))


def largest_output_tokens() -> int:
    """The largest output any listed model allows."""
    return max(int(m["max_output_tokens"]) for m in _data()["models"].values())
