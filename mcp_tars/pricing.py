"""Prices and the cost of a ``usage`` object, exactly as Anthropic bills.

The price table is data (``data/prices.json``, every field explicit with its
source); ``price_overrides`` in the configuration win over it. Arithmetic is
done in ``Decimal`` so that a long ledger adds up to the API's bill to the
micro-dollar. An unknown model is never priced as $0 or as another model:
its cost is ``None`` with ``pricing_source == "unknown"``.

Billing rules implemented here (see shared/docs/anthropic-api.md):
- ``input_tokens`` is uncached input only; cache writes (5-minute and 1-hour)
  and cache reads are billed at their own prices;
- Message Batches: every line at ``batch_multiplier`` (50%);
- Haiku 5.5 long-context band: the whole request at the higher prices when
  input + cache writes exceed 100K tokens (cache reads do not count toward it);
- ``inference_geo == "us"``: the model's geo multiplier (4.6 and newer);
- dated ids (``claude-haiku-4-5-20251001``) price as their alias;
- a field's ``history`` applies to requests made before its ``until`` date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from . import catalog

PRICE_FIELDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Usage:
    """Token counts of one response, by billing class."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    service_tier: str | None = None
    inference_geo: str | None = None

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens

    @classmethod
    def from_api(cls, usage: Any) -> "Usage":
        """From the SDK's ``Usage`` object or its dict form.

        ``cache_creation_input_tokens`` without a 5m/1h breakdown is counted as
        5-minute writes: the API's default TTL, and the only one older
        responses report.
        """
        if usage is None:
            raise ValueError("the response has no usage: it cannot be billed")
        get = usage.get if isinstance(usage, Mapping) else lambda k, d=None: getattr(usage, k, d)
        breakdown = get("cache_creation")
        created = int(get("cache_creation_input_tokens") or 0)
        if breakdown is not None:
            bget = breakdown.get if isinstance(breakdown, Mapping) else lambda k, d=None: getattr(breakdown, k, d)
            w5 = int(bget("ephemeral_5m_input_tokens") or 0)
            w1 = int(bget("ephemeral_1h_input_tokens") or 0)
            if w5 + w1 != created:  # trust the total; put any remainder on the default TTL
                w5 = created - w1
        else:
            w5, w1 = created, 0
        return cls(
            input_tokens=int(get("input_tokens") or 0),
            output_tokens=int(get("output_tokens") or 0),
            cache_write_5m_tokens=w5,
            cache_write_1h_tokens=w1,
            cache_read_tokens=int(get("cache_read_input_tokens") or 0),
            service_tier=get("service_tier"),
            inference_geo=get("inference_geo"),
        )

    def as_api_dict(self) -> dict:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_write_5m_tokens + self.cache_write_1h_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            },
        }


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model (one band, one date)."""

    model: str
    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal
    source: str
    long_context: "ModelPrice | None" = None
    long_context_above_tokens: int | None = None
    geo_us_multiplier: Decimal = Decimal(1)
    history: tuple[dict, ...] = ()

    def on(self, when: datetime | None) -> "ModelPrice":
        """The prices in force at ``when`` (history entries apply before their ``until``)."""
        if not self.history or when is None:
            return self
        day = when.strftime("%Y-%m-%d")
        changes = {}
        for entry in sorted(self.history, key=lambda e: e["until"], reverse=True):
            if day < entry["until"]:
                changes.update({k: Decimal(str(v)) for k, v in entry.items() if k in PRICE_FIELDS})
        if not changes:
            return self
        return ModelPrice(**{**self.__dict__, **changes, "history": ()})


@dataclass(frozen=True)
class Cost:
    usd: float | None  # None when the price is unknown
    pricing_source: str  # "table" | "override" | "unknown"
    model: str
    band: str = "standard"  # "standard" | "long_context"
    batch: bool = False

    @property
    def known(self) -> bool:
        return self.usd is not None


def _price_from_dict(model: str, d: Mapping[str, Any], source: str) -> ModelPrice:
    missing = [f for f in PRICE_FIELDS if f not in d]
    if missing:
        raise ValueError(f"price_overrides.{model}: a model the price table does not know needs every price field; "
                         f"missing {', '.join(missing)}")
    long_ctx = None
    above = None
    if d.get("long_context"):
        lc = d["long_context"]
        above = int(lc["above_input_tokens"])
        long_ctx = _price_from_dict(model, {k: v for k, v in lc.items() if k in PRICE_FIELDS}, source)
    return ModelPrice(
        model=model,
        source=source,
        long_context=long_ctx,
        long_context_above_tokens=above,
        geo_us_multiplier=Decimal(str(d.get("geo_us_multiplier", 1))),
        history=tuple(d.get("history", ())),
        **{f: Decimal(str(d[f])) for f in PRICE_FIELDS},
    )


@lru_cache(maxsize=1)
def _packaged_table() -> dict:
    return json.loads(resources.files("mcp_tars").joinpath("data/prices.json").read_text("utf-8"))


class PriceTable:
    """The price table with configuration overrides applied."""

    def __init__(self, table: Mapping[str, Any] | None = None, overrides: Mapping[str, Mapping[str, float]] | None = None):
        table = table if table is not None else _packaged_table()
        self.batch_multiplier = Decimal(str(table.get("batch_multiplier", 0.5)))
        self._prices: dict[str, ModelPrice] = {}
        self._sources: dict[str, str] = {}
        self._on_day: dict[tuple[int, object], ModelPrice] = {}  # (id of the price, date) -> prices that day
        for model, d in table["models"].items():
            self._prices[model] = _price_from_dict(model, d, d.get("source", "price table"))
            self._sources[model] = "table"
        for model, fields in (overrides or {}).items():
            base = table["models"].get(model, {})
            unknown_fields = set(fields) - set(PRICE_FIELDS)
            if unknown_fields:
                raise ValueError(f"price_overrides.{model}: unknown fields {sorted(unknown_fields)}; allowed: {list(PRICE_FIELDS)}")
            merged = {**base, **fields, "history": []}  # an override replaces dated history too
            self._prices[model] = _price_from_dict(model, merged, "price_overrides in the configuration")
            self._sources[model] = "override"

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def canonical_model(self, model: str) -> str:
        """The table entry a model id prices as: itself, or its alias for a dated id."""
        return catalog.resolve(model, self._prices) or model

    def price(self, model: str) -> tuple[ModelPrice | None, str]:
        key = self.canonical_model(model)
        if key not in self._prices:
            return None, "unknown"
        return self._prices[key], self._sources[key]

    def _price_on(self, price: ModelPrice, when: datetime) -> ModelPrice:
        # every call of a day prices the same: ``on`` (history lookup) once per model and day
        if not price.history:
            return price
        key = (id(price), when.date())  # the date ``on`` reads
        found = self._on_day.get(key)
        if found is None:
            if len(self._on_day) > 4096:
                self._on_day.clear()
            found = self._on_day[key] = price.on(when)
        return found

    def is_known(self, model: str) -> bool:
        return self.price(model)[0] is not None

    def cost(self, usage: Usage, model: str, *, batch: bool | None = None, when: datetime | None = None) -> Cost:
        """What Anthropic bills for ``usage`` on ``model``. ``batch`` defaults to
        what the usage says (``service_tier == "batch"``)."""
        if batch is None:
            batch = usage.service_tier == "batch"
        price, source = self.price(model)
        if price is None:
            return Cost(None, "unknown", model, batch=batch)
        price = self._price_on(price, when or datetime.now(timezone.utc))
        band = "standard"
        if price.long_context is not None:
            billed_prompt = usage.input_tokens + usage.cache_write_5m_tokens + usage.cache_write_1h_tokens
            if billed_prompt > (price.long_context_above_tokens or 0):
                price, band = price.long_context, "long_context"
        total = (
            usage.input_tokens * price.input
            + usage.cache_write_5m_tokens * price.cache_write_5m
            + usage.cache_write_1h_tokens * price.cache_write_1h
            + usage.cache_read_tokens * price.cache_read
            + usage.output_tokens * price.output
        ) / _MILLION
        if usage.inference_geo == "us":
            total *= self._prices[self.canonical_model(model)].geo_us_multiplier
        if batch:
            total *= self.batch_multiplier
        return Cost(float(total), source, model, band=band, batch=batch)

    def as_dict(self) -> dict:
        """The effective table (for the MCP resource and reports)."""
        out = {}
        for model, p in sorted(self._prices.items()):
            out[model] = {f: float(getattr(p, f)) for f in PRICE_FIELDS}
            out[model]["source"] = p.source
            out[model]["pricing_source"] = self._sources[model]
            if p.long_context:
                out[model]["long_context"] = {
                    "above_input_tokens": p.long_context_above_tokens,
                    **{f: float(getattr(p.long_context, f)) for f in PRICE_FIELDS},
                }
        return {"batch_multiplier": float(self.batch_multiplier), "models": out}


# -- baseline and savings by lever ------------------------------------------

LEVERS = ("cache", "pruning", "routing", "prompt_cache", "batch")


@dataclass(frozen=True)
class Attribution:
    """Actual cost, baseline cost and the savings split by lever.

    The split is a chain of counterfactual costs, each lever's saving being the
    step it accounts for, so the parts add up exactly to the total:

        C0 baseline: default model, full context, no prompt caching, standard rate
        C1 default model, pruned context, no prompt caching        pruning  = C0 - C1
        C2 routed model, pruned context, no prompt caching         routing  = C1 - C2
        C3 routed model with prompt caching, standard rate         prompt_cache = C2 - C3
        C4 actual (batch rate when batched)                        batch    = C3 - C4

    C3 and C4 are measured from ``usage``; C0-C2 are estimates (token counts on
    another model are scaled by the tokenizer families' calibration), so
    ``baseline_estimated`` is true unless the call ran unrouted, unpruned, on
    the default model.
    """

    cost_usd: float | None
    baseline_cost_usd: float | None
    savings: dict[str, float | None] = field(default_factory=dict)
    pricing_source: str = "table"
    baseline_estimated: bool = True

    @property
    def saved_usd(self) -> float | None:
        if any(v is None for v in self.savings.values()):
            return None
        return sum(self.savings.values())


def attribute_call(
    prices: PriceTable,
    *,
    usage: Usage,
    model: str,
    default_model: str,
    batch: bool = False,
    pruned_away_tokens: int = 0,
    when: datetime | None = None,
) -> Attribution:
    """Cost, baseline and lever savings of one API call (or batch result).

    ``pruned_away_tokens`` is the estimated number of input tokens pruning
    removed, counted for the default model.
    """
    from .tokens import family_factor  # local: pricing stays importable without tiktoken loaded

    actual = prices.cost(usage, model, batch=batch, when=when)
    if not actual.known:
        return Attribution(None, None, {k: None for k in LEVERS}, "unknown", True)
    with_prompt_cache = prices.cost(usage, model, batch=False, when=when).usd if batch else actual.usd
    geo = usage.inference_geo  # a regional premium is the caller's choice, not a lever: same in every counterfactual
    counterfactuals: dict[tuple[str, int, int], Cost] = {}

    def uncached_cost(on_model: str, input_tokens: int, output_tokens: int) -> Cost:
        """Standard rate, no prompt caching. The counterfactuals of an
        unrouted, unpruned call are one and the same: priced once."""
        key = (prices.canonical_model(on_model), input_tokens, output_tokens)
        if key not in counterfactuals:
            counterfactuals[key] = prices.cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                                                     inference_geo=geo), on_model, batch=False, when=when)
        return counterfactuals[key]

    no_prompt_cache = uncached_cost(model, usage.total_input_tokens, usage.output_tokens).usd
    scale = family_factor(default_model) / family_factor(model)
    default_in = round(usage.total_input_tokens * scale)
    default_out = round(usage.output_tokens * scale)
    default_model_pruned = uncached_cost(default_model, default_in, default_out)
    baseline = uncached_cost(default_model, default_in + max(0, pruned_away_tokens), default_out)
    if not baseline.known:  # the configured default model has no price: no baseline to compare with
        return Attribution(actual.usd, None, {k: None for k in LEVERS}, actual.pricing_source, True)
    savings = {
        "cache": 0.0,
        "pruning": baseline.usd - default_model_pruned.usd,
        "routing": default_model_pruned.usd - no_prompt_cache,
        "prompt_cache": no_prompt_cache - with_prompt_cache,
        "batch": with_prompt_cache - actual.usd,
    }
    unrouted = prices.canonical_model(model) == prices.canonical_model(default_model)
    return Attribution(
        cost_usd=actual.usd,
        baseline_cost_usd=baseline.usd,
        savings=savings,
        pricing_source=actual.pricing_source,
        baseline_estimated=not (unrouted and pruned_away_tokens == 0),
    )


def attribute_cache_hit(original_cost_usd: float | None, original_baseline_usd: float | None) -> Attribution:
    """A response-cache hit costs $0 and saves the request's whole baseline,
    all of it by the ``cache`` lever: the cache answers before any other lever
    acts (no routing, pruning, prompt caching or batching happens for this
    request), so none of them saved anything on it. The baseline is the
    original request's (the same request, on the default model, full context).

    ``original_savings`` is accepted for callers that still pass it and ignored."""
    if original_cost_usd is None or original_baseline_usd is None:
        return Attribution(0.0, None, {k: None for k in LEVERS}, "unknown", True)
    savings = {k: 0.0 for k in LEVERS}
    savings["cache"] = float(original_baseline_usd)
    return Attribution(0.0, original_baseline_usd, savings, "table", True)
