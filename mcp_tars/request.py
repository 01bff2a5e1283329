"""One completion request as the engine sees it, and its validation.

``CompletionRequest`` is what an edge (the MCP tools, the gateway, a deferred
task read back from the queue) hands the engine; ``build_messages`` and
``check_scalars`` turn a caller's mistake into an ``InputError`` that says
what to fix; ``request_params`` is the Messages API body of a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import catalog, pruning, tokens
from .pricing import PriceTable
from .settings import Config, unknown_model_message


class InputError(ValueError):
    """The caller's request is wrong; the message says what to fix."""


@dataclass
class CompletionRequest:
    prompt: str | None = None
    messages: list[dict] | None = None
    system: str | list[dict] | None = None
    max_tokens: int = 1024
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict] | None = None
    tool_choice: dict | None = None
    top_k: int | None = None
    thinking: dict | None = None  # {"type": "enabled", "budget_tokens": N} | {"type": "adaptive"} | {"type": "disabled"}
    metadata: dict | None = None  # {"user_id": "..."}: passed to the API, not part of the cache key
    use_cache: bool = True
    session_id: str | None = None
    stream: bool = False


@dataclass
class CompletionResult:
    text: str
    content: list[dict]
    model: str
    source: str  # "api" | "cache"
    stop_reason: str | None
    usage: dict
    cost_usd: float | None
    baseline_cost_usd: float | None
    saved_usd: float | None
    savings_by_lever: dict
    pricing_source: str
    cache: dict
    routing: dict
    pruning: dict | None
    prompt_cache: dict | None
    request_id: str | None
    response_id: str
    session_id: str | None
    latency_ms: float
    attempts: int
    warnings: list[str] = field(default_factory=list)


def _problem(path: str, what: str) -> InputError:
    return InputError(f"{path}: {what}")


_VALID_ROLES = ("user", "assistant")


def build_messages(req: CompletionRequest, cfg: Config) -> list[dict]:
    """Validate the caller's prompt/messages and return API messages."""
    if (req.prompt is None) == (req.messages is None):
        raise InputError("give exactly one of `prompt` (a string) or `messages` (a list of {role, content}); "
                         + ("both were given" if req.prompt is not None else "neither was given"))
    if req.prompt is not None:
        if not isinstance(req.prompt, str) or not req.prompt.strip():
            raise InputError("`prompt` must be a non-empty string")
        messages = [{"role": "user", "content": req.prompt}]
    else:
        messages = req.messages
        if not isinstance(messages, list) or not messages:
            raise InputError("`messages` must be a non-empty list of {role, content} objects")
        if len(messages) > cfg.server.max_messages:
            raise InputError(f"`messages` has {len(messages)} entries; at most {cfg.server.max_messages} are accepted "
                             "(prune or summarise the conversation first, e.g. with prune_context)")
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise _problem(f"messages[{i}]", "must be an object with `role` and `content`")
            if m.get("role") not in _VALID_ROLES:
                raise _problem(f"messages[{i}].role", f"must be 'user' or 'assistant' (got {str(m.get('role'))[:40]!r}); "
                               "put system instructions in `system`")
            extra = set(m) - {"role", "content"}
            if extra:
                raise _problem(f"messages[{i}]", f"unknown keys {sorted(extra)}; a message has only `role` and `content`")
            content = m.get("content")
            if isinstance(content, str):
                if not content:
                    raise _problem(f"messages[{i}].content", "is empty")
            elif isinstance(content, list):
                if not content:
                    raise _problem(f"messages[{i}].content", "is an empty list")
                for j, block in enumerate(content):
                    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                        raise _problem(f"messages[{i}].content[{j}]", "must be a content block object with a `type` (text, image, tool_use, tool_result...)")
                    if block["type"] == "text" and not isinstance(block.get("text"), str):
                        raise _problem(f"messages[{i}].content[{j}].text", "must be a string")
            else:
                raise _problem(f"messages[{i}].content", "must be a string or a list of content blocks")
        problems = pruning.validate_conversation(messages)
        if problems:
            raise InputError("`messages` is not a valid conversation: " + "; ".join(problems[:5]))
    size = sum(len(tokens.content_text(m["content"])) for m in messages) + len(tokens.content_text(req.system or ""))
    if size > cfg.server.max_prompt_chars:
        raise InputError(f"the request holds {size:,} characters of text; at most {cfg.server.max_prompt_chars:,} are accepted")
    return messages


