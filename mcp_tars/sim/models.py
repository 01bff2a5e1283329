"""What the simulator knows about each model: its id, tokenizer scale, cache
minimum, context window and largest output.

The set of models comes from the price table (``mcp_tars/data/prices.json``):
a model the sim cannot bill is a model it does not serve. Dated ids such as
``claude-haiku-4-5-20251001`` are the same model as their alias. Context
windows, output limits and cache minimums are facts of the API the sim stands
for: they come from the model catalogue (``mcp_tars/data/models.json``, the
same facts the product works with). The tokenizer is the sim's own: the
product's estimate (``mcp_tars.tokens``) is what is under test and must not be
exact by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import APIError, invalid_request

from mcp_tars import catalog

_GENERATION = re.compile(r"^claude-[a-z]+-(?P<major>\d+)")

# Simulated tokens per cl100k token. Newer Claude tokenizers produce roughly
# 30% more tokens than cl100k for the same text; the 4.x ones somewhat more.
# Deliberately not the product's estimate factors (mcp_tars/data/models.json).
GENERATION_5_TOKEN_FACTOR = 1.3
OLDER_GENERATION_TOKEN_FACTOR = 1.15


class ModelCatalogue:
    """Resolves requested model ids and answers per-model questions."""

    def __init__(
        self,
        aliases: Iterable[str],
        *,
        cache_minimum_tokens: Mapping[str, int] | None = None,
        token_factors: Mapping[str, float] | None = None,
        context_window_tokens: Mapping[str, int] | None = None,
    ) -> None:
        self.aliases = frozenset(aliases)
        # Public and mutable on purpose: tests and benchmarks tune them live.
        self.cache_minimum_tokens: dict[str, int] = {a: catalog.info(a).cache_minimum_tokens for a in self.aliases}
        self.cache_minimum_tokens.update(cache_minimum_tokens or {})
        self.token_factors: dict[str, float] = dict(token_factors or {})
        self.context_window_tokens: dict[str, int] = {a: catalog.info(a).context_window_tokens for a in self.aliases}
        self.context_window_tokens.update(context_window_tokens or {})

    def resolve(self, model_id: str) -> str | None:
        """The alias ``model_id`` names, or None when the sim does not serve it."""
        return catalog.resolve(model_id, self.aliases)

    def info(self, model_id: str) -> dict[str, Any]:
        """``GET /v1/models/{id}``: the model's record (release dates unknown: the epoch, as the API allows)."""
        alias = self.resolve(model_id)
        if alias is None:
            raise APIError("not_found_error", f"model: {model_id}")
        name = " ".join(part.capitalize() for part in alias.removeprefix("claude-").split("-"))
        return {"type": "model", "id": alias, "display_name": f"Claude {name}", "created_at": "1970-01-01T00:00:00Z",
                "lifecycle": "active", "max_tokens": catalog.info(alias).max_output_tokens}

    def list_page(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /v1/models``: every model the sim serves, one page (``limit`` honoured)."""
        try:
            limit = int(query.get("limit", 1000))
        except ValueError:
            raise invalid_request("limit: Input should be a valid integer") from None
        ids = sorted(self.aliases)
        page = [self.info(model_id) for model_id in ids[:limit]]
        return {"data": page, "has_more": len(ids) > limit, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None}

    def cache_minimum(self, alias: str) -> int:
        return self.cache_minimum_tokens.get(alias) or catalog.info(alias).cache_minimum_tokens

    def context_window(self, alias: str) -> int:
        return self.context_window_tokens.get(alias) or catalog.info(alias).context_window_tokens

    def max_output_tokens(self, alias: str) -> int:
        return catalog.info(alias).max_output_tokens

    def token_factor(self, alias: str) -> float:
        if alias in self.token_factors:
            return self.token_factors[alias]
        match = _GENERATION.match(alias)
        if match and int(match["major"]) >= 5:
            return GENERATION_5_TOKEN_FACTOR
        return OLDER_GENERATION_TOKEN_FACTOR
