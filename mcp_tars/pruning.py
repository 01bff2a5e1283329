"""Context pruning that keeps conversations valid.

``prune_messages`` shrinks a Messages API conversation towards a token target
in three passes, each cheaper for the agent than the next:

1. Remove waste from the messages that stay: repeated tool outputs and file
   contents (the latest copy stays), older versions of a file that is shown
   again later, the middle of oversized tool results (head and tail stay,
   with a marker saying how much was cut), old images and old thinking
   blocks, credential values.
2. Drop the oldest messages after the cached prefix, keeping the last N
   messages of the chosen level (light 20, medium 10, aggressive 3).
3. Summarise what was dropped (or cut) into the first kept user turn: an
   extractive list of the facts an agent needs later (``summarize.py``), or
   an abstractive summary from a caller-supplied function.

The result always passes ``validate_conversation``: it starts with a user
message, roles alternate, every tool_result answers a tool_use of the
message just before it (pairs are kept or removed together), the thinking
blocks of the final tool loop stay untouched, the system prompt is never
dropped, and it is never larger than the input. The final user turn (the
current request, or the latest tool results with the assistant turn they
answer) is what the model answers now: it is kept verbatim, every block as it
was, and nothing is added to it. The summary joins an earlier user message,
never the final one nor the user's current request. The first
``protected_prefix`` messages (already in the prompt cache) are never
modified, unless pruning inside them is cheaper even after paying to write
the cache again; that choice is explained in ``notes``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable


from . import tokens as tok
from .credentials import redact_credentials
from .settings import LEVEL_NAMES, PruningSettings
from .summarize import Fragment, FragmentUnits, format_units, fragment_units, select_units, values_in

CHARS_PER_TOKEN = 3.6  # cl100k characters per token of mixed text; only to skip counting obvious cases
SUMMARY_CHARS_PER_CL100K_TOKEN = 3.2  # summaries are dense in numbers, paths and identifiers
# How much a fact is worth by where it was said, relative to tool output (1.0):
# what the user says is what the agent is asked to remember.
USER_WEIGHT = 4.0
ASSISTANT_WEIGHT = 2.5
TOOL_CALL_WEIGHT = 2.0  # the commands the agent ran (create-queue X, use-context Y)
READ_CALL_WEIGHT = 1.0  # which files it looked at matters less than what it changed
_READ_ONLY_TOOL = re.compile(r"(?i)read|view|cat|grep|glob|search|find|list|^ls$|fetch|get")
THINKING_WEIGHT = 1.0
SUPERSEDED_WEIGHT = 0.5
Summarizer = Callable[[list[dict]], str]


# ---------------------------------------------------------------- settings


# ---------------------------------------------------------------- results


@dataclass
class PruneResult:
    messages: list[dict]
    tokens_before: int
    tokens_after: int
    reduction_pct: float
    level: str  # none | light | medium | aggressive
    summary: str | None
    removed: list[dict]
    protected_prefix_messages: int
    notes: list[str] = field(default_factory=list)
    input_messages: int = 0  # how many messages the pruned input had
    input_fingerprint: str = ""  # conversation_fingerprint of that input (see extend_pruned)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "reduction_pct": self.reduction_pct,
            "level": self.level,
            "summary": self.summary,
            "removed": self.removed,
            "protected_prefix_messages": self.protected_prefix_messages,
            "notes": self.notes,
            "input_messages": self.input_messages,
            "input_fingerprint": self.input_fingerprint,
        }


# ---------------------------------------------------------------- validity


def _blocks(content: Any) -> list:
    return content if isinstance(content, list) else []


def _has_tool_result(message: dict) -> bool:
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in _blocks(message.get("content")))


def _tool_use_ids(message: dict) -> list[str]:
    return [b.get("id") for b in _blocks(message.get("content")) if isinstance(b, dict) and b.get("type") == "tool_use"]


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
        previous_ids = _tool_use_ids(messages[i - 1]) if i > 0 and isinstance(messages[i - 1], dict) else []
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
            ids = [t for t in _tool_use_ids(message) if t]
            nxt = messages[i + 1] if isinstance(messages[i + 1], dict) else {}
            results = {b.get("tool_use_id") for b in _blocks(nxt.get("content")) if isinstance(b, dict) and b.get("type") == "tool_result"}
            missing = [t for t in ids if t not in results]
            if missing:
                problems.append(f"{where}: tool_use {', '.join(missing)} not answered by a tool_result in the next message")
    if breakpoints > 4:
        problems.append(f"{breakpoints} cache_control breakpoints in messages; the API allows at most 4")
    return problems


# ---------------------------------------------------------------- levels


def choose_level(
    tokens: int,
    max_tokens: int,
    budget_used_share: float | None = None,
    settings: PruningSettings | None = None,
) -> str:
    """The level auto pruning starts from: by how far the context exceeds
    the target, escalated when the spending budget is nearly used up.
    ``"none"`` when the context already fits."""
    settings = settings or PruningSettings()
    if tokens <= max_tokens:
        return "none"
    ratio = tokens / max(1, max_tokens)
    index = 0 if ratio <= settings.light_max_ratio else 1 if ratio <= settings.medium_max_ratio else 2
    if budget_used_share is not None:
        if budget_used_share >= settings.budget_aggressive_share:
            index = 2
        elif budget_used_share >= settings.budget_escalate_share:
            index = min(2, index + 1)
    return LEVEL_NAMES[index]


# ---------------------------------------------------------------- helpers


def _copy(value: Any) -> Any:
    """Deep copy of JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _image_count(content: Any) -> int:
    count = 0
    for block in _blocks(content):
        if isinstance(block, dict):
            if block.get("type") in ("image", "document"):
                count += 1
            elif block.get("type") == "tool_result":
                count += _image_count(block.get("content"))
    return count


