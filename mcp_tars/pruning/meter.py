"""Token estimates of every input message, computed once per pruning call."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import tokens as tok
from .validate import blocks

CHARS_PER_TOKEN = 3.6  # cl100k characters per token of mixed text; only to skip counting obvious cases


def image_count(content: Any) -> int:
    count = 0
    for block in blocks(content):
        if isinstance(block, dict):
            if block.get("type") in ("image", "document"):
                count += 1
            elif block.get("type") == "tool_result":
                count += image_count(block.get("content"))
    return count


class Meter:
    """Token estimates of every input message, computed once.

    Up to ``exact_max_chars`` everything is counted exactly (tiktoken does a
    megabyte in about 0.1 s). Beyond that, the most recent ``exact_max_chars``
    (everything that could be kept) are counted exactly, and the older
    messages, which are about to be dropped, on an evenly spread fifth of them
    with the rest estimated at that sample's own characters-per-token rate.
    The final user turn and the turn it answers are always counted (a long
    text is counted on samples of itself, so this stays cheap): pruning keeps
    them, and the final-turn cap is checked against their own count.
    """

    SAMPLE_STRIDE = 5  # odd, so that both roles get sampled

    def __init__(self, messages: list[dict], system: Any, model: str | None, exact_max_chars: int):
        self.model = model
        self.system_tokens = tok.estimate_text_tokens(tok.content_text(system), model) if system else 0
        texts = [tok.content_text(m.get("content", "")) for m in messages]
        self.fingerprint = fingerprint(messages, texts)
        exact_from = len(messages)
        budget = exact_max_chars
        while exact_from > 0 and budget >= len(texts[exact_from - 1]):
            exact_from -= 1
            budget -= len(texts[exact_from])
        sample = set(range(0, exact_from, self.SAMPLE_STRIDE)) if exact_from else set()
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
        tail = set(range(max(0, last_user - 1), len(messages)))
        counted = {i: tok.estimate_text_tokens(texts[i], model) for i in sample | tail | set(range(exact_from, len(messages)))}
        sampled_chars = sum(len(texts[i]) for i in sample)
        rate = sum(counted[i] for i in sample) / sampled_chars if sampled_chars else 1 / CHARS_PER_TOKEN
        self.per_message = [
            (counted[i] if i in counted else round(len(texts[i]) * rate))
            + image_count(m.get("content")) * tok.IMAGE_TOKENS
            + tok.MESSAGE_OVERHEAD_TOKENS
            for i, m in enumerate(messages)
        ]
        self.estimated_messages = len(messages) - len(counted)

    def count(self, message: dict) -> int:
        return tok.estimate_message_tokens(message, self.model)

    def total(self) -> int:
        return self.system_tokens + sum(self.per_message)


def conversation_fingerprint(messages: list[dict]) -> str:
    """A digest of the roles and text of ``messages`` (what ``extend_pruned`` compares)."""
    return fingerprint(messages, [tok.content_text(m.get("content", "")) for m in messages])


def fingerprint(messages: list[dict], texts: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for message, text in zip(messages, texts):
        digest.update(f"{message.get('role')}\x00{len(text)}\x00".encode())
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
