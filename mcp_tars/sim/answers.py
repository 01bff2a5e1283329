"""Deterministic answers: the same request always gets the same reply.

Text answers start with ``Simulated answer (model=M, q=TAG):`` where TAG is
``answer_tag(question)``: the question is the text of the last user message
that has text (tool_result-only turns are skipped, so the answer after a tool
round trip still names the original question). A benchmark checks that a reply
answers its question by looking for ``q=TAG``. Filler sentences follow, chosen
by a generator seeded with the question, the model and the sim's seed.

Length: about 40 tokens plus half the question's length (at most ~600), or
about N tokens when the question contains ``[sim:output_tokens=N]``. When
that is more than ``max_tokens`` the text is cut and stop_reason is
"max_tokens"; when a stop sequence occurs it is cut there ("stop_sequence").

Tool use: when the request has custom tools, tool_choice is not "none", the
last message is a user message without tool_result blocks, and either
tool_choice forces a tool ("any"/"tool") or the question contains the word
"tool" or "tools", the answer is a short text block plus one tool_use block
(stop_reason "tool_use"). The tool is the forced one, else the first whose
name appears in the question, else the first custom tool; its input fills the
schema's required properties with placeholder values. A question holding
``[sim:tool=NAME input={...}]`` calls tool NAME (when the request offers it)
with exactly that JSON input: how a test makes a real agent (Claude Code) run
a real tool, deterministically. Mid-conversation system messages are not part
of the conversation's turns here: "the last message" is the last user or
assistant one.

Thinking: with ``thinking`` enabled or adaptive, the answer starts with a
signed thinking block (``thinking.py``), counted in the output tokens.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .prompt import TOOL_BLOCK_OVERHEAD_TOKENS, canonical_json
from .thinking import thinking_block, wants_thinking
from .tokenizer import raw_token_count, scaled

ANSWER_TAG_LENGTH = 10
BASE_ANSWER_TOKENS = 40
MAX_NATURAL_ANSWER_TOKENS = 600
_OUTPUT_TOKENS_MARKER = re.compile(r"\[sim:output_tokens=(\d+)\]")
_TOOL_MARKER = re.compile(r"\btools?\b", re.IGNORECASE)
_TOOL_CALL_MARKER = re.compile(r"\[sim:tool=(?P<name>[A-Za-z0-9_-]+)(?: input=(?P<input>\{.*?\}))?\]", re.DOTALL)

FILLER_SENTENCES = (
    "The short answer depends on the details you gave.",
    "Here is a careful walk through the main points.",
    "First, consider what the question is really asking.",
    "The simplest explanation is usually the right place to start.",
    "A concrete example makes the idea easier to follow.",
    "There are a few trade-offs worth keeping in mind.",
    "In practice the difference is small but measurable.",
    "Most of the cost comes from a handful of decisions.",
    "It helps to check the assumptions before the conclusion.",
    "The same reasoning applies to the related cases as well.",
    "One edge case deserves a closer look.",
    "Measured over a week, the pattern becomes clear.",
    "If the inputs change, revisit the estimate.",
    "Nothing here requires special tools or access.",
    "The result holds under the usual conditions.",
    "To summarise, the approach is sound and easy to repeat.",
)


@dataclass
class Answer:
    content: list[dict[str, Any]] = field(default_factory=list)
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None


def answer_tag(text: str) -> str:
    """Short stable hash of a question (stripped), as printed in ``q=...``."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:ANSWER_TAG_LENGTH]


