"""Cache keys: the canonical form of a request, the exact-layer key, and the
cut of a request into its fixed context and the question that may be reworded.

The exact key hashes a canonical form (sorted-key JSON) of everything that can
change the answer: model or routing tier, system, tools, tool_choice, the whole
conversation, max_tokens and the sampling, stop, thinking and output settings,
plus the tenant. ``cache_control`` markers, request ids, metadata and streaming
flags are left out: they never change the text of an answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .. import fastjson

KEY_VERSION = "v2"  # bump when the canonical form changes: old keys then simply miss


# Top-level request fields that never change the answer text.
IGNORED_PARAMS = frozenset(
    {"stream", "metadata", "service_tier", "request_id", "use_cache", "timeout",
     "extra_headers", "extra_query", "extra_body", "cache_control", "session_id"}
)
_INT_PARAMS = ("max_tokens", "top_k")
_FLOAT_PARAMS = ("temperature", "top_p")


# Where the API takes a breakpoint: tools, system blocks, message content blocks
# and the blocks nested in them (a tool_result's content). Deeper values (a
# tool's input, a schema's properties) are data, even a key named cache_control.
_MARKABLE_PARAMS = ("tools", "system", "messages")


def _unmarked_blocks(blocks: Any) -> Any:
    """A list of tools, blocks or messages without their ``cache_control``."""
    return [_unmarked(b) for b in blocks] if isinstance(blocks, list) else blocks


def _unmarked(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    nested = block.get("content")
    if "cache_control" in block or isinstance(nested, list):
        block = {k: v for k, v in block.items() if k != "cache_control"}
        if isinstance(nested, list):
            block["content"] = _unmarked_blocks(nested)
    return block


def _as_blocks(content: Any) -> Any:
    # A string and a single text block are the same prompt to the API.
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def canonical_request(params: dict, *, markers: bool = True) -> dict:
    """The answer-determining part of a Messages API request, in one normal form.
    ``markers`` False: the caller knows no ``cache_control`` is anywhere in
    it (the gateway looks at the request's bytes), so there is nothing to strip."""
    if not isinstance(params, dict):
        raise ValueError("a cache lookup needs the request as a dict of Messages API parameters")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in IGNORED_PARAMS or value is None:
            continue
        if key in _INT_PARAMS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = int(value)
        elif key in _FLOAT_PARAMS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif key == "system":
            value = _as_blocks(value)
        elif key == "messages":
            if not isinstance(value, list):
                raise ValueError("messages must be a list of {role, content} objects")
            value = [
                {**m, "content": _as_blocks(m.get("content"))} if isinstance(m, dict) else m for m in value
            ]
        out[key] = _unmarked_blocks(value) if (markers and key in _MARKABLE_PARAMS) else value
    return out


def _canonical_json_bytes(value: Any) -> bytes:
    return fastjson.dumps(value, sort_keys=True, default=str)


def _canonical_json(value: Any) -> str:
    return _canonical_json_bytes(value).decode()


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise ValueError("the cache tenant must be a non-empty string (a hash of the API key or a namespace)")
    if tenant.startswith(("sk-ant", "sk-")):
        raise ValueError("the cache tenant looks like an API key; pass a hash of it (never the key itself)")
    return tenant


def _sha256(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def request_key(params: dict, tenant: str) -> str:
    """The exact-layer key: sha256 hex of the tenant and the canonical request."""
    return _exact_key(canonical_request(params), tenant)


def _exact_key(canon: dict, tenant: str) -> str:
    return _sha256(KEY_VERSION, "exact", check_tenant(tenant), _canonical_json_bytes(canon))


def hash64(*parts: str) -> int:
    """A signed 64-bit hash (fits an SQLite INTEGER) for index keys."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class SemanticSplit:
    """A request cut into its fixed context and the question that may be reworded."""

    context: str  # canonical JSON of everything but the last user message's text
    query: str  # that text


_QUERY_SLOT = "\x00<query>\x00"


def split_for_semantic(params: dict) -> SemanticSplit | None:
    """Cut the request for semantic matching, or None when it is not eligible:
    the last message must be the user's and plain text (a string or text blocks)."""
    return _split(canonical_request(params))


def _split(canon: dict) -> SemanticSplit | None:
    messages = canon.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user" or set(last) - {"role", "content"}:
        return None
    blocks = last.get("content")
    if not isinstance(blocks, list) or not blocks:
        return None
    texts = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "text" or set(block) - {"type", "text"}:
            return None
        texts.append(str(block.get("text", "")))
    query = "\n".join(texts)
    if not query.strip():
        return None
    context = {**canon, "messages": messages[:-1] + [{"role": "user", "content": _QUERY_SLOT}]}
    return SemanticSplit(_canonical_json(context), query)


def context_key(split: SemanticSplit, tenant: str) -> str:
    return _sha256(KEY_VERSION, "context", check_tenant(tenant), split.context)


