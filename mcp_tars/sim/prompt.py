"""A request seen as the model sees it: an ordered list of token-counted blocks.

Prompt caching and token counting both work on the same flat sequence, in the
real API's processing order: tools, then system blocks, then every message
content block. Each block ("segment") carries its token count and a
fingerprint of its content without ``cache_control``, so moving a breakpoint
does not change the prefix it marks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import invalid_request
from .tokenizer import raw_token_count, scaled

MAX_BREAKPOINTS = 4
CACHE_TTLS = ("5m", "1h")
DEFAULT_TTL = "5m"

# Token accounting beyond the text itself: small, fixed framing costs, so
# that counts stay easy to predict in tests while still growing per message.
MESSAGE_OVERHEAD_TOKENS = 3  # role markers, charged on each message's first block
TOOL_DEFINITION_OVERHEAD_TOKENS = 5
TOOL_BLOCK_OVERHEAD_TOKENS = 5  # tool_use / tool_result framing
IMAGE_TOKENS = 1500  # any image, whatever its size
DOCUMENT_TOKENS = 1500  # a non-text document (PDF, URL)

_UNCACHEABLE_BLOCKS = ("thinking", "redacted_thinking")


@dataclass(frozen=True, slots=True)
class Segment:
    location: str  # JSON path, e.g. "messages.2.content.0"
    tokens: int
    fingerprint: bytes
    cacheable: bool = True


@dataclass(frozen=True, slots=True)
class Breakpoint:
    index: int  # of the segment that ends the cached prefix
    ttl: str
    source: str  # where the cache_control was set, for error messages


@dataclass(frozen=True)
class Prompt:
    segments: tuple[Segment, ...]
    breakpoints: tuple[Breakpoint, ...]  # in processing order; the automatic one last

    @property
    def total_tokens(self) -> int:
        return sum(segment.tokens for segment in self.segments)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_prompt(body: dict[str, Any], token_factor: float) -> Prompt:
    """Flatten a validated request; raise ``APIError`` for bad cache_control."""
    builder = _PromptBuilder(token_factor)
    for index, tool in enumerate(body.get("tools") or ()):
        builder.add_tool(tool, f"tools.{index}")
    system = body.get("system")
    if isinstance(system, str):
        if system:
            builder.add_block({"type": "text", "text": system}, "system", b"S")
    elif system:
        for index, block in enumerate(system):
            builder.add_block(block, f"system.{index}", b"S")
    for index, message in enumerate(body["messages"]):
        builder.add_message(message, f"messages.{index}")
    automatic = body.get("cache_control")
    if automatic is not None:
        builder.add_automatic_breakpoint(automatic)
    return builder.finish()


class _PromptBuilder:
    def __init__(self, token_factor: float) -> None:
        self.factor = token_factor
        self.segments: list[Segment] = []
        self.breakpoints: list[Breakpoint] = []

    def add_tool(self, tool: dict[str, Any], location: str) -> None:
        text = canonical_json(_without_cache_control(tool))
        tokens = TOOL_DEFINITION_OVERHEAD_TOKENS + scaled(raw_token_count(text), self.factor)
        self._append(Segment(location, tokens, b"T" + text.encode()), tool.get("cache_control"))

    def add_message(self, message: dict[str, Any], location: str) -> None:
        content = message["content"]
        if isinstance(content, str):
            blocks, locations = [{"type": "text", "text": content}], [f"{location}.content"]
        else:
            blocks, locations = content, [f"{location}.content.{i}" for i in range(len(content))]
        role_tag = {"user": b"U", "assistant": b"A"}.get(message["role"], b"Y")  # Y: a mid-conversation system message
        for position, (block, block_location) in enumerate(zip(blocks, locations)):
            # The first block of a message also carries the message framing,
            # and its tag marks the message boundary in the fingerprint.
            overhead = MESSAGE_OVERHEAD_TOKENS if position == 0 else 0
            tag = role_tag + (b"^" if position == 0 else b"+")
            self.add_block(block, block_location, tag, overhead)

    def add_block(self, block: dict[str, Any], location: str, tag: bytes, overhead: int = 0) -> None:
        cacheable = block.get("type") not in _UNCACHEABLE_BLOCKS
        if not cacheable and block.get("cache_control") is not None:
            raise invalid_request(f"{location}.cache_control: cache_control cannot be set for thinking blocks")
        fingerprint = tag + canonical_json(_without_cache_control(block)).encode()
        tokens = overhead + self._block_tokens(block)
        self._append(Segment(location, tokens, fingerprint, cacheable), block.get("cache_control"))

    def add_automatic_breakpoint(self, cache_control: Any) -> None:
        ttl = _parse_cache_control(cache_control, "cache_control")
        # The automatic breakpoint lands on the last block that can hold one.
        for index in range(len(self.segments) - 1, -1, -1):
            if self.segments[index].cacheable:
                self.breakpoints.append(Breakpoint(index, ttl, "cache_control"))
                return

    def finish(self) -> Prompt:
        if len(self.breakpoints) > MAX_BREAKPOINTS:
            raise invalid_request(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(self.breakpoints)}."
            )
        seen_5m_at: str | None = None
        for breakpoint in self.breakpoints:
            if breakpoint.ttl == "5m" and seen_5m_at is None:
                seen_5m_at = breakpoint.source
            elif breakpoint.ttl == "1h" and seen_5m_at is not None:
                raise invalid_request(
                    f"{breakpoint.source}: a cache_control block with ttl='1h' must not come after a "
                    f"cache_control block with ttl='5m' ({seen_5m_at}). Blocks are processed in "
                    "this order: tools, system, messages (the top-level cache_control last)."
                )
        return Prompt(tuple(self.segments), tuple(self.breakpoints))

    def _append(self, segment: Segment, cache_control: Any) -> None:
        self.segments.append(segment)
        if cache_control is not None:
            source = segment.location + ".cache_control"
            ttl = _parse_cache_control(cache_control, source)
            self.breakpoints.append(Breakpoint(len(self.segments) - 1, ttl, source))

    def _block_tokens(self, block: dict[str, Any]) -> int:
        kind = block.get("type")
        if kind == "text":
            return self._text_tokens(block["text"])
        if kind == "image":
            return IMAGE_TOKENS
        if kind == "document":
            source = block.get("source") or {}
            if source.get("type") == "text":
                return self._text_tokens(str(source.get("data", "")))
            if source.get("type") == "content" and isinstance(source.get("content"), list):
                return sum(self._block_tokens(nested) for nested in source["content"])
            return DOCUMENT_TOKENS
        if kind == "tool_use":
            text = block["name"] + canonical_json(block["input"])
            return TOOL_BLOCK_OVERHEAD_TOKENS + self._text_tokens(text)
        if kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                inner = self._text_tokens(content)
            elif isinstance(content, list):
                inner = sum(self._block_tokens(nested) for nested in content if isinstance(nested, dict))
            else:
                inner = 0
            return TOOL_BLOCK_OVERHEAD_TOKENS + inner
        if kind == "thinking":
            return self._text_tokens(str(block.get("thinking", "")))
        if kind == "redacted_thinking":
            return self._text_tokens(str(block.get("data", "")))
        return self._text_tokens(canonical_json(_without_cache_control(block)))

    def _text_tokens(self, text: str) -> int:
        return scaled(raw_token_count(text), self.factor)


def _parse_cache_control(value: Any, location: str) -> str:
    if not isinstance(value, dict):
        raise invalid_request(f"{location}: Input should be a valid dictionary")
    if value.get("type") != "ephemeral":
        raise invalid_request(f"{location}.type: Input should be 'ephemeral'")
    ttl = value.get("ttl")
    if ttl is None:
        ttl = DEFAULT_TTL
    if ttl not in CACHE_TTLS:
        raise invalid_request(f"{location}.ttl: Input should be '5m' or '1h'")
    return ttl


def _without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    if "cache_control" not in block:
        return block
    return {key: value for key, value in block.items() if key != "cache_control"}