def conversation_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user and assistant messages (mid-conversation system messages left out)."""
    return [message for message in messages if message.get("role") != "system"]


def question_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message that has any text (see module docstring)."""
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        texts = [block["text"] for block in content if block.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    return ""


def compose_answer(
    body: dict[str, Any],
    *,
    token_factor: float,
    seed: int,
    new_tool_use_id: Callable[[], str],
) -> Answer:
    max_tokens = body["max_tokens"]
    if max_tokens == 0:  # cache pre-warming: no generation at all
        return Answer(stop_reason="max_tokens")
    model = body["model"]
    question = question_text(body["messages"])
    tag = answer_tag(question)
    thinking = thinking_block(model, tag) if wants_thinking(body) else None
    thinking_tokens = scaled(raw_token_count(thinking["thinking"]), token_factor) if thinking else 0
    answer = None
    tool = _tool_to_call(body, question)
    if tool is not None:
        answer = _tool_use_answer(tool, model, tag, token_factor, new_tool_use_id(), _marked_input(question, tool))
        if answer.output_tokens + thinking_tokens > max_tokens:
            answer = None
    if answer is None:
        answer = _text_answer({**body, "max_tokens": max(1, max_tokens - thinking_tokens)}, question, model, tag,
                              token_factor, seed)
    if thinking is not None:
        answer.content.insert(0, thinking)
        answer.output_tokens += thinking_tokens
    return answer


def _text_answer(
    body: dict[str, Any], question: str, model: str, tag: str, factor: float, seed: int
) -> Answer:
    rng = random.Random(f"{seed}:{model}:{tag}")
    marker = _OUTPUT_TOKENS_MARKER.search(question)
    if marker:
        target = max(1, int(marker.group(1)))
    else:
        natural = BASE_ANSWER_TOKENS + raw_token_count(question) // 2
        target = min(MAX_NATURAL_ANSWER_TOKENS, natural) + rng.randint(0, 20)

    # Words with their own token counts, so the text can be cut at a token limit.
    words = f"Simulated answer (model={model}, q={tag}):".split(" ")
    pieces = [words[0]] + [" " + word for word in words[1:]]
    raw_total = sum(raw_token_count(piece) for piece in pieces)
    while scaled(raw_total, factor) < target:
        for word in rng.choice(FILLER_SENTENCES).split(" "):
            pieces.append(" " + word)
            raw_total += raw_token_count(" " + word)

    max_tokens = body["max_tokens"]
    if scaled(raw_total, factor) <= max_tokens:
        text, output_tokens, stop_reason = "".join(pieces), scaled(raw_total, factor), "end_turn"
    else:  # the model ran out of tokens: it produced exactly max_tokens of them
        kept, raw_kept = [], 0
        for piece in pieces:
            raw_kept += raw_token_count(piece)
            if kept and scaled(raw_kept, factor) > max_tokens:
                break
            kept.append(piece)
        text, output_tokens, stop_reason = "".join(kept), max_tokens, "max_tokens"

    stops = [(text.find(sequence), sequence) for sequence in body.get("stop_sequences") or () if sequence in text]
    if stops:
        position, sequence = min(stops)
        text = text[:position]
        output_tokens = min(output_tokens, scaled(raw_token_count(text + sequence), factor))
        return Answer([{"type": "text", "text": text}], output_tokens, "stop_sequence", sequence)
    return Answer([{"type": "text", "text": text}], output_tokens, stop_reason)


def _tool_to_call(body: dict[str, Any], question: str) -> dict[str, Any] | None:
    tools = [tool for tool in body.get("tools") or () if tool.get("type") in (None, "custom")]
    choice = (body.get("tool_choice") or {}).get("type", "auto")
    last = conversation_turns(body["messages"])[-1]
    if not tools or choice == "none" or last["role"] != "user":
        return None
    if isinstance(last["content"], list) and any(b.get("type") == "tool_result" for b in last["content"]):
        return None
    if choice == "tool":  # a forced server tool is not ours to call: answer with text
        return next((tool for tool in tools if tool["name"] == body["tool_choice"]["name"]), None)
    marker = _TOOL_CALL_MARKER.search(question)
    if marker:
        return next((tool for tool in tools if tool["name"] == marker["name"]), None)
    if choice != "any" and not _TOOL_MARKER.search(question):
        return None
    named = [tool for tool in tools if tool["name"] in question]
    return named[0] if named else tools[0]


def _marked_input(question: str, tool: dict[str, Any]) -> dict[str, Any] | None:
    """The input a ``[sim:tool=NAME input={...}]`` marker gives this tool, if any."""
    marker = _TOOL_CALL_MARKER.search(question)
    if not marker or marker["name"] != tool["name"] or not marker["input"]:
        return None
    try:
        value = json.loads(marker["input"])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _tool_use_answer(tool: dict[str, Any], model: str, tag: str, factor: float, tool_use_id: str,
                     arguments: dict[str, Any] | None = None) -> Answer:
    text = f"Simulated tool call (model={model}, q={tag}): calling {tool['name']}."
    if arguments is None:
        arguments = _placeholder_arguments(tool.get("input_schema") or {}, tag)
    raw = raw_token_count(text) + raw_token_count(tool["name"] + canonical_json(arguments))
    return Answer(
        content=[
            {"type": "text", "text": text},
            {"type": "tool_use", "id": tool_use_id, "name": tool["name"], "input": arguments},
        ],
        output_tokens=TOOL_BLOCK_OVERHEAD_TOKENS + scaled(raw, factor),
        stop_reason="tool_use",
    )


def _placeholder_arguments(schema: dict[str, Any], tag: str) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    return {
        name: _placeholder_value(properties.get(name) or {}, tag)
        for name in schema.get("required") or ()
    }


def _placeholder_value(schema: dict[str, Any], tag: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    return {
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(kind, f"sim-{tag}")