_PATH_KEYS = ("path", "file_path", "filepath", "file", "filename", "target_file", "absolute_path", "notebook_path")
_CONTENT_KEYS = ("content", "contents", "file_text", "text", "new_content", "data")
_RANGE_KEYS = ("offset", "limit", "view_range", "start_line", "end_line", "line_start", "line_end", "lines", "range", "head", "tail", "pattern", "query", "regex")


def _file_path(tool_input: dict) -> str | None:
    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().removeprefix("./")
    return None


def _read_path(name: str, tool_input: dict) -> str | None:
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


def _write_field(name: str, tool_input: dict) -> tuple[str, str] | None:
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


def _truncate_middle(text: str, head_chars: int, tail_chars: int, model: str | None, what: str) -> tuple[str, str]:
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


# ---------------------------------------------------------------- token meter


class _Meter:
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
        self.fingerprint = _fingerprint(messages, texts)
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
            + _image_count(m.get("content")) * tok.IMAGE_TOKENS
            + tok.MESSAGE_OVERHEAD_TOKENS
            for i, m in enumerate(messages)
        ]
        self.estimated_messages = len(messages) - len(counted)

    def count(self, message: dict) -> int:
        return tok.estimate_message_tokens(message, self.model)

    def total(self) -> int:
        return self.system_tokens + sum(self.per_message)


# ---------------------------------------------------------------- the pruner


@dataclass
class _Trimmed:
    message: dict
    tokens: int
    removed: list[dict]
    cut: list[Fragment]
    changed: bool


@dataclass
class _Draft:
    messages: list[dict]
    tokens: int
    level: str
    summary: str | None
    removed: list[dict]
    notes: list[str]
    protected_prefix: int
    kept_from: int  # first input message kept after the prefix (the rest up to it was dropped)


