"""Waste removal from a message that stays: what a kept message loses.

Repeated outputs and file contents become a one-line marker (the latest copy
stays), older full versions of a file shown again too; the middle of an
oversized block goes (head and tail stay, with a marker saying how much was
cut); old images and old thinking go; credential values are redacted. What is
cut is handed on as ``Fragment``s, so that its facts can reach the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import tokens as tok
from ..credentials import redact_credentials
from .facts import Fragment
from .history import History
from .summary import SUPERSEDED_WEIGHT, THINKING_WEIGHT
from .validate import blocks


@dataclass
class Trimmed:
    message: dict
    tokens: int
    removed: list[dict]
    cut: list[Fragment]
    changed: bool


def truncate_middle(text: str, head_chars: int, tail_chars: int, model: str | None, what: str) -> tuple[str, str]:
    """(head + marker + tail, the cut middle). Cuts on line boundaries when the lines are reasonable."""
    head_end = text.rfind("\n", 0, head_chars + 1)
    if head_end < head_chars // 2:
        head_end = head_chars
    tail_start = text.find("\n", len(text) - tail_chars - 1) + 1 if tail_chars else len(text)
    if tail_chars and (tail_start <= 0 or tail_start > len(text) - tail_chars // 2):
        tail_start = len(text) - tail_chars
    tail_start = max(tail_start, head_end)
    cut = text[head_end:tail_start]
    marker = (
        f"\n[... {len(cut):,} characters (~{tok.estimate_text_tokens(cut, model):,} tokens, "
        f"{cut.count(chr(10)):,} lines) cut from the middle of this {what} by context pruning ...]\n"
    )
    return text[:head_end] + marker + text[tail_start:], cut


class Trimmer:
    """Trimmed copies of the input's messages, cached per (message, limit)."""

    def __init__(self, history: History):
        self.h = history
        self.settings = history.settings
        self.model = history.model
        self._cache: dict[tuple, Trimmed] = {}
        self._known_tokens: dict[int, tuple[dict, int]] = {}

    def tokens_of(self, message: dict, i: int) -> int:
        """Tokens of ``message``; free when it is input message ``i`` or a trimmed copy already counted."""
        h = self.h
        if 0 <= i < h.n and message is h.messages[i]:
            return h.meter.per_message[i]
        known = self._known_tokens.get(id(message))
        if known is not None and known[0] is message:
            return known[1]
        return h.meter.count(message)

    def _limits(self, limit: int | None) -> tuple[int, int, int, int]:
        """(tool limit, text limit, head, tail) in tokens; ``limit`` tightens them (packing to a target)."""
        s = self.settings
        if limit is None:
            return s.oversized_tool_result_tokens, s.oversized_text_tokens, s.head_tokens, s.tail_tokens
        scale = min(1.0, limit / s.oversized_tool_result_tokens)
        return limit, limit, max(20, int(s.head_tokens * scale)), int(s.tail_tokens * scale)

    def _shorten(self, text: str, limit_tokens: int, head: int, tail: int, what: str, label: str, order: int, prose: bool,
                 out: Trimmed, where: dict, redact: bool = True) -> str:
        if redact and self.settings.redact_credentials:
            redacted, names = redact_credentials(text)
            if names:
                out.removed.append({**where, "action": "credentials_redacted", "names": names})
                text = redacted
        if len(text) * tok.family_factor(self.model) <= limit_tokens:  # a cl100k token spans at least a character
            return text
        tokens = tok.estimate_text_tokens(text, self.model)
        if tokens <= limit_tokens:
            return text
        rate = len(text) / max(1, tokens)
        new, cut = truncate_middle(text, int(head * rate), int(tail * rate), self.model, what)
        out.removed.append({**where, "action": "truncated", "tokens_removed": tokens - tok.estimate_text_tokens(new, self.model)})
        out.cut.append(Fragment(cut, f"{label}, cut part", 1.0, order, prose))
        return new

    def trim(self, i: int, limit: int | None = None, final_turn: bool = False) -> Trimmed:
        """Message ``i`` with its waste removed (cached). The tail stays verbatim,
        except as a last resort (``final_turn``): then only the tool results of
        the final user turn are shortened."""
        key = (i, limit, final_turn)
        if key in self._cache:
            return self._cache[key]
        h = self.h
        message = h.messages[i]
        s = self.settings
        tool_limit, text_limit, head, tail = self._limits(limit)
        if final_turn and limit:
            # what the model works on now: keep as much as the room allows, its
            # start and its end (a log's errors are usually at the end)
            head, tail = limit // 2, limit * 2 // 5
        out = Trimmed(message, 0, [], [], False)
        role = message.get("role")
        content = message.get("content")
        # the final turn keeps its images and its credentials (see keep_images_last_messages, redact_credentials)
        old_image = not final_turn and i < h.n - s.keep_images_last_messages
        base_order = i * 1000
        if isinstance(content, str):
            new_content: Any = content if final_turn else self._shorten(
                content, text_limit, head, tail, "message", role or "message", base_order, True, out, {"index": i})
        else:
            new_content = []
            for j, block in enumerate(blocks(content)):
                where = {"index": i, "block": j}
                if not isinstance(block, dict):
                    new_content.append(block)
                    continue
                kind = block.get("type")
                if final_turn and kind != "tool_result":
                    new_content.append(block)  # the user's own words and attachments stay
                    continue
                if kind == "text":
                    text = self._shorten(block.get("text", ""), text_limit, head, tail, "message", role or "message", base_order + j, True, out, where)
                    new_content.append(block if text == block.get("text") else {**block, "text": text})
                elif kind in ("image", "document") and old_image:
                    out.removed.append({**where, "action": f"{kind}_removed", "tokens_removed": tok.IMAGE_TOKENS})
                    title = block.get("title") or (block.get("source") or {}).get("media_type") or kind
                    new_content.append({"type": "text", "text": f"[{kind} removed by context pruning: {title}]"})
                elif kind in ("thinking", "redacted_thinking") and s.drop_old_thinking and i < h.tail_start:
                    thought = str(block.get("thinking", ""))
                    out.removed.append({**where, "action": f"{kind}_removed", "tokens_removed": tok.estimate_text_tokens(thought or str(block.get("data", "")), self.model)})
                    if thought:
                        out.cut.append(Fragment(thought, "assistant thinking", THINKING_WEIGHT, base_order + j, True))
                elif kind == "tool_use":
                    new_content.append(self._trim_tool_use(i, j, block, tool_limit, head, tail, out))
                elif kind == "tool_result":
                    new_content.append(self._trim_tool_result(i, j, block, tool_limit, head, tail, old_image, out,
                                                              redact=not final_turn))
                else:
                    new_content.append(block)
            if not new_content:
                new_content = [{"type": "text", "text": "[earlier reasoning removed by context pruning]"}]
        out.changed = bool(out.removed)
        out.message = {**message, "content": new_content} if out.changed else message
        out.tokens = h.meter.count(out.message) if out.changed else h.meter.per_message[i]
        self._cache[key] = out
        self._known_tokens[id(out.message)] = (out.message, out.tokens)
        return out

    def _trim_tool_use(self, i: int, j: int, block: dict, limit: int, head: int, tail: int, out: Trimmed) -> dict:
        tool_input = block.get("input")
        if not isinstance(tool_input, dict):
            return block
        h = self.h
        name = str(block.get("name", "tool"))
        new_input = {}
        for key, value in tool_input.items():
            where = {"index": i, "block": j, "field": key, "tool_use_id": block.get("id")}
            if isinstance(value, str):
                if (i, j, key) in h.duplicate_of:
                    out.removed.append({**where, "action": "deduplicated", "tokens_removed": tok.estimate_text_tokens(value, self.model)})
                    value = f"[Duplicate removed by context pruning: identical to {h.duplicate_of[(i, j, key)]}.]"
                elif (i, j, key) in h.superseded:
                    out.removed.append({**where, "action": "superseded", "path": h.superseded[(i, j, key)], "tokens_removed": tok.estimate_text_tokens(value, self.model)})
                    out.cut.append(Fragment(value, f"{name} {key}, older version", SUPERSEDED_WEIGHT, i * 1000 + j, False))
                    value = f"[Older version of {h.superseded[(i, j, key)]} removed by context pruning: a newer version appears later.]"
                else:
                    value = self._shorten(value, limit, head, tail, "tool input", f"{name} call", i * 1000 + j, False, out, where)
            new_input[key] = value
        return block if new_input == tool_input else {**block, "input": new_input}

    def _trim_tool_result(self, i: int, j: int, block: dict, limit: int, head: int, tail: int, old_image: bool, out: Trimmed,
                          redact: bool = True) -> dict:
        h = self.h
        tool_id = block.get("tool_use_id", "")
        name = h.tool_names.get(tool_id, "tool")
        where = {"index": i, "block": j, "tool_use_id": tool_id}
        content = block.get("content", "")
        if (i, j) in h.duplicate_of:
            out.removed.append({**where, "action": "deduplicated", "tokens_removed": tok.estimate_text_tokens(tok.content_text(content), self.model)})
            return {**block, "content": f"[Duplicate output removed by context pruning: identical to {h.duplicate_of[(i, j)]}.]"}
        if (i, j) in h.superseded:
            text = tok.content_text(content)
            out.removed.append({**where, "action": "superseded", "path": h.superseded[(i, j)], "tokens_removed": tok.estimate_text_tokens(text, self.model)})
            out.cut.append(Fragment(text, f"{name} result, older version", SUPERSEDED_WEIGHT, i * 1000 + j, False))
            return {**block, "content": f"[Older version of {h.superseded[(i, j)]} removed by context pruning: a newer version appears later.]"}
        if isinstance(content, str):
            new = self._shorten(content, limit, head, tail, "tool result", f"{name} result", i * 1000 + j, False, out, where,
                                redact)
            return block if new == content else {**block, "content": new}
        new_inner = []
        for inner in blocks(content):
            if isinstance(inner, dict) and inner.get("type") == "text":
                text = self._shorten(inner.get("text", ""), limit, head, tail, "tool result", f"{name} result", i * 1000 + j, False, out,
                                     where, redact)
                new_inner.append(inner if text == inner.get("text") else {**inner, "text": text})
            elif isinstance(inner, dict) and inner.get("type") in ("image", "document") and old_image:
                out.removed.append({**where, "action": f"{inner['type']}_removed", "tokens_removed": tok.IMAGE_TOKENS})
                new_inner.append({"type": "text", "text": f"[{inner['type']} removed by context pruning]"})
            else:
                new_inner.append(inner)
        return block if new_inner == content else {**block, "content": new_inner}

    def final_turn_text_limit(self, room: int) -> int:
        """The per-text token limit that fits the final user turn into ``room``:
        its tool results' texts above it are cut to it, the smaller ones stay
        whole, and the room they leave goes to the large ones (an even split
        would waste it). The user's words, images and the rest are fixed."""
        h = self.h
        message = h.messages[h.last_user]
        sizes: list[int] = []  # tokens of each text a final-turn shortening may cut
        fixed_content = []  # the turn without those texts: what no limit changes
        for j, block in enumerate(blocks(message.get("content"))):
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                fixed_content.append(block)
            elif (h.last_user, j) in h.duplicate_of or (h.last_user, j) in h.superseded:
                # replaced by a one-line marker whatever the limit: about this long
                fixed_content.append({**block, "content": "[Duplicate output removed by context pruning: identical to ...]"})
            elif isinstance(block.get("content", ""), str):
                sizes.append(tok.estimate_text_tokens(block.get("content", ""), self.model))
                fixed_content.append({**block, "content": ""})
            else:
                inner = blocks(block.get("content"))
                is_text = [isinstance(b, dict) and b.get("type") == "text" for b in inner]
                sizes.extend(tok.estimate_text_tokens(str(b.get("text", "")), self.model) for b, t in zip(inner, is_text) if t)
                fixed_content.append({**block, "content": [b for b, t in zip(inner, is_text) if not t]})  # images stay
        left = room - h.meter.count({**message, "content": fixed_content})
        sizes.sort()
        for index, size in enumerate(sizes):
            share = left / (len(sizes) - index)
            if size > share:
                return max(0, int(share))  # this text and every larger one are cut to the share
            left -= size
        return max(0, int(left))
