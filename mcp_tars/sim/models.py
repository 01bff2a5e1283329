"""What the simulator knows about each model: its id, tokenizer scale and cache minimum.

The set of models comes from the price table (``mcp_tars/data/prices.json``):
a model the sim cannot bill is a model it does not serve. Dated ids such as
``claude-haiku-4-5-20251001`` are the same model as their alias.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import APIError, invalid_request

_DATED_ID = re.compile(r"^(?P<alias>claude-[a-z0-9-]+?)-(?P<date>\d{8})$")
_GENERATION = re.compile(r"^claude-[a-z]+-(?P<major>\d+)")

# Minimum cacheable prefix, in tokens. Shorter prefixes are silently not
# cached, exactly like the real API. Documented values where Anthropic
# publishes one (docs/anthropic-api.md); the 5.5 and Mythos values are not
# documented and are our guesses.
DEFAULT_CACHE_MINIMUM_TOKENS: dict[str, int] = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-fable-5-1": 512,
    "claude-fable-5-2": 512,  # guess: same family as fable-5-1
    "claude-opus-4-8": 1024,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-7": 2048,
    "claude-sonnet-4-6": 2048,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-haiku-4-5": 4096,
    "claude-haiku-5-5": 2048,  # guess
    "claude-sonnet-5-5": 1024,  # guess
    "claude-opus-5-5": 1024,  # guess
    "claude-mythos-5": 1024,  # guess
    "claude-mythos-5-1": 1024,  # guess
}
FALLBACK_CACHE_MINIMUM_TOKENS = 1024
FALLBACK_HAIKU_CACHE_MINIMUM_TOKENS = 2048

# Simulated tokens per cl100k token. Newer Claude tokenizers produce roughly
# 30% more tokens than cl100k for the same text; the 4.x ones somewhat more.
GENERATION_5_TOKEN_FACTOR = 1.3
OLDER_GENERATION_TOKEN_FACTOR = 1.15

# Largest accepted max_tokens (the real limit varies by model; one generous
# ceiling keeps the sim simple while still rejecting absurd values).
MAX_OUTPUT_TOKENS = 128_000


class ModelCatalogue:
    """Resolves requested model ids and answers per-model questions."""

    def __init__(
        self,
        aliases: Iterable[str],
        *,
        cache_minimum_tokens: Mapping[str, int] | None = None,
        token_factors: Mapping[str, float] | None = None,
    ) -> None:
        self.aliases = frozenset(aliases)
        # Public and mutable on purpose: tests and benchmarks tune them live.
        self.cache_minimum_tokens: dict[str, int] = dict(DEFAULT_CACHE_MINIMUM_TOKENS)
        self.cache_minimum_tokens.update(cache_minimum_tokens or {})
        self.token_factors: dict[str, float] = dict(token_factors or {})

    def resolve(self, model_id: str) -> str | None:
        """The alias ``model_id`` names, or None when the sim does not serve it."""
        if model_id in self.aliases:
            return model_id
        match = _DATED_ID.match(model_id)
        if match and match["alias"] in self.aliases:
            return match["alias"]
        return None

    def info(self, model_id: str) -> dict[str, Any]:
        """``GET /v1/models/{id}``: the model's record (release dates unknown: the epoch, as the API allows)."""
        alias = self.resolve(model_id)
        if alias is None:
            raise APIError("not_found_error", f"model: {model_id}")
        name = " ".join(part.capitalize() for part in alias.removeprefix("claude-").split("-"))
        return {"type": "model", "id": alias, "display_name": f"Claude {name}", "created_at": "1970-01-01T00:00:00Z",
                "lifecycle": "active", "max_tokens": MAX_OUTPUT_TOKENS}

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
        if alias in self.cache_minimum_tokens:
            return self.cache_minimum_tokens[alias]
        if "haiku" in alias:
            return FALLBACK_HAIKU_CACHE_MINIMUM_TOKENS
        return FALLBACK_CACHE_MINIMUM_TOKENS

    def token_factor(self, alias: str) -> float:
        if alias in self.token_factors:
            return self.token_factors[alias]
        match = _GENERATION.match(alias)
        if match and int(match["major"]) >= 5:
            return GENERATION_5_TOKEN_FACTOR
        return OLDER_GENERATION_TOKEN_FACTOR
