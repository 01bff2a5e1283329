"""The simulator's own bill: what Anthropic would charge for each response.

Deliberately independent of ``mcp_tars.pricing``: the sim is the referee that
the product's cost ledger is checked against, so it reads the price table
itself and applies the billing rules directly:

    cost = input*P_in + w5m*P_5m + w1h*P_1h + read*P_read + output*P_out  (per token)
           x batch_multiplier for Message Batches results
           x geo_us_multiplier when usage.inference_geo == "us"

A model with a ``long_context`` band is billed entirely at the band's prices
when input + cache writes exceed the threshold (cache reads do not count).
``history`` entries give a field's earlier value until a date (UTC, exclusive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

DEFAULT_PRICES_PATH = Path(__file__).resolve().parent.parent / "data" / "prices.json"
PRICE_FIELDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass
class BillLine:
    """One billed response: a message, a streamed message, or one batch result."""

    response_id: str
    model: str  # as requested (a dated id stays dated)
    usage: dict[str, Any]
    cost_usd: float
    batch: bool
    ts: float  # mcp_tars.clock time at which the response was produced
    batch_id: str | None = None
    custom_id: str | None = None


@dataclass
class PriceTable:
    models: dict[str, dict[str, Any]]
    batch_multiplier: float
    source: str = field(default="")

    @classmethod
    def load(cls, path: str | Path | None = None) -> "PriceTable":
        path = Path(path) if path else DEFAULT_PRICES_PATH
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(models=data["models"], batch_multiplier=float(data["batch_multiplier"]), source=str(path))

    def rates(self, alias: str, *, when: float, band_tokens: int) -> dict[str, float]:
        """USD per million tokens for each price field, for one request."""
        entry = self.models[alias]
        band = entry.get("long_context")
        if band and band_tokens > band["above_input_tokens"]:
            return {name: float(band[name]) for name in PRICE_FIELDS}
        rates = {name: float(entry[name]) for name in PRICE_FIELDS}
        request_day = datetime.fromtimestamp(when, timezone.utc).date()
        # Latest "until" first, so that the earliest applicable entry wins.
        for past in sorted(entry.get("history", ()), key=lambda item: item["until"], reverse=True):
            if request_day < date.fromisoformat(past["until"]):
                rates.update({name: float(past[name]) for name in PRICE_FIELDS if name in past})
        return rates

    def cost_usd(self, alias: str, usage: dict[str, Any], *, when: float, batch: bool) -> float:
        creation = usage.get("cache_creation") or {}
        write_5m = creation.get("ephemeral_5m_input_tokens", 0)
        write_1h = creation.get("ephemeral_1h_input_tokens", 0)
        band_tokens = usage["input_tokens"] + write_5m + write_1h
        rates = self.rates(alias, when=when, band_tokens=band_tokens)
        per_million = (
            usage["input_tokens"] * rates["input"]
            + write_5m * rates["cache_write_5m"]
            + write_1h * rates["cache_write_1h"]
            + usage.get("cache_read_input_tokens", 0) * rates["cache_read"]
            + usage["output_tokens"] * rates["output"]
        )
        cost = per_million / TOKENS_PER_PRICE_UNIT
        if batch:
            cost *= self.batch_multiplier
        if usage.get("inference_geo") == "us":
            cost *= float(self.models[alias].get("geo_us_multiplier", 1.0))
        return cost
