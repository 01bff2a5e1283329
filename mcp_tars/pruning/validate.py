"""Whether a Messages API conversation is one the API accepts.

The rules pruning must keep (and the engine checks before sending): a
non-empty list starting with the user, alternating roles, tool_result blocks
answering the tool_use blocks of the message just before them, no empty
content, at most four cache breakpoints.
"""

from __future__ import annotations

from typing import Any


def blocks(content: Any) -> list:
    return content if isinstance(content, list) else []


def has_tool_result(message: dict) -> bool:
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks(message.get("content")))


def tool_use_ids(message: dict) -> list[str]:
    return [b.get("id") for b in blocks(message.get("content")) if isinstance(b, dict) and b.get("type") == "tool_use"]


def validate_conversation(messages: list[dict]) -> list[str]:
    """Problems that would make the Messages API reject ``messages`` (400);
    an empty list when it is valid.

    Checked: a non-empty list of user/assistant messages starting with the
    user; alternating roles; no empty content (except a final assistant
    prefill) and no whitespace-only text blocks; tool_use only from the
    assistant, tool_result and images... only where they belong; every
    tool_result answers a tool_use of the message just before it, comes
    before any other block of its message, and appears once; every tool_use
    is answered in the next message; unique tool_use ids; at most 4
    cache_control breakpoints.
    """
    problems: list[str] = []
    if not isinstance(messages, list) or not messages:
        return ["messages must be a non-empty list"]
    seen_tool_ids: set[str] = set()
    breakpoints = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{where} is not an object")
            continue
        role = message.get("role")
        if role not in ("user", "assistant"):
            problems.append(f"{where}.role must be 'user' or 'assistant', not {role!r}")
            continue
        if i == 0 and role != "user":
            problems.append("the first message must come from the user")
        if i > 0 and isinstance(messages[i - 1], dict) and messages[i - 1].get("role") == role:
            problems.append(f"{where} has the same role ({role}) as the message before it; roles must alternate")
        content = message.get("content")
        last_prefill = i == len(messages) - 1 and role == "assistant"
        if isinstance(content, str):
            if not content.strip() and not (last_prefill and content == ""):
                problems.append(f"{where}.content is empty")
            continue
        if not isinstance(content, list):
            problems.append(f"{where}.content must be a string or a list of blocks")
            continue
        if not content and not last_prefill:
            problems.append(f"{where}.content is an empty list")
        previous_ids = tool_use_ids(messages[i - 1]) if i > 0 and isinstance(messages[i - 1], dict) else []
        answered: set[str] = set()
        other_block_seen = False
        for j, block in enumerate(content):
            bwhere = f"{where}.content[{j}]"
            if not isinstance(block, dict) or "type" not in block:
                problems.append(f"{bwhere} is not a content block")
                continue
            if block.get("cache_control"):
                breakpoints += 1
            kind = block["type"]
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"].strip():
                    problems.append(f"{bwhere} is an empty text block")
            elif kind == "tool_use":
                if role != "assistant":
                    problems.append(f"{bwhere}: tool_use blocks belong to assistant messages")
                tool_id = block.get("id")
                if not tool_id or not block.get("name") or not isinstance(block.get("input"), dict):
                    problems.append(f"{bwhere}: tool_use needs id, name and an input object")
                elif tool_id in seen_tool_ids:
                    problems.append(f"{bwhere}: duplicate tool_use id {tool_id}")
                else:
                    seen_tool_ids.add(tool_id)
            elif kind == "tool_result":
                if role != "user":
                    problems.append(f"{bwhere}: tool_result blocks belong to user messages")
                tool_id = block.get("tool_use_id")
                if tool_id not in previous_ids:
                    problems.append(f"{bwhere}: tool_result {tool_id} does not answer a tool_use of the previous message")
                elif tool_id in answered:
                    problems.append(f"{bwhere}: tool_use {tool_id} is answered twice")
                answered.add(tool_id)
                if other_block_seen:
                    problems.append(f"{bwhere}: tool_result blocks must come before any other block of the message")
                inner = block.get("content")
                if isinstance(inner, list):
                    for inner_block in inner:
                        if isinstance(inner_block, dict) and inner_block.get("type") == "text" and not str(inner_block.get("text", "")).strip():
                            problems.append(f"{bwhere}: empty text block inside a tool_result")
            elif kind in ("thinking", "redacted_thinking"):
                if role != "assistant":
                    problems.append(f"{bwhere}: {kind} blocks belong to assistant messages")
            elif kind in ("image", "document"):
                if not isinstance(block.get("source"), dict):
                    problems.append(f"{bwhere}: {kind} needs a source")
            if kind != "tool_result":
                other_block_seen = True
        if i + 1 < len(messages) and role == "assistant":
            ids = [t for t in tool_use_ids(message) if t]
            nxt = messages[i + 1] if isinstance(messages[i + 1], dict) else {}
            results = {b.get("tool_use_id") for b in blocks(nxt.get("content")) if isinstance(b, dict) and b.get("type") == "tool_result"}
            missing = [t for t in ids if t not in results]
            if missing:
                problems.append(f"{where}: tool_use {', '.join(missing)} not answered by a tool_result in the next message")
    if breakpoints > 4:
        problems.append(f"{breakpoints} cache_control breakpoints in messages; the API allows at most 4")
    return problems