class _Pruner:
    def __init__(self, messages: list[dict], system: Any, settings: PruningSettings, model: str | None, summarizer: Summarizer | None):
        self.messages = messages
        self.n = len(messages)
        self.settings = settings
        self.model = model
        self.summarizer = summarizer
        self.meter = _Meter(messages, system, model, settings.exact_count_max_chars)
        self.last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=self.n - 1)
        self.tail_start = self._tail_start()
        self.request_index = self._request_index()
        self.tool_names: dict[str, str] = {}
        self.tool_inputs: dict[str, dict] = {}
        self.duplicate_of: dict[tuple, str] = {}  # (i, j[, key]) -> marker text
        self.superseded: dict[tuple, str] = {}
        self._analyse()
        self._trim_cache: dict[tuple, _Trimmed] = {}
        self._known_tokens: dict[int, tuple[dict, int]] = {}
        self.chars_per_token = SUMMARY_CHARS_PER_CL100K_TOKEN / tok.family_factor(model)
        self._units_cache: dict[int, list[FragmentUnits]] = {}
        self._summary_cache: dict[tuple, str] = {}

    # -- analysis, once per call

    def _tail_start(self) -> int:
        """First index of the part never dropped nor changed: the last user turn,
        with the assistant message its tool results answer."""
        last_user = self.last_user
        if last_user > 0 and _has_tool_result(self.messages[last_user]) and self.messages[last_user - 1].get("role") == "assistant":
            return last_user - 1
        return last_user

    def _request_index(self) -> int | None:
        """The user's current request: the last user message with words of its
        own (not only tool results). In an agent's tool loop it lies before the
        tail; if it is dropped, the model must still see it."""
        for i in range(self.n - 1, -1, -1):
            m = self.messages[i]
            if m.get("role") != "user":
                continue
            content = m.get("content")
            if (isinstance(content, str) and content.strip()) or any(
                    isinstance(b, dict) and b.get("type") == "text" and str(b.get("text", "")).strip()
                    for b in _blocks(content)):
                return i
        return None

    def _analyse(self) -> None:
        """Find repeated outputs and superseded file versions, walking backwards
        so that the *latest* copy of anything is the one that stays."""
        s = self.settings
        dup_chars = s.duplicate_min_tokens * CHARS_PER_TOKEN
        sup_chars = s.superseded_min_tokens * CHARS_PER_TOKEN
        for message in self.messages:
            if message.get("role") == "assistant":
                for b in _blocks(message.get("content")):
                    if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id"):
                        self.tool_names[b["id"]] = str(b.get("name", "tool"))
                        self.tool_inputs[b["id"]] = b.get("input") if isinstance(b.get("input"), dict) else {}
        # Characters each message could lose to waste removal at most: lets auto
        # skip a waste-only attempt that cannot reach the target.
        keep_chars = (s.head_tokens + s.tail_tokens) * CHARS_PER_TOKEN
        tool_limit_chars = s.oversized_tool_result_tokens * CHARS_PER_TOKEN / 2
        text_limit_chars = s.oversized_text_tokens * CHARS_PER_TOKEN / 2
        self.waste_chars = [0] * self.n

        def oversized(length: int, limit_chars: float) -> float:
            return max(0.0, length - keep_chars) if length > limit_chars else 0.0

        later_text: dict[str, str] = {}  # text -> description of the later copy
        later_files: set[str] = set()
        for i in range(self.n - 1, -1, -1):
            content = self.messages[i].get("content")
            waste = 0.0
            if isinstance(content, str):
                waste += oversized(len(content), text_limit_chars)
            for j in range(len(_blocks(content)) - 1, -1, -1):
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
                    path = _read_path(name, self.tool_inputs.get(tool_id, {}))
                    if path and not block.get("is_error") and (i, j) not in self.duplicate_of:
                        if path in later_files and len(text) >= sup_chars:
                            self.superseded[(i, j)] = path
                        later_files.add(path)
                    waste += len(text) if (i, j) in self.duplicate_of or (i, j) in self.superseded else oversized(len(text), tool_limit_chars)
                    waste += _image_count([block]) * tok.IMAGE_TOKENS * CHARS_PER_TOKEN
                elif kind == "tool_use":
                    tool_input = block.get("input") if isinstance(block.get("input"), dict) else {}
                    name = str(block.get("name", "tool"))
                    written = _write_field(name, tool_input)
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

    # -- trimming a kept message

    def _limits(self, limit: int | None) -> tuple[int, int, int, int]:
        """(tool limit, text limit, head, tail) in tokens; ``limit`` tightens them (fit mode)."""
        s = self.settings
        if limit is None:
            return s.oversized_tool_result_tokens, s.oversized_text_tokens, s.head_tokens, s.tail_tokens
        scale = min(1.0, limit / s.oversized_tool_result_tokens)
        return limit, limit, max(20, int(s.head_tokens * scale)), int(s.tail_tokens * scale)

    def _shorten(self, text: str, limit_tokens: int, head: int, tail: int, what: str, label: str, order: int, prose: bool, out: _Trimmed, where: dict,
                 redact: bool = True) -> str:
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
        new, cut = _truncate_middle(text, int(head * rate), int(tail * rate), self.model, what)
        out.removed.append({**where, "action": "truncated", "tokens_removed": tokens - tok.estimate_text_tokens(new, self.model)})
        out.cut.append(Fragment(cut, f"{label}, cut part", 1.0, order, prose))
        return new

    def _trim(self, i: int, limit: int | None = None, final_turn: bool = False) -> _Trimmed:
        """Message ``i`` with its waste removed (cached). The tail stays verbatim,
        except as a last resort (``final_turn``, see ``fit``): then only the
        tool results of the final user turn are shortened."""
        key = (i, limit, final_turn)
        if key in self._trim_cache:
            return self._trim_cache[key]
        message = self.messages[i]
        s = self.settings
        tool_limit, text_limit, head, tail = self._limits(limit)
        if final_turn and limit:
            # what the model works on now: keep as much as the room allows, its
            # start and its end (a log's errors are usually at the end)
            head, tail = limit // 2, limit * 2 // 5
        out = _Trimmed(message, 0, [], [], False)
        role = message.get("role")
        content = message.get("content")
        # the final turn keeps its images and its credentials (see keep_images_last_messages, redact_credentials)
        old_image = not final_turn and i < self.n - s.keep_images_last_messages
        base_order = i * 1000
        if isinstance(content, str):
            new_content: Any = content if final_turn else self._shorten(
                content, text_limit, head, tail, "message", role or "message", base_order, True, out, {"index": i})
        else:
            new_content = []
            for j, block in enumerate(_blocks(content)):
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
                elif kind in ("thinking", "redacted_thinking") and s.drop_old_thinking and i < self.tail_start:
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
        out.tokens = self.meter.count(out.message) if out.changed else self.meter.per_message[i]
        self._trim_cache[key] = out
        self._known_tokens[id(out.message)] = (out.message, out.tokens)
        return out

    def _trim_tool_use(self, i: int, j: int, block: dict, limit: int, head: int, tail: int, out: _Trimmed) -> dict:
        tool_input = block.get("input")
        if not isinstance(tool_input, dict):
            return block
        name = str(block.get("name", "tool"))
        new_input = {}
        for key, value in tool_input.items():
            where = {"index": i, "block": j, "field": key, "tool_use_id": block.get("id")}
            if isinstance(value, str):
                if (i, j, key) in self.duplicate_of:
                    out.removed.append({**where, "action": "deduplicated", "tokens_removed": tok.estimate_text_tokens(value, self.model)})
                    value = f"[Duplicate removed by context pruning: identical to {self.duplicate_of[(i, j, key)]}.]"
                elif (i, j, key) in self.superseded:
                    out.removed.append({**where, "action": "superseded", "path": self.superseded[(i, j, key)], "tokens_removed": tok.estimate_text_tokens(value, self.model)})
                    out.cut.append(Fragment(value, f"{name} {key}, older version", SUPERSEDED_WEIGHT, i * 1000 + j, False))
                    value = f"[Older version of {self.superseded[(i, j, key)]} removed by context pruning: a newer version appears later.]"
                else:
                    value = self._shorten(value, limit, head, tail, "tool input", f"{name} call", i * 1000 + j, False, out, where)
            new_input[key] = value
        return block if new_input == tool_input else {**block, "input": new_input}

    def _trim_tool_result(self, i: int, j: int, block: dict, limit: int, head: int, tail: int, old_image: bool, out: _Trimmed,
                          redact: bool = True) -> dict:
        tool_id = block.get("tool_use_id", "")
        name = self.tool_names.get(tool_id, "tool")
        where = {"index": i, "block": j, "tool_use_id": tool_id}
        content = block.get("content", "")
        if (i, j) in self.duplicate_of:
            out.removed.append({**where, "action": "deduplicated", "tokens_removed": tok.estimate_text_tokens(tok.content_text(content), self.model)})
            return {**block, "content": f"[Duplicate output removed by context pruning: identical to {self.duplicate_of[(i, j)]}.]"}
        if (i, j) in self.superseded:
            text = tok.content_text(content)
            out.removed.append({**where, "action": "superseded", "path": self.superseded[(i, j)], "tokens_removed": tok.estimate_text_tokens(text, self.model)})
            out.cut.append(Fragment(text, f"{name} result, older version", SUPERSEDED_WEIGHT, i * 1000 + j, False))
            return {**block, "content": f"[Older version of {self.superseded[(i, j)]} removed by context pruning: a newer version appears later.]"}
        if isinstance(content, str):
            new = self._shorten(content, limit, head, tail, "tool result", f"{name} result", i * 1000 + j, False, out, where,
                                redact)
            return block if new == content else {**block, "content": new}
        new_inner = []
        for inner in _blocks(content):
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

    # -- summary material

    def _fragments(self, i: int) -> list[Fragment]:
        """What message ``i`` offers to the summary if it is dropped. Copies of
        text that appears again later are skipped: the later copy speaks for them."""
        message = self.messages[i]
        role = message.get("role")
        content = message.get("content")
        weight = USER_WEIGHT if role == "user" else ASSISTANT_WEIGHT
        if isinstance(content, str):
            return [Fragment(content, str(role), weight, i * 1000, True)]
        out: list[Fragment] = []
        for j, block in enumerate(_blocks(content)):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            order = i * 1000 + j
            if kind == "text":
                out.append(Fragment(str(block.get("text", "")), str(role), weight, order, True))
            elif kind == "thinking":
                out.append(Fragment(str(block.get("thinking", "")), "assistant thinking", THINKING_WEIGHT, order, True))
            elif kind == "tool_use" and isinstance(block.get("input"), dict):
                name = str(block.get("name", "tool"))
                short, long = [], []
                for key, value in block["input"].items():
                    if (i, j, key) in self.duplicate_of or (i, j, key) in self.superseded:
                        continue
                    rendered = value if isinstance(value, str) else json.dumps(value)
                    (long if len(rendered) > 200 else short).append((key, rendered))
                if short:
                    call = f"{name}: " + (short[0][1] if len(short) == 1 else ", ".join(f"{k}: {v}" for k, v in short))
                    weight = READ_CALL_WEIGHT if _READ_ONLY_TOOL.search(name) else TOOL_CALL_WEIGHT
                    out.append(Fragment(call, f"{name} call", weight, order, False))
                for key, value in long:
                    out.append(Fragment(value, f"{name} {key}", 1.0, order, False))
            elif kind == "tool_result" and (i, j) not in self.duplicate_of and (i, j) not in self.superseded:
                name = self.tool_names.get(block.get("tool_use_id", ""), "tool")
                text = tok.content_text(block.get("content", ""))
                out.append(Fragment(text, f"{name} result", 1.2 if block.get("is_error") else 1.0, order, False))
        return out

    def _units(self, i: int) -> list[FragmentUnits]:
        if i not in self._units_cache:
            self._units_cache[i] = [fragment_units(f) for f in self._fragments(i)]
        return self._units_cache[i]

    def _summary(self, lo: int, hi: int, cut: list[Fragment], budget: int, covered_text: str, level: str) -> tuple[str, list[str]]:
        """Summary of messages[lo:hi] plus cut fragments, at most ``budget`` tokens."""
        count = hi - lo
        notes: list[str] = []
        if count:
            dropped_tokens = sum(self.meter.per_message[lo:hi])
            header = f"[Summary of {count} earlier message{'s' if count != 1 else ''} (~{dropped_tokens:,} tokens) removed by context pruning"
        else:
            header = "[Context pruning shortened some earlier content"
        bare = header + ".]"
        if not self.settings.levels.get(level).summarize or budget < 40:
            return bare, notes
        cache_key = (lo, hi, len(cut), budget, covered_text)
        if cache_key in self._summary_cache:
            return self._summary_cache[cache_key], notes
        covered = values_in(covered_text)
        budget_chars = budget * self.chars_per_token - len(header) - 40
        body: list[str] = []
        if self.summarizer is not None and count:
            try:
                abstract = self.summarizer(_redacted_copy(self.messages[lo:hi]))
                abstract, _ = redact_credentials(str(abstract).strip())
                limit = int(budget_chars * 0.7)
                if len(abstract) > limit:
                    abstract = abstract[:limit].rsplit(" ", 1)[0] + " …"
                if abstract:
                    body.append(abstract)
                    budget_chars -= len(abstract) + 1
                    covered |= values_in(abstract)
                    notes.append("summary: abstractive, completed with extracted facts")
            except Exception as error:  # the engine's summarizer may fail (API down, budget): fall back offline
                notes.append(f"abstractive summary failed ({type(error).__name__}: {error}); used the extractive summary")
        units = []
        credential_names: list[str] = []
        for part in [fu for i in range(lo, hi) for fu in self._units(i)] + [fragment_units(f) for f in cut]:
            units.extend(part.units)
            credential_names.extend(n for n in part.credential_names if n not in credential_names)
        credentials = ""
        if credential_names:
            credentials = "Credentials mentioned (values withheld): " + ", ".join(credential_names[:20])
            budget_chars -= len(credentials) + 1
        def render(chosen: list) -> str:
            lines = body + format_units(chosen) + ([credentials] if credentials else [])
            return header + "; facts kept from them, oldest first:\n" + "\n".join(lines) + "\n]" if lines else bare

        # Characters per token vary with the text: select, count exactly, and
        # rescale the character budget (down when over, up when well under).
        text = render([])
        if tok.estimate_text_tokens(text, self.model) > budget:
            text = bare
        chosen_count = -1
        for _ in range(4):
            chosen = select_units(units, max(0.0, budget_chars), covered)
            candidate = render(chosen)
            tokens = tok.estimate_text_tokens(candidate, self.model)
            if tokens <= budget:
                text = candidate
                if tokens >= 0.9 * budget or len(chosen) == chosen_count:
                    break  # full, or more room would not add anything
                chosen_count = len(chosen)
            budget_chars *= min(2.0, 0.95 * budget / max(1, tokens))
        self._summary_cache[cache_key] = text
        return text, notes

    # -- assembling one candidate

    def window_start(self, desired: int, prefix: int, extend: bool = True) -> int:
        """The nearest index at or before ``desired`` (never inside the tail)
        where the kept part can begin, given what the prefix ends with."""
        k = max(prefix, min(desired, self.tail_start))
        if k <= prefix:
            return prefix
        role = self.messages[k].get("role")
        before_role = self.messages[prefix - 1].get("role") if prefix > 0 else None
        if before_role == "user":
            # The kept part must open with an assistant message after the prefix's user turn.
            return k - 1 if role == "user" else k
        if role == "assistant" and extend:
            # Prefer opening on the user message before: no synthetic bridge needed.
            return k - 1 if k - 1 > prefix or self.messages[k - 1].get("role") == "user" else k
        return k

    def _verbatim_turn(self, i: int) -> bool:
        """Whether the summary must not join user message ``i``: the final user
        turn (the model answers it now; pruning never changes it) and the
        user's current request (what the tool loop under way works on), so
        that both read exactly as the user sent them, not mixed with pruning's
        own text."""
        return i == self.last_user or i == self.request_index

    def _summary_carrier_start(self, prefix: int, k: int) -> int:
        """``k``, or the nearest earlier start whose kept part gives the summary
        a user message to join that is not a verbatim turn.

        The bridge puts the summary into the first kept user message (or into
        a user message of its own when the kept part opens on an assistant
        message after an assistant or nothing). When that first user message
        is the final user turn or the current request, the summary (and the
        tool results that answer the prefix's last tool calls) would be mixed
        into what the user said: keep one more exchange instead, so that the
        summary also stays in chronological order before the kept messages. A
        start after the prefix can always move back (the messages between
        alternate); at the prefix itself nothing was dropped, and ``_bridge``
        puts the summary of shortened content into a later user message or
        leaves it out."""
        before_role = self.messages[prefix - 1].get("role") if prefix > 0 else None
        while k > prefix:
            if self.messages[k].get("role") == "assistant" and before_role != "user":
                return k  # the bridge opens with a user message of its own
            first_user = next((i for i in range(k, self.n) if self.messages[i].get("role") == "user"), None)
            if first_user is None or not self._verbatim_turn(first_user):
                return k
            k = self.window_start(k - 1, prefix, extend=False)
        return k

    def assemble(self, prefix: int, k: int, level: str, target: int | None, limit: int | None = None,
                 shorten_final_turn: int | None = None) -> _Draft:
        """Prefix untouched + bridge carrying the summary + trimmed messages k..n-1
        (the tail verbatim, unless ``shorten_final_turn`` gives a per-block limit
        for the final turn's tool results: see ``fit``). ``k``
        may move earlier so that the summary has a user message to join other
        than the final user turn and the current request (see
        ``_summary_carrier_start``)."""
        k = self._summary_carrier_start(prefix, k)
        s = self.settings
        messages = self.messages
        removed: list[dict] = []
        notes: list[str] = []
        cut: list[Fragment] = []
        kept: list[dict] = []
        for i in range(k, self.n):
            if i >= self.tail_start and not (shorten_final_turn and i == self.last_user):
                kept.append(messages[i])  # the final user turn (with the turn it answers): verbatim
                continue
            final = i >= self.tail_start
            trimmed = self._trim(i, shorten_final_turn if final else limit, final_turn=final)
            kept.append(trimmed.message)
            removed.extend(trimmed.removed)
            cut.extend(trimmed.cut)
        prefix_tokens = self.meter.system_tokens + sum(self.meter.per_message[:prefix])
        out = list(messages[:prefix])
        summary_text: str | None = None
        dropped = k - prefix
        if dropped > 0 or cut:
            level_settings = s.levels.get(level)
            replaced = sum(self.meter.per_message[prefix:k]) + sum(len(f.text) for f in cut) / CHARS_PER_TOKEN
            cap = level_settings.summary_max_tokens
            if target is not None:  # auto: a summary may use the room the target leaves
                cap = max(cap, int(s.auto_summary_target_share * target))
            budget = min(cap, max(level_settings.summary_min_tokens, int(replaced * level_settings.summary_max_share)))
            kept_tokens = sum(self._tokens_of(m, i) for i, m in zip(range(k, self.n), kept))
            if target is not None:
                budget = min(budget, target - prefix_tokens - kept_tokens - 30)
            # Values the kept conversation already states need no room in the summary.
            covered_text = "\n".join(tok.content_text(m.get("content", "")) for m in kept)
            if prefix:
                prefix_text = "\n".join(tok.content_text(m.get("content", "")) for m in messages[:prefix])
                if len(prefix_text) < 200_000:  # scanning a huge cached prefix would cost more than it saves
                    covered_text += "\n" + prefix_text
            if dropped > 0 or budget >= 40:
                summary_text, summary_notes = self._summary(prefix, k, cut, budget, covered_text, level)
                notes.extend(summary_notes)
        if dropped > 0:
            removed.insert(0, {"action": "dropped", "first_index": prefix, "last_index": k - 1, "count": dropped, "tokens": sum(self.meter.per_message[prefix:k])})
            r = self.request_index
            if r is not None and prefix <= r < k:
                # the tool loop under way answers this request: never let the summary stand in for it
                request, _ = redact_credentials(tok.content_text(messages[r].get("content", "")).strip())
                cap = s.request_keep_chars
                if len(request) > cap:
                    request = request[: cap // 2] + f" [... {len(request) - cap:,} characters cut ...] " + request[-cap // 2 :]
                kept_request = f"[The user's current request, kept verbatim by context pruning:]\n{request}"
                summary_text = kept_request + ("\n\n" + summary_text if summary_text else "")
                notes.append("the user's current request lies before the kept messages: kept verbatim with the summary")
        out.extend(self._bridge(prefix, k, kept, summary_text, removed, notes))
        index_of = {id(messages[i]): i for i in range(k, self.n)}
        tokens = prefix_tokens + sum(self._tokens_of(m, index_of.get(id(m), -1)) for m in out[prefix:])
        return _Draft(out, tokens, level, summary_text, removed, notes, prefix, k)

    def _tokens_of(self, message: dict, i: int) -> int:
        """Tokens of ``message``; free when it is input message ``i`` or a trimmed copy already counted."""
        if 0 <= i < self.n and message is self.messages[i]:
            return self.meter.per_message[i]
        known = self._known_tokens.get(id(message))
        if known is not None and known[0] is message:
            return known[1]
        return self.meter.count(message)

    def _bridge(self, prefix: int, k: int, kept: list[dict], summary: str | None, removed: list[dict], notes: list[str]) -> list[dict]:
        """The kept messages, joined validly to the prefix, with the summary placed."""
        if summary is None:
            return kept
        summary_block = {"type": "text", "text": summary}
        before = self.messages[prefix - 1] if prefix > 0 else None
        if k == prefix or (before is not None and before.get("role") == "user"):
            # The kept part opens with an assistant (or nothing was dropped): the
            # summary joins the first kept user message, after its tool results,
            # unless that one must stay verbatim (only possible when nothing was
            # dropped, see _summary_carrier_start: then a later one takes it).
            for idx, message in enumerate(kept):
                if message.get("role") == "user" and not self._verbatim_turn(k + idx):
                    kept = list(kept)
                    kept[idx] = _with_text_block(message, summary_block, after_tool_results=True)
                    return kept
            notes.append("no user message after the cached prefix can carry the summary (the current request and the "
                         "final user turn stay verbatim); it was left out")
            return kept
        blocks: list[dict] = []
        required = _tool_use_ids(before) if before is not None and before.get("role") == "assistant" else []
        if required:
            answers = {b.get("tool_use_id"): b for b in _blocks(self.messages[prefix].get("content")) if isinstance(b, dict) and b.get("type") == "tool_result"}
            for tool_id in required:
                original = answers.get(tool_id, {})
                block = {"type": "tool_result", "tool_use_id": tool_id, "content": "[Result removed by context pruning; see the summary that follows.]"}
                if original.get("is_error"):
                    block["is_error"] = True
                blocks.append(block)
        blocks.append(summary_block)
        first = kept[0]
        rest = kept[1:]
        if first.get("role") == "user":
            content = first.get("content")
            orphans = 0
            for block in _blocks(content) if isinstance(content, list) else [{"type": "text", "text": content}]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    # Its tool_use was dropped: the result survives as plain text.
                    orphans += 1
                    name = self.tool_names.get(block.get("tool_use_id", ""), "tool")
                    inner = block.get("content", "")
                    text = tok.content_text(inner).strip() or "(empty)"
                    label = "error from" if block.get("is_error") else "result of"
                    blocks.append({"type": "text", "text": f"[{label} an earlier {name} call]\n{text}"})
                    blocks.extend(b for b in _blocks(inner) if isinstance(b, dict) and b.get("type") in ("image", "document"))
                else:
                    blocks.append(block)
            if orphans:
                removed.append({"index": k, "action": "tool_results_inlined", "count": orphans, "reason": "their tool_use was dropped"})
            merged = {**first, "content": blocks}
            return [merged] + rest
        return [{"role": "user", "content": blocks}] + kept

    # -- strategies

    def attempt(self, level: str, prefix: int, target: int | None) -> _Draft:
        keep = self.settings.levels.get(level).keep_last_messages
        return self.assemble(prefix, self.window_start(self.n - keep, prefix), level, target)

    def fit(self, prefix: int, target: int) -> _Draft:
        """Past aggressive: keep as many recent messages as the target allows
        (at least the last user turn, verbatim), shorten oversized blocks of the
        older ones harder, and give the summary what is left."""
        s = self.settings
        limit = max(100, min(s.oversized_tool_result_tokens, target // 8))
        reserve = min(s.levels.aggressive.summary_max_tokens, target // 4)
        k = self.window_start(self.tail_start, prefix, extend=False)
        used = self.meter.system_tokens + sum(self.meter.per_message[:prefix])
        used += sum(self._trim(i, limit).tokens if i < self.tail_start else self.meter.per_message[i] for i in range(k, self.n))
        candidate = k - 1
        while candidate > prefix:
            start = self.window_start(candidate, prefix, extend=False)
            if start >= k:
                candidate -= 1
                continue
            added = sum(self._trim(i, limit).tokens for i in range(start, k))
            if used + added + reserve > target:
                break
            used += added
            k, candidate = start, start - 1
        draft = self.assemble(prefix, k, "aggressive", target, limit)
        for _ in range(12):
            if draft.tokens <= target:
                break
            later = [c for c in range(k + 1, self.tail_start + 1) if self.window_start(c, prefix, extend=False) == c]
            if not later:
                break  # the final user turn is never shortened: the model answers it now
            k = later[0]
            draft = self.assemble(prefix, k, "aggressive", target, limit)
        final_turn_tokens = self.meter.per_message[self.last_user]
        shortened_final_turn = False
        if (draft.tokens > target and final_turn_tokens > s.final_turn_max_tokens
                and _has_tool_result(self.messages[self.last_user])):
            # Last resort: a giant tool output would push the request past the
            # model's context window, and a request the API rejects helps nobody.
            room = target - (draft.tokens - final_turn_tokens)  # what the target leaves for the final turn
            draft = self.assemble(prefix, k, "aggressive", target, limit,
                                  shorten_final_turn=max(limit, self._final_turn_text_limit(room)))
            shortened_final_turn = True
            draft.notes.append(
                f"the final user turn alone is about {final_turn_tokens:,} tokens, above pruning.final_turn_max_tokens "
                f"({s.final_turn_max_tokens:,}): its tool results were shortened; everything else in it is verbatim")
        draft.notes.append(f"aggressive did not reach the target; kept the {self.n - draft.kept_from} most recent messages that fit")
        if draft.tokens > target:
            final_turn = "with its tool results shortened as far as they go" if shortened_final_turn else "kept verbatim"
            draft.notes.append(
                f"the target of {target:,} tokens is not reachable: the final user turn ({final_turn}), the system prompt, "
                f"the cached prefix and the summary with the turn that carries it need about {draft.tokens:,}"
            )
        return draft

    def _final_turn_text_limit(self, room: int) -> int:
        """The per-text token limit that fits the final user turn into ``room``:
        its tool results' texts above it are cut to it, the smaller ones stay
        whole, and the room they leave goes to the large ones (an even split
        would waste it). The user's words, images and the rest are fixed."""
        message = self.messages[self.last_user]
        sizes: list[int] = []  # tokens of each text a final-turn shortening may cut
        fixed_content = []  # the turn without those texts: what no limit changes
        for j, block in enumerate(_blocks(message.get("content"))):
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                fixed_content.append(block)
            elif (self.last_user, j) in self.duplicate_of or (self.last_user, j) in self.superseded:
                # replaced by a one-line marker whatever the limit: about this long
                fixed_content.append({**block, "content": "[Duplicate output removed by context pruning: identical to ...]"})
            elif isinstance(block.get("content", ""), str):
                sizes.append(tok.estimate_text_tokens(block.get("content", ""), self.model))
                fixed_content.append({**block, "content": ""})
            else:
                inner = _blocks(block.get("content"))
                is_text = [isinstance(b, dict) and b.get("type") == "text" for b in inner]
                sizes.extend(tok.estimate_text_tokens(str(b.get("text", "")), self.model) for b, t in zip(inner, is_text) if t)
                fixed_content.append({**block, "content": [b for b, t in zip(inner, is_text) if not t]})  # images stay
        left = room - self.meter.count({**message, "content": fixed_content})
        sizes.sort()
        for index, size in enumerate(sizes):
            share = left / (len(sizes) - index)
            if size > share:
                return max(0, int(share))  # this text and every larger one are cut to the share
            left -= size
        return max(0, int(left))

    def run(self, level: str, prefix: int, target: int, budget_used_share: float | None, tokens_before: int) -> _Draft:
        if level != "auto":
            draft = self.attempt(level, prefix, None)
            if draft.tokens > target:
                draft.notes.append(f"level {level} leaves ~{draft.tokens:,} tokens, above the target of {target:,}; level auto would go further")
            return draft
        start = choose_level(tokens_before, target, budget_used_share, self.settings)
        under_pressure = budget_used_share is not None and budget_used_share >= self.settings.budget_escalate_share
        if not under_pressure and tokens_before - self.waste_bound_tokens(prefix) <= target:
            # Before dropping anything, see whether removing waste is enough.
            draft = self.assemble(prefix, prefix, "light", target)
            if draft.tokens <= target:
                draft.notes.append("waste removal alone reached the target; no message was dropped")
                return draft
        for name in LEVEL_NAMES[LEVEL_NAMES.index(start) :]:
            draft = self.attempt(name, prefix, target)
            if draft.tokens <= target:
                if name != start:
                    draft.notes.append(f"auto started at {start} and escalated to {name} to reach the target")
                return draft
        return self.fit(prefix, target)


def prune_messages(
    messages: list[dict],
    *,
    system: Any = None,
    max_tokens: int = 4000,
    level: str = "auto",
    settings: PruningSettings | None = None,
    model: str | None = None,
    protected_prefix: int = 0,
    budget_used_share: float | None = None,
    summarizer: Summarizer | None = None,
) -> PruneResult:
    """Shrink ``messages`` towards ``max_tokens`` (system prompt included) and
    keep it a valid Messages API conversation. See the module docstring.

    ``level``: auto | light | medium | aggressive. An explicit level applies
    that level's shape (last N messages + summary) whatever the target; auto
    picks a level by size and budget (``choose_level``), escalates until the
    target is met, and past aggressive keeps only what fits.
    ``protected_prefix``: leading messages already in the prompt cache.
    ``summarizer``: optional abstractive summary of the dropped messages
    (credential values are removed before it sees them); extractive otherwise.
    The input is never modified. Messages of the protected prefix (and of an
    unchanged result) are the input's own objects; everything else is a copy.
    """
    settings = settings or PruningSettings()
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    if level != "auto" and level not in LEVEL_NAMES:
        raise ValueError(f"level must be one of auto, {', '.join(LEVEL_NAMES)}; got {level!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not 0 <= protected_prefix <= len(messages):
        raise ValueError(f"protected_prefix must be between 0 and the number of messages ({len(messages)}), got {protected_prefix}")
    if budget_used_share is not None and budget_used_share < 0:
        raise ValueError("budget_used_share must be a share of the budget (0 or more)")

    pruner = _Pruner(messages, system, settings, model, summarizer)
    before = pruner.meter.total()

    def unchanged(notes: list[str]) -> PruneResult:
        return PruneResult(list(messages), before, before, 0.0, "none", None, [], protected_prefix, notes, len(messages), pruner.meter.fingerprint)

    if before <= max_tokens:
        return unchanged([f"already within the target ({before:,} <= {max_tokens:,} tokens)"])
    input_problems = validate_conversation(messages)

    draft = pruner.run(level, protected_prefix, max_tokens, budget_used_share, before)
    if protected_prefix and settings.allow_cache_breakpoint_move:
        draft = _maybe_move_breakpoint(pruner, draft, level, max_tokens, budget_used_share, before)

    notes = list(draft.notes)
    if pruner.meter.estimated_messages:
        notes.append(f"tokens of the {pruner.meter.estimated_messages:,} oldest messages were estimated from a sample of their neighbours")
    if input_problems:
        notes.append(f"the input is not a valid conversation ({input_problems[0]}); validity of the output is not guaranteed")
    elif problems := validate_conversation(draft.messages):
        return unchanged(notes + [f"internal error: pruning produced an invalid conversation ({problems[0]}); returned the input unchanged"])
    if draft.tokens >= before:
        return unchanged(notes + ["pruning would not make the conversation smaller; returned it unchanged"])
    reduction = round(100.0 * (before - draft.tokens) / before, 1)
    # Copies after the prefix, so a caller adding cache_control to the result cannot touch its input.
    output = draft.messages[: draft.protected_prefix] + [_copy(m) for m in draft.messages[draft.protected_prefix :]]
    return PruneResult(output, before, draft.tokens, reduction, draft.level, draft.summary, draft.removed, draft.protected_prefix, notes, len(messages), pruner.meter.fingerprint)


def conversation_fingerprint(messages: list[dict]) -> str:
    """A digest of the roles and text of ``messages`` (what ``extend_pruned`` compares)."""
    return _fingerprint(messages, [tok.content_text(m.get("content", "")) for m in messages])


def _fingerprint(messages: list[dict], texts: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for message, text in zip(messages, texts):
        digest.update(f"{message.get('role')}\x00{len(text)}\x00".encode())
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def extend_pruned(previous: PruneResult, messages: list[dict]) -> list[dict] | None:
    """The previous pruned conversation followed by what was added since, when
    ``messages`` continues the conversation ``previous`` pruned; else None.

    An agent resends its whole history every turn. Pruning it afresh each turn
    moves the cut and rewrites the summary, so the prompt cache never hits.
    Reusing the previous result keeps the pruned prefix byte-stable: send the
    extension while it stays under the threshold, and when it outgrows it,
    prune the *extension* with ``protected_prefix=len(previous.messages)``.
    The extension is valid whenever the previous result was: the new messages
    continue from the same last user turn.
    """
    n = previous.input_messages
    if previous.level == "none" or n == 0 or len(messages) <= n:
        return None
    if conversation_fingerprint(messages[:n]) != previous.input_fingerprint:
        return None
    return list(previous.messages) + messages[n:]


def _maybe_move_breakpoint(pruner: _Pruner, kept: _Draft, level: str, target: int, budget_used_share: float | None, before: int) -> _Draft:
    """Prune inside the cached prefix only when that is cheaper for this call
    even though the new prefix has to be written to the cache again."""
    s = pruner.settings
    prefix = kept.protected_prefix
    cached = pruner.meter.system_tokens + sum(pruner.meter.per_message[:prefix])
    cost_keep = s.cache_read_price_ratio * cached + (kept.tokens - cached)
    moved = pruner.run(level, 0, target, budget_used_share, before)
    cost_move = s.cache_write_price_ratio * moved.tokens
    if cost_move < cost_keep:
        moved.notes.append(
            f"moved the cache breakpoint: pruning inside the cached prefix of {prefix} messages costs ~{cost_move:,.0f} "
            f"input-token equivalents (all re-written to the cache) against ~{cost_keep:,.0f} when keeping it "
            f"({cached:,} cached tokens read + {kept.tokens - cached:,} uncached)"
        )
        return moved
    kept.notes.append(
        f"kept the cached prefix of {prefix} messages: ~{cost_keep:,.0f} input-token equivalents against ~{cost_move:,.0f} if it were pruned and re-cached"
    )
    return kept


def _with_text_block(message: dict, block: dict, after_tool_results: bool) -> dict:
    content = message.get("content")
    blocks = list(content) if isinstance(content, list) else [{"type": "text", "text": content}] if content else []
    at = 0
    if after_tool_results:
        while at < len(blocks) and isinstance(blocks[at], dict) and blocks[at].get("type") == "tool_result":
            at += 1
    blocks.insert(at, block)
    return {**message, "content": blocks}


def _redacted_copy(messages: list[dict]) -> list[dict]:
    """Messages for an abstractive summarizer: credential values never leave."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact_credentials(value)[0]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in ("signature", "data")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return [clean(m) for m in messages]
