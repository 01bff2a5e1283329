"""Request validation with the real API's rules and error shapes.

Every check answers ``400 invalid_request_error`` with the JSON path of the
offending field first, like the real API ("messages.2.content.0: ..."), so a
failing client test says exactly what it sent wrong. Cache-control rules live
in ``prompt.py`` because they depend on where each block lands in the prefix.

Accepted as the real API accepts them today (Claude Code sends every one):
mid-conversation ``role: "system"`` messages (text only, right after a user
turn, never first: the placement rule of Claude Opus 4.8's release notes; they
do not count in the user/assistant alternation), ``thinking`` of type
enabled / adaptive / disabled / between_tools, ``output_config``,
``context_management``, ``metadata`` and tool fields such as ``strict``. Other
top-level fields are not checked (the API has many; the sim ignores them).
Thinking blocks sent back must carry the signature the sim gave them
(``thinking.py``): a gateway that rewrites one is caught here.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid_request
from .thinking import check_signature

ROLES = ("user", "assistant")
SYSTEM_ROLE = "system"  # a mid-conversation system message
THINKING_TYPES = ("enabled", "adaptive", "disabled", "between_tools")
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
MAX_STOP_SEQUENCES = 8192
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# Block types that only one side of the conversation may send.
_ASSISTANT_ONLY_BLOCKS = ("tool_use", "thinking", "redacted_thinking", "server_tool_use")
_USER_ONLY_BLOCKS = ("tool_result", "image", "document")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def require_model_id(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid_request("model: Field required")
    if not isinstance(model, str) or not model:
        raise invalid_request("model: Input should be a valid string")
    return model


def validate_message_request(body: dict[str, Any], *, model_id: str, max_output_tokens: int = 128_000,
                             count_only: bool = False) -> None:
    """Raise ``APIError`` unless ``body`` is a valid Messages (or count_tokens) request."""
    if not count_only:
        _validate_max_tokens(body, model_id, max_output_tokens)
        if "stream" in body and not isinstance(body["stream"], bool):
            raise invalid_request("stream: Input should be a valid boolean")
        _validate_sampling(body)
        _validate_thinking(body)
        _validate_metadata(body.get("metadata"))
        _validate_objects(body)
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    _validate_messages(body.get("messages"))


def _validate_max_tokens(body: dict[str, Any], model_id: str, max_output_tokens: int) -> None:
    if "max_tokens" not in body:
        raise invalid_request("max_tokens: Field required")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise invalid_request("max_tokens: Input should be a valid integer")
    if max_tokens < 0:
        raise invalid_request("max_tokens: Input should be greater than or equal to 1")
    if max_tokens > max_output_tokens:
        raise invalid_request(
            f"max_tokens: {max_tokens} > {max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {model_id}"
        )
    # max_tokens == 0 is legal only for cache pre-warming: checked once the
    # breakpoints are known (see SimulatedAnthropic._create_message).


def _validate_sampling(body: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise invalid_request(f"{name}: Input should be a valid number")
        if not 0 <= value <= 1:
            raise invalid_request(f"{name}: Input should be between 0 and 1")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise invalid_request("top_k: Input should be a non-negative integer")
    stop_sequences = body.get("stop_sequences")
    if stop_sequences is not None:
        if not isinstance(stop_sequences, list) or not all(isinstance(s, str) and s for s in stop_sequences):
            raise invalid_request("stop_sequences: Input should be a list of non-empty strings")
        if len(stop_sequences) > MAX_STOP_SEQUENCES:
            raise invalid_request(f"stop_sequences: at most {MAX_STOP_SEQUENCES} stop sequences are allowed")


def _validate_thinking(body: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise invalid_request("thinking.type: Input should be " + ", ".join(repr(t) for t in THINKING_TYPES))
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise invalid_request("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise invalid_request("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body.get("max_tokens", 0):
            raise invalid_request("`max_tokens` must be greater than `thinking.budget_tokens`")
    if thinking["type"] in ("enabled", "adaptive"):
        if body.get("temperature") not in (None, 1):
            raise invalid_request("temperature: may only be set to 1 when thinking is enabled")
        if body.get("top_k") is not None:
            raise invalid_request("top_k: is not compatible with thinking")


def _validate_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise invalid_request("metadata: Input should be a valid dictionary")
    extra = sorted(set(metadata) - {"user_id"})
    if extra:
        raise invalid_request(f"metadata.{extra[0]}: Extra inputs are not permitted")
    user_id = metadata.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 256):
        raise invalid_request("metadata.user_id: Input should be a string of at most 256 characters")


def _validate_objects(body: dict[str, Any]) -> None:
    """Fields the sim does not act on, checked for their shape only."""
    for name in ("output_config", "context_management"):
        if name in body and not isinstance(body[name], dict):
            raise invalid_request(f"{name}: Input should be a valid dictionary")
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in EFFORT_LEVELS:
        raise invalid_request("output_config.effort: Input should be " + ", ".join(repr(e) for e in EFFORT_LEVELS))
    edits = (body.get("context_management") or {}).get("edits")
    if edits is not None and not (isinstance(edits, list) and all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in edits)):
        raise invalid_request("context_management.edits: Input should be a list of edits with a `type`")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_request("system: Input should be a valid string or a list of text blocks")
    for index, block in enumerate(system):
        where = f"system.{index}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid_request(f"{where}.type: Input should be 'text'")
        _validate_text(block, where)


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise invalid_request("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise invalid_request(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if tool.get("type") in (None, "custom"):
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise invalid_request(f"{where}.input_schema: Field required")
            if schema.get("type") != "object":
                raise invalid_request(f"{where}.input_schema.type: Input should be 'object'")
        if name in names:
            raise invalid_request("tools: Tool names must be unique.")
        names.add(name)
    return names


def _validate_tool_choice(tool_choice: Any, tool_names: set[str]) -> None:
    if tool_choice is None:
        return
    if not isinstance(tool_choice, dict) or tool_choice.get("type") not in TOOL_CHOICE_TYPES:
        raise invalid_request("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if tool_choice["type"] in ("any", "tool") and not tool_names:
        raise invalid_request("tool_choice: tool_choice may only be specified while providing tools.")
    if tool_choice["type"] == "tool" and tool_choice.get("name") not in tool_names:
        raise invalid_request(f"tool_choice.name: tool {tool_choice.get('name')!r} is not in the request's tools")


def _validate_messages(messages: Any) -> None:
    if messages is None:
        raise invalid_request("messages: Field required")
    if not isinstance(messages, list):
        raise invalid_request("messages: Input should be a valid list")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    seen_tool_use_ids: set[str] = set()
    previous = None  # index of the previous user or assistant message
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role == SYSTEM_ROLE and index > 0:
            if messages[index - 1].get("role") != "user":
                raise invalid_request(f"{where}: a `system` message must immediately follow a `user` message")
            _validate_system_message(message.get("content"), where)
            continue
        if role not in ROLES:
            raise invalid_request(f"{where}.role: Input should be 'user' or 'assistant'")
        if index == 0 and role != "user":
            raise invalid_request('messages: the first message must use the "user" role')
        if previous is not None and messages[previous].get("role") == role:
            raise invalid_request(
                f'messages: roles must alternate between "user" and "assistant", but found multiple '
                f'"{role}" roles in a row (messages.{previous} and messages.{index})'
            )
        previous = index
        is_final_assistant = role == "assistant" and index == len(messages) - 1
        _validate_content(message.get("content"), role, where, allow_empty=is_final_assistant)
        for block in _blocks(message):
            if block.get("type") == "tool_use":
                if block["id"] in seen_tool_use_ids:
                    raise invalid_request(f"{where}: `tool_use` ids must be unique, found {block['id']} twice")
                seen_tool_use_ids.add(block["id"])
    _validate_tool_pairing(messages)


def _validate_system_message(content: Any, where: str) -> None:
    if isinstance(content, str):
        if not content.strip():
            raise invalid_request(f"{where}.content: a `system` message must not be empty")
        return
    if not isinstance(content, list) or not content:
        raise invalid_request(f"{where}.content: Input should be a valid string or a non-empty list of text blocks")
    for index, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid_request(f"{where}.content.{index}.type: a `system` message holds text blocks only")
        _validate_text(block, f"{where}.content.{index}")


def _validate_content(content: Any, role: str, where: str, *, allow_empty: bool) -> None:
    empty_message = f"{where}: all messages must have non-empty content except for the optional final assistant message"
    if isinstance(content, str):
        if not content and not allow_empty:
            raise invalid_request(empty_message)
        return
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content: Input should be a valid string or list of content blocks")
    if not content and not allow_empty:
        raise invalid_request(empty_message)
    for index, block in enumerate(content):
        _validate_block(block, role, f"{where}.content.{index}")


def _validate_block(block: Any, role: str, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid_request(f"{where}: Input should be a content block with a 'type'")
    kind = block["type"]
    if kind in _ASSISTANT_ONLY_BLOCKS and role != "assistant":
        raise invalid_request(f"{where}: `{kind}` blocks can only be in `assistant` messages")
    if kind in _USER_ONLY_BLOCKS and role != "user":
        raise invalid_request(f"{where}: `{kind}` blocks can only be in `user` messages")
    if kind == "text":
        _validate_text(block, where)
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not block["id"]:
            raise invalid_request(f"{where}.id: Field required")
        if not isinstance(block.get("name"), str):
            raise invalid_request(f"{where}.name: Field required")
        if not isinstance(block.get("input"), dict):
            raise invalid_request(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid_request(f"{where}.tool_use_id: Field required")
        content = block.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise invalid_request(f"{where}.content: Input should be a valid string or list of content blocks")
    elif kind in ("image", "document"):
        if not isinstance(block.get("source"), dict):
            raise invalid_request(f"{where}.source: Field required")
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str):
            raise invalid_request(f"{where}.thinking: Field required")
        if not isinstance(block.get("signature"), str):
            raise invalid_request(f"{where}.signature: Field required")
        if not check_signature(block["thinking"], block["signature"]):
            raise invalid_request(f"{where}: Invalid `signature` in `thinking` block")


def _validate_text(block: dict[str, Any], where: str) -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid_request(f"{where}.text: Field required")
    if not text.strip():
        raise invalid_request(f"{where}.text: text content blocks must contain non-whitespace text")


def _validate_tool_pairing(messages: list[dict[str, Any]]) -> None:
    """Every tool_result answers the previous turn's tool_use, and every tool_use is answered."""
    previous_tool_use_ids: list[str] = []
    for index, message in enumerate(messages):
        if message["role"] == SYSTEM_ROLE:
            continue  # it follows a user turn, so it never sits between a tool_use and its result
        blocks = _blocks(message)
        if message["role"] == "user":
            for block_index, block in enumerate(blocks):
                if block.get("type") == "tool_result" and block["tool_use_id"] not in previous_tool_use_ids:
                    raise invalid_request(
                        f"messages.{index}.content.{block_index}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block must have "
                        "a corresponding `tool_use` block in the previous message."
                    )
            previous_tool_use_ids = []
            continue
        previous_tool_use_ids = [block["id"] for block in blocks if block.get("type") == "tool_use"]
        if previous_tool_use_ids and index + 1 < len(messages):
            answered = {
                block["tool_use_id"]
                for block in _blocks(messages[index + 1])
                if block.get("type") == "tool_result"
            }
            missing = [tool_use_id for tool_use_id in previous_tool_use_ids if tool_use_id not in answered]
            if missing:
                raise invalid_request(
                    f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []
