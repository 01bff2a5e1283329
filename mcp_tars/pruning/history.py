"""One pruning call's view of its input, worked out once.

Token counts (``Meter``), the turn the model answers now (the final user
turn, with the assistant turn its tool results answer: the *tail*), the
user's current request, the question those ask (``question_text``), and the
waste in what may be kept: outputs and file contents that appear again
later (the latest copy stays) and older full versions of a file shown again.
"""

from __future__ import annotations

from typing import Any

from .. import tokens as tok
from ..settings import PruningSettings
from .meter import CHARS_PER_TOKEN, Meter, image_count
from .validate import blocks, has_tool_result

_PATH_KEYS = ("path", "file_path", "filepath", "file", "filename", "target_file", "absolute_path", "notebook_path")
_CONTENT_KEYS = ("content", "contents", "file_text", "text", "new_content", "data")
_RANGE_KEYS = ("offset", "limit", "view_range", "start_line", "end_line", "line_start", "line_end", "lines", "range", "head", "tail", "pattern", "query", "regex")


def _file_path(tool_input: dict) -> str | None:
    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().removeprefix("./")
    return None


def read_path(name: str, tool_input: dict) -> str | None:
    """The file a tool call reads in full, if it does."""
    if not isinstance(tool_input, dict) or any(tool_input.get(k) not in (None, "", [], 0) for k in _RANGE_KEYS):
        return None
    lowered = name.lower()
    command = tool_input.get("command")
    if isinstance(command, str):
        if command == "view":
            return _file_path(tool_input)
        parts = command.split()
        if len(parts) == 2 and parts[0] in ("cat", "bat", "less", "more") and not set(parts[1]) & set("*?|;&><$`"):
            return parts[1].removeprefix("./")
        return None
    if any(w in lowered for w in ("read", "view", "cat", "open", "get_file", "show_file", "load_file")):
        return _file_path(tool_input)
    return None


def write_field(name: str, tool_input: dict) -> tuple[str, str] | None:
    """(path, key of the full new content) of a tool call that writes a whole file."""
    if not isinstance(tool_input, dict):
        return None
    lowered = name.lower()
    command = tool_input.get("command")
    writes = command == "create" or (
        not isinstance(command, str) and any(w in lowered for w in ("write", "create", "save", "put_file"))
    )
    if not writes:
        return None
    path = _file_path(tool_input)
    for key in _CONTENT_KEYS:
        if isinstance(tool_input.get(key), str):
            return (path, key) if path else None
    return None


def own_words(message: dict) -> str:
    """The text a message's author wrote themselves (not tool results, not attachments)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in blocks(content) if isinstance(b, dict) and b.get("type") == "text")


class History:
    def __init__(self, messages: list[dict], system: Any, settings: PruningSettings, model: str | None):
        self.messages = messages
        self.n = len(messages)
        self.settings = settings
        self.model = model
        self.system_text = tok.content_text(system) if system else ""
        self.meter = Meter(messages, system, model, settings.exact_count_max_chars)
        self.last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=self.n - 1)
        self.tail_start = self._tail_start()
        self.request_index = self._request_index()
        self.tool_names: dict[str, str] = {}
        self.tool_inputs: dict[str, dict] = {}
        self.duplicate_of: dict[tuple, str] = {}  # (i, j[, key]) -> marker text
        self.superseded: dict[tuple, str] = {}
        self.waste_chars = [0] * self.n
        self._analyse()

    # -- the turn answered now

    def _tail_start(self) -> int:
        """First index of the part never dropped nor changed: the last user turn,
        with the assistant message its tool results answer."""
        last_user = self.last_user
        if last_user > 0 and has_tool_result(self.messages[last_user]) and self.messages[last_user - 1].get("role") == "assistant":
            return last_user - 1
        return last_user

    def _request_index(self) -> int | None:
        """The user's current request: the last user message with words of its
        own (not only tool results). In an agent's tool loop it lies before the
        tail; if it is dropped, the model must still see it."""
        for i in range(self.n - 1, -1, -1):
            m = self.messages[i]
            if m.get("role") == "user" and own_words(m).strip():
                return i
        return None

    def question_text(self) -> str:
        """What the turn answered now asks: the final user turn's own words, and
        the current request when the final turn is (only) tool results."""
        parts = [own_words(self.messages[self.last_user])] if self.last_user < self.n else []
        if self.request_index is not None and self.request_index != self.last_user:
            parts.append(own_words(self.messages[self.request_index]))
        return "\n".join(p for p in parts if p.strip())

    def verbatim_turn(self, i: int) -> bool:
        """Whether the summary must not join user message ``i``: the final user
        turn (the model answers it now; pruning never changes it) and the
        user's current request (what the tool loop under way works on), so
        that both read exactly as the user sent them, not mixed with pruning's
        own text."""
        return i == self.last_user or i == self.request_index

    def tail_tokens(self) -> int:
        return sum(self.meter.per_message[self.tail_start:])

    # -- waste

    def _analyse(self) -> None:
        """Find repeated outputs and superseded file versions, walking backwards
        so that the *latest* copy of anything is the one that stays."""
        s = self.settings
        dup_chars = s.duplicate_min_tokens * CHARS_PER_TOKEN
        sup_chars = s.superseded_min_tokens * CHARS_PER_TOKEN
        for message in self.messages:
            if message.get("role") == "assistant":
                for b in blocks(message.get("content")):
                    if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id"):
                        self.tool_names[b["id"]] = str(b.get("name", "tool"))
                        self.tool_inputs[b["id"]] = b.get("input") if isinstance(b.get("input"), dict) else {}
        # Characters each message could lose to waste removal at most: lets auto
        # skip a waste-only attempt that cannot reach the target.
        keep_chars = (s.head_tokens + s.tail_tokens) * CHARS_PER_TOKEN
        tool_limit_chars = s.oversized_tool_result_tokens * CHARS_PER_TOKEN / 2
        text_limit_chars = s.oversized_text_tokens * CHARS_PER_TOKEN / 2

        def oversized(length: int, limit_chars: float) -> float:
            return max(0.0, length - keep_chars) if length > limit_chars else 0.0

        later_text: dict[str, str] = {}  # text -> description of the later copy
        later_files: set[str] = set()
        for i in range(self.n - 1, -1, -1):
            content = self.messages[i].get("content")
            waste = 0.0
            if isinstance(content, str):
                waste += oversized(len(content), text_limit_chars)
            for j in range(len(blocks(content)) - 1, -1, -1):
                block = content[j]
                if not isinstance(block, dict):
                    continue
                kind = block.get("type")
                if kind == "tool_result":
                    tool_id = block.get("tool_use_id", "")
                    name = self.tool_names.get(tool_id, "tool")
                    text = tok.content_text(block.get("content", ""))
                    if len(text) >= dup_chars:
                        if text in later_text:
                            self.duplicate_of[(i, j)] = later_text[text]
                        else:
                            later_text[text] = f"the later result of {name} ({tool_id})"
                    path = read_path(name, self.tool_inputs.get(tool_id, {}))
                    if path and not block.get("is_error") and (i, j) not in self.duplicate_of:
                        if path in later_files and len(text) >= sup_chars:
                            self.superseded[(i, j)] = path
                        later_files.add(path)
                    waste += len(text) if (i, j) in self.duplicate_of or (i, j) in self.superseded else oversized(len(text), tool_limit_chars)
                    waste += image_count([block]) * tok.IMAGE_TOKENS * CHARS_PER_TOKEN
                elif kind == "tool_use":
                    tool_input = block.get("input") if isinstance(block.get("input"), dict) else {}
                    name = str(block.get("name", "tool"))
                    written = write_field(name, tool_input)
                    for key, value in tool_input.items():
                        if not isinstance(value, str):
                            continue
                        waste += oversized(len(value), tool_limit_chars)
                        if len(value) < dup_chars:
                            continue
                        if value in later_text:
                            self.duplicate_of[(i, j, key)] = later_text[value]
                            waste += len(value)
                        elif written and key == written[1] and written[0] in later_files:
                            self.superseded[(i, j, key)] = written[0]
                            waste += len(value)
                        else:
                            later_text[value] = f"the later {key} of {name} ({block.get('id')})"
                    if written:
                        later_files.add(written[0])
                elif kind == "text":
                    waste += oversized(len(str(block.get("text", ""))), text_limit_chars)
                elif kind in ("image", "document"):
                    waste += tok.IMAGE_TOKENS * CHARS_PER_TOKEN
                elif kind in ("thinking", "redacted_thinking"):
                    waste += len(str(block.get("thinking", block.get("data", ""))))
            self.waste_chars[i] = int(waste)

    def waste_bound_tokens(self, prefix: int) -> int:
        """At most how many tokens waste removal can save after the prefix (generous)."""
        chars = sum(self.waste_chars[prefix : self.tail_start])
        return int(chars * tok.family_factor(self.model) / 2)  # 2 characters per cl100k token: a safe upper bound