def check_scalars(req: CompletionRequest, prices: PriceTable) -> None:
    if not isinstance(req.max_tokens, int) or isinstance(req.max_tokens, bool) or req.max_tokens < 1:
        raise InputError(f"`max_tokens` must be a positive integer (got {req.max_tokens!r})")
    largest = catalog.largest_output_tokens()
    if req.max_tokens > largest:
        raise InputError(f"`max_tokens` {req.max_tokens:,} is above the largest output any model allows ({largest:,})")
    if req.temperature is not None and not (0 <= req.temperature <= 1):
        raise InputError(f"`temperature` must be between 0 and 1 (got {req.temperature})")
    if req.top_p is not None and not (0 < req.top_p <= 1):
        raise InputError(f"`top_p` must be in (0, 1] (got {req.top_p})")
    if req.top_k is not None and (not isinstance(req.top_k, int) or isinstance(req.top_k, bool) or req.top_k < 1):
        raise InputError(f"`top_k` must be a positive integer (got {req.top_k!r})")
    _check_thinking(req)
    if req.metadata is not None:
        if not isinstance(req.metadata, dict) or set(req.metadata) - {"user_id"}:
            raise InputError("`metadata` must be an object whose only key is `user_id` (what the API accepts), "
                             f"got {sorted(req.metadata) if isinstance(req.metadata, dict) else req.metadata!r}")
        user_id = req.metadata.get("user_id")
        if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 256):
            raise InputError("`metadata.user_id` must be a string of at most 256 characters (an opaque id, "
                             "never a name, an email or a phone number)")
    if req.model is not None and not prices.is_known(req.model):
        raise InputError(f"`model`: {unknown_model_message(req.model, prices.models)}")
    if req.system is not None and not isinstance(req.system, (str, list)):
        raise InputError("`system` must be a string or a list of text blocks")
    if isinstance(req.system, list) and not all(isinstance(b, dict) and b.get("type") == "text" for b in req.system):
        raise InputError("`system` blocks must be objects of type 'text'")


THINKING_TYPES = ("enabled", "adaptive", "disabled")
MIN_THINKING_BUDGET_TOKENS = 1024


def _check_thinking(req: CompletionRequest) -> None:
    """Extended thinking, with the API's rules checked before anything is sent."""
    thinking = req.thinking
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise InputError("`thinking` must be {\"type\": \"enabled\", \"budget_tokens\": N}, {\"type\": \"adaptive\"} "
                         f"or {{\"type\": \"disabled\"}} (got {str(thinking)[:80]})")
    extra = set(thinking) - ({"type", "budget_tokens"} if thinking["type"] == "enabled" else {"type"})
    if extra:
        raise InputError(f"`thinking` of type {thinking['type']!r} takes no {sorted(extra)}")
    if thinking["type"] == "disabled":
        return
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET_TOKENS:
            raise InputError(f"`thinking.budget_tokens` must be an integer of at least {MIN_THINKING_BUDGET_TOKENS} "
                             f"(got {budget!r})")
        if isinstance(req.max_tokens, int) and budget >= req.max_tokens:
            raise InputError(f"`thinking.budget_tokens` ({budget}) must be below `max_tokens` ({req.max_tokens}): "
                             "the thinking is part of the output")
    if req.temperature is not None and req.temperature != 1:
        raise InputError("`temperature` cannot be set with thinking (the API allows only 1): leave it out")
    if req.top_k is not None:
        raise InputError("`top_k` cannot be used with thinking: leave it out")


def request_params(req: CompletionRequest, messages: list[dict]) -> dict[str, Any]:
    """The Messages API params of a request, other than the model."""
    params: dict[str, Any] = {"messages": messages, "max_tokens": req.max_tokens}
    if req.system is not None:
        params["system"] = req.system
    for key in ("temperature", "top_p", "top_k", "stop_sequences", "tools", "tool_choice", "thinking", "metadata"):
        value = getattr(req, key)
        if value is not None:
            params[key] = value
    return params


def response_cache_params(req: CompletionRequest, messages: list[dict], tier: str) -> dict[str, Any]:
    """What the response cache is keyed on: the caller's request (before
    pruning) on the pinned model, or on the routing tier when routed."""
    return {**request_params(req, messages), "model": req.model or f"tier:{tier}"}


def response_text(content: list[dict]) -> str:
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")
