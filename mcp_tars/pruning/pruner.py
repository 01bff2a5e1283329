"""Putting a pruned conversation together: which messages stay, where the
summary goes, and how auto pruning reaches a target.

Inside the target, what survives comes in this order: the system prompt and
the cached prefix (never touched), the final user turn (verbatim), the
facts of the dropped history (those the final turn asks about first), then
the most recent messages, as many as fit. A long older message yields to
facts, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import tokens as tok
from ..credentials import redact_credentials
from ..settings import LEVEL_NAMES, PruningSettings
from .facts import Fragment
from .values import values_in
from .history import History, own_words
from .meter import CHARS_PER_TOKEN, conversation_fingerprint
from .summary import MIN_SUMMARY_TOKENS, Summarizer, Summary, SummaryWriter
from .trim import Trimmer
from .validate import blocks, tool_use_ids, validate_conversation

STUB_TOKENS = 60  # what a message kept only to join the summary to the final turn shrinks to, when the room is gone
SUMMARY_BLOCK_OVERHEAD = 30  # tokens of the turn that carries the summary, besides its text
COVERED_SCAN_MAX_CHARS = 200_000


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
    target_tokens: int = 0
    target_met: bool = True
    # tokens of what the result is made of: system, protected_prefix, summary, recent_messages, final_turn
    breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


@dataclass
class Draft:
    messages: list[dict]
    tokens: int
    level: str
    summary: str | None
    removed: list[dict]
    notes: list[str]
    protected_prefix: int
    kept_from: int  # first input message kept after the prefix (the rest up to it was dropped)
    facts: Summary | None = None  # how the summary of dropped history came out
    past_target: bool = False  # the summary kept facts beyond what the target left room for
    final_turn_shortened: bool = False  # last resort for a giant final turn (see final_turn_max_tokens)


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


def copy_json(value: Any) -> Any:
    """Deep copy of JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


class Pruner:
    def __init__(self, messages: list[dict], system: Any, settings: PruningSettings, model: str | None, summarizer: Summarizer | None):
        self.h = History(messages, system, settings, model)
        self.trimmer = Trimmer(self.h)
        self.writer = SummaryWriter(self.h, summarizer)
        self.settings = settings
        self.messages = messages
        self.n = len(messages)

    # -- where the kept part can start

    def window_start(self, desired: int, prefix: int, extend: bool = True) -> int:
        """The nearest index at or before ``desired`` (never inside the tail)
        where the kept part can begin, given what the prefix ends with."""
        k = max(prefix, min(desired, self.h.tail_start))
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

    def summary_carrier_start(self, prefix: int, k: int) -> int:
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
        alternate); at the prefix itself nothing was dropped, and ``bridge``
        puts the summary of shortened content into a later user message or
        leaves it out."""
        before_role = self.messages[prefix - 1].get("role") if prefix > 0 else None
        while k > prefix:
            if self.messages[k].get("role") == "assistant" and before_role != "user":
                return k  # the bridge opens with a user message of its own
            first_user = next((i for i in range(k, self.n) if self.messages[i].get("role") == "user"), None)
            if first_user is None or not self.h.verbatim_turn(first_user):
                return k
            k = self.window_start(k - 1, prefix, extend=False)
        return k

    # -- one candidate

    def _natural_budget(self, level: str, replaced_tokens: float, target: int | None) -> int:
        """What a summary of ``replaced_tokens`` may use at ``level``, room permitting."""
        s = self.settings
        level_settings = s.levels.get(level)
        cap = level_settings.summary_max_tokens
        if target is not None:  # auto: a summary may use the room the target leaves
            cap = max(cap, int(s.auto_summary_target_share * target))
        return min(cap, max(level_settings.summary_min_tokens, int(replaced_tokens * level_settings.summary_max_share)))

    def assemble(self, prefix: int, k: int, level: str, target: int | None, limit: int | None = None,
                 shorten_final_turn: int | None = None, bridge_limit: int | None = None, fill: bool = False,
                 must_fit: bool = False) -> Draft:
        """Prefix untouched + bridge carrying the summary + trimmed messages k..n-1
        (the tail verbatim, unless ``shorten_final_turn`` gives a per-block limit
        for the final turn's tool results). ``k`` may move earlier so that the
        summary has a user message to join other than the final user turn and
        the current request (see ``summary_carrier_start``); ``bridge_limit``
        shortens every kept message before the tail harder (when the ones kept
        only to carry the summary would not fit otherwise).

        The summary gets its level's budget whatever the target (facts come
        before recent messages: a level whose recent messages leave no room
        for it does not fit). With ``fill`` (packing to a target), it gets the
        room the target leaves instead, and when that is too little for the
        facts it holds, it keeps them anyway up to ``facts_floor_tokens``."""
        k = self.summary_carrier_start(prefix, k)
        s = self.settings
        h = self.h
        messages = self.messages
        removed: list[dict] = []
        notes: list[str] = []
        cut: list[Fragment] = []
        kept: list[dict] = []
        for i in range(k, self.n):
            if i >= h.tail_start and not (shorten_final_turn and i == h.last_user):
                kept.append(messages[i])  # the final user turn (with the turn it answers): verbatim
                continue
            final = i >= h.tail_start
            message_limit = shorten_final_turn if final else (bridge_limit or limit)
            trimmed = self.trimmer.trim(i, message_limit, final_turn=final)
            kept.append(trimmed.message)
            removed.extend(trimmed.removed)
            cut.extend(trimmed.cut)
        prefix_tokens = h.meter.system_tokens + sum(h.meter.per_message[:prefix])
        out = list(messages[:prefix])
        summary_text: str | None = None
        facts: Summary | None = None
        past_target = False
        dropped = k - prefix
        if dropped > 0 or cut:
            replaced = sum(h.meter.per_message[prefix:k]) + sum(len(f.text) for f in cut) / CHARS_PER_TOKEN
            budget = self._natural_budget(level, replaced, target)
            kept_tokens = sum(self.trimmer.tokens_of(m, i) for i, m in zip(range(k, self.n), kept))
            if must_fit and prefix_tokens + kept_tokens > target:
                # over the target before any summary: this candidate cannot fit, skip writing one
                return Draft(out + kept, prefix_tokens + kept_tokens, level, None, removed, notes, prefix, k)
            room = budget
            if fill and target is not None:
                room = target - prefix_tokens - kept_tokens - SUMMARY_BLOCK_OVERHEAD - self._request_quote_tokens(prefix, k)
            covered = self._covered(prefix, k, kept)
            summarize = s.levels.get(level).summarize
            if dropped > 0 or min(budget, room) >= MIN_SUMMARY_TOKENS:
                facts = self.writer.write(prefix, k, cut, min(budget, max(room, 0)), covered, summarize)
                if fill and summarize and room < min(budget, s.facts_floor_tokens) and (facts.bare or facts.facts_kept < facts.facts_offered):
                    # The target leaves too little room for the facts: they come before
                    # the target (a request the model cannot answer saves nothing).
                    floor = self.writer.write(prefix, k, cut, min(budget, s.facts_floor_tokens), covered, summarize, strong_only=True)
                    if floor.facts_kept > facts.facts_kept:
                        facts, past_target = floor, True
                summary_text = facts.text
                notes.extend(facts.notes)
        if dropped > 0:
            removed.insert(0, {"action": "dropped", "first_index": prefix, "last_index": k - 1, "count": dropped, "tokens": sum(h.meter.per_message[prefix:k])})
            quote = self._request_quote(prefix, k)
            if quote:
                summary_text = quote + ("\n\n" + summary_text if summary_text else "")
                notes.append("the user's current request lies before the kept messages: kept verbatim with the summary")
        out.extend(self.bridge(prefix, k, kept, summary_text, removed, notes))
        index_of = {id(messages[i]): i for i in range(k, self.n)}
        tokens = prefix_tokens + sum(self.trimmer.tokens_of(m, index_of.get(id(m), -1)) for m in out[prefix:])
        return Draft(out, tokens, level, summary_text, removed, notes, prefix, k, facts, past_target)

    def _covered(self, prefix: int, k: int, kept: list[dict]) -> frozenset[str]:
        """Values the kept conversation already states: they need no room in the summary.
        (Huge texts are not scanned: that would cost more than the room it saves.)"""
        texts = [self.h.system_text] + [tok.content_text(m.get("content", "")) for m in kept]
        if prefix:
            texts.append("\n".join(tok.content_text(m.get("content", "")) for m in self.messages[:prefix]))
        quote = self._request_quote(prefix, k)
        if quote:
            texts.append(quote)
        return frozenset().union(*(values_in(t) for t in texts if len(t) < COVERED_SCAN_MAX_CHARS))

    def _request_quote(self, prefix: int, k: int) -> str | None:
        """The user's current request, quoted, when the tool loop under way answers it and it is dropped:
        the summary never stands in for it."""
        r = self.h.request_index
        if r is None or not prefix <= r < k:
            return None
        request, _ = redact_credentials(own_words(self.messages[r]).strip())
        cap = self.settings.request_keep_chars
        if len(request) > cap:
            request = request[: cap // 2] + f" [... {len(request) - cap:,} characters cut ...] " + request[-cap // 2 :]
        return f"[The user's current request, kept verbatim by context pruning:]\n{request}"

    def _request_quote_tokens(self, prefix: int, k: int) -> int:
        quote = self._request_quote(prefix, k)
        return tok.estimate_text_tokens(quote, self.h.model) if quote else 0

    def bridge(self, prefix: int, k: int, kept: list[dict], summary: str | None, removed: list[dict], notes: list[str]) -> list[dict]:
        """The kept messages, joined validly to the prefix, with the summary placed."""
        if summary is None:
            return kept
        summary_block = {"type": "text", "text": summary}
        before = self.messages[prefix - 1] if prefix > 0 else None
        if k == prefix or (before is not None and before.get("role") == "user"):
            # The kept part opens with an assistant (or nothing was dropped): the
            # summary joins the first kept user message, after its tool results,
            # unless that one must stay verbatim (only possible when nothing was
            # dropped, see summary_carrier_start: then a later one takes it).
            for idx, message in enumerate(kept):
                if message.get("role") == "user" and not self.h.verbatim_turn(k + idx):
                    kept = list(kept)
                    kept[idx] = _with_text_block(message, summary_block, after_tool_results=True)
                    return kept
            notes.append("no user message after the cached prefix can carry the summary (the current request and the "
                         "final user turn stay verbatim); it was left out")
            return kept
        out_blocks: list[dict] = []
        required = tool_use_ids(before) if before is not None and before.get("role") == "assistant" else []
        if required:
            answers = {b.get("tool_use_id"): b for b in blocks(self.messages[prefix].get("content")) if isinstance(b, dict) and b.get("type") == "tool_result"}
            for tool_id in required:
                original = answers.get(tool_id, {})
                block = {"type": "tool_result", "tool_use_id": tool_id, "content": "[Result removed by context pruning; see the summary that follows.]"}
                if original.get("is_error"):
                    block["is_error"] = True
                out_blocks.append(block)
        out_blocks.append(summary_block)
        first = kept[0]
        rest = kept[1:]
        if first.get("role") == "user":
            content = first.get("content")
            orphans = 0
            for block in blocks(content) if isinstance(content, list) else [{"type": "text", "text": content}]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    # Its tool_use was dropped: the result survives as plain text.
                    orphans += 1
                    name = self.h.tool_names.get(block.get("tool_use_id", ""), "tool")
                    inner = block.get("content", "")
                    text = tok.content_text(inner).strip() or "(empty)"
                    label = "error from" if block.get("is_error") else "result of"
                    out_blocks.append({"type": "text", "text": f"[{label} an earlier {name} call]\n{text}"})
                    out_blocks.extend(b for b in blocks(inner) if isinstance(b, dict) and b.get("type") in ("image", "document"))
                else:
                    out_blocks.append(block)
            if orphans:
                removed.append({"index": k, "action": "tool_results_inlined", "count": orphans, "reason": "their tool_use was dropped"})
            merged = {**first, "content": out_blocks}
            return [merged] + rest
        return [{"role": "user", "content": out_blocks}] + kept

    # -- strategies

    def attempt(self, level: str, prefix: int, target: int | None) -> Draft:
        keep = self.settings.levels.get(level).keep_last_messages
        return self.assemble(prefix, self.window_start(self.n - keep, prefix), level, target, must_fit=target is not None)

    def pack(self, prefix: int, target: int) -> Draft:
        """Past aggressive: the final user turn, then the facts of everything
        older, then as many recent messages as the target still holds (their
        oversized blocks shortened harder)."""
        s, h = self.settings, self.h
        limit = max(100, min(s.oversized_tool_result_tokens, target // 8))
        first = self.window_start(h.tail_start, prefix, extend=False)
        # Everything older than the tail dropped, the summary at its natural size:
        # what the facts need. The recent messages get what is left after that.
        facts_first = self.assemble(prefix, first, "aggressive", target, limit)
        k = facts_first.kept_from
        if facts_first.tokens <= target:
            room = target - facts_first.tokens
            used = 0
            candidate = k - 1
            while candidate > prefix:
                start = self.window_start(candidate, prefix, extend=False)
                if start >= k:
                    candidate -= 1
                    continue
                added = sum(self.trimmer.trim(i, limit).tokens for i in range(start, k))
                if used + added > room:
                    break
                used += added
                k, candidate = start, start - 1
        draft = self.assemble(prefix, k, "aggressive", target, limit, fill=True)
        for _ in range(12):
            if draft.tokens <= target:
                break
            later = [c for c in range(draft.kept_from + 1, h.tail_start + 1) if self.window_start(c, prefix, extend=False) == c]
            if not later:
                break
            nxt = self.assemble(prefix, later[0], "aggressive", target, limit, fill=True)
            if nxt.kept_from <= draft.kept_from:
                break  # the summary needs the message(s) before the final turn to reach it
            draft = nxt
        if draft.tokens > target and draft.kept_from < h.tail_start:
            # The messages kept only to carry the summary to the final turn yield to facts.
            stub = self.assemble(prefix, draft.kept_from, "aggressive", target, limit, bridge_limit=STUB_TOKENS, fill=True)
            if stub.tokens < draft.tokens:
                draft = stub
        draft = self._shorten_final_turn_if_giant(prefix, target, limit, draft)
        recent = h.tail_start - draft.kept_from
        dropped = draft.kept_from - prefix
        draft.notes.append(f"aggressive did not reach the target; packed it: the final user turn, the facts of the {dropped} older "
                           f"message{'s' if dropped != 1 else ''}, then the {recent} most recent message{'s' if recent != 1 else ''} that fit")
        return draft

    def _shorten_final_turn_if_giant(self, prefix: int, target: int, limit: int, draft: Draft) -> Draft:
        s, h = self.settings, self.h
        final_turn_tokens = h.meter.per_message[h.last_user]
        if not (draft.tokens > target and final_turn_tokens > s.final_turn_max_tokens
                and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks(self.messages[h.last_user].get("content")))):
            return draft
        # Last resort: a giant tool output would push the request past the
        # model's context window, and a request the API rejects helps nobody.
        room = target - (draft.tokens - final_turn_tokens)  # what the target leaves for the final turn
        shortened = self.assemble(prefix, draft.kept_from, "aggressive", target, limit,
                                  shorten_final_turn=max(limit, self.trimmer.final_turn_text_limit(room)), fill=True)
        shortened.notes.append(
            f"the final user turn alone is about {final_turn_tokens:,} tokens, above pruning.final_turn_max_tokens "
            f"({s.final_turn_max_tokens:,}): its tool results were shortened; everything else in it is verbatim")
        shortened.final_turn_shortened = True
        return shortened

    def run(self, level: str, prefix: int, target: int, budget_used_share: float | None, tokens_before: int) -> Draft:
        if level != "auto":
            draft = self.attempt(level, prefix, None)
            if draft.tokens > target:
                draft.notes.append(f"level {level} leaves ~{draft.tokens:,} tokens, above the target of {target:,}; level auto would go further")
            return draft
        start = choose_level(tokens_before, target, budget_used_share, self.settings)
        under_pressure = budget_used_share is not None and budget_used_share >= self.settings.budget_escalate_share
        if not under_pressure and tokens_before - self.h.waste_bound_tokens(prefix) <= target:
            # Before dropping anything, see whether removing waste is enough.
            draft = self.assemble(prefix, prefix, "light", target, must_fit=True)
            if draft.tokens <= target:
                draft.notes.append("waste removal alone reached the target; no message was dropped")
                return draft
        for name in LEVEL_NAMES[LEVEL_NAMES.index(start) :]:
            draft = self.attempt(name, prefix, target)
            if draft.tokens <= target:
                if name != start:
                    draft.notes.append(f"auto started at {start} and escalated to {name} to reach the target")
                return draft
        return self.pack(prefix, target)


def _with_text_block(message: dict, block: dict, after_tool_results: bool) -> dict:
    content = message.get("content")
    out = list(content) if isinstance(content, list) else [{"type": "text", "text": content}] if content else []
    at = 0
    if after_tool_results:
        while at < len(out) and isinstance(out[at], dict) and out[at].get("type") == "tool_result":
            at += 1
    out.insert(at, block)
    return {**message, "content": out}


# ---------------------------------------------------------------- the entry point


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
    keep it a valid Messages API conversation. See the package docstring.

    ``level``: auto | light | medium | aggressive. An explicit level applies
    that level's shape (last N messages + summary) whatever the target; auto
    picks a level by size and budget (``choose_level``), escalates until the
    target is met with the summary at its level's size, and past aggressive
    packs: final turn, facts, then recent messages.
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

    pruner = Pruner(messages, system, settings, model, summarizer)
    meter = pruner.h.meter
    before = meter.total()

    def unchanged(notes: list[str]) -> PruneResult:
        cached = min(protected_prefix, pruner.h.tail_start)
        breakdown = {"system": meter.system_tokens, "protected_prefix": sum(meter.per_message[:cached]), "summary": 0,
                     "recent_messages": sum(meter.per_message[cached: pruner.h.tail_start]), "final_turn": pruner.h.tail_tokens()}
        if before > max_tokens:
            notes = notes + [f"the target of {max_tokens:,} tokens is not reachable: {_fixed_parts(breakdown, max_tokens)}; "
                             f"the conversation is sent as it was ({before:,} tokens)"]
        return PruneResult(list(messages), before, before, 0.0, "none", None, [], protected_prefix, notes, len(messages),
                           meter.fingerprint, max_tokens, before <= max_tokens, breakdown)

    if before <= max_tokens:
        return unchanged([f"already within the target ({before:,} <= {max_tokens:,} tokens)"])
    input_problems = validate_conversation(messages)

    draft = pruner.run(level, protected_prefix, max_tokens, budget_used_share, before)
    if protected_prefix and settings.allow_cache_breakpoint_move:
        draft = _maybe_move_breakpoint(pruner, draft, level, max_tokens, budget_used_share, before)

    notes = list(draft.notes)
    if meter.estimated_messages:
        notes.append(f"tokens of the {meter.estimated_messages:,} oldest messages were estimated from a sample of their neighbours")
    if input_problems:
        notes.append(f"the input is not a valid conversation ({input_problems[0]}); validity of the output is not guaranteed")
    elif problems := validate_conversation(draft.messages):
        return unchanged(notes + [f"internal error: pruning produced an invalid conversation ({problems[0]}); returned the input unchanged"])
    if draft.tokens >= before:
        return unchanged(notes + ["pruning would not make the conversation smaller; returned it unchanged"])
    breakdown = _breakdown(pruner, draft)
    notes.extend(_honest_notes(pruner, draft, max_tokens, breakdown))
    reduction = round(100.0 * (before - draft.tokens) / before, 1)
    # Copies after the prefix, so a caller adding cache_control to the result cannot touch its input.
    output = draft.messages[: draft.protected_prefix] + [copy_json(m) for m in draft.messages[draft.protected_prefix :]]
    return PruneResult(output, before, draft.tokens, reduction, draft.level, draft.summary, draft.removed, draft.protected_prefix,
                       notes, len(messages), meter.fingerprint, max_tokens, draft.tokens <= max_tokens, breakdown)


def _breakdown(pruner: Pruner, draft: Draft) -> dict[str, int]:
    h = pruner.h
    prefix_tokens = sum(h.meter.per_message[: draft.protected_prefix])
    summary_tokens = tok.estimate_text_tokens(draft.summary, h.model) if draft.summary else 0
    final_turn = sum(pruner.trimmer.tokens_of(m, -1) for m in draft.messages[len(draft.messages) - (h.n - h.tail_start):]) \
        if draft.final_turn_shortened else h.tail_tokens()
    recent = max(0, draft.tokens - h.meter.system_tokens - prefix_tokens - summary_tokens - final_turn)
    return {"system": h.meter.system_tokens, "protected_prefix": prefix_tokens, "summary": summary_tokens,
            "recent_messages": recent, "final_turn": final_turn}


def _honest_notes(pruner: Pruner, draft: Draft, target: int, breakdown: dict[str, int]) -> list[str]:
    """What the result kept and left out, in words; and why, when the target is missed."""
    notes = []
    facts = draft.facts
    if facts is not None and facts.facts_offered:
        left = facts.facts_offered - facts.facts_kept
        notes.append(f"summary: {facts.facts_kept} of {facts.facts_offered} fact lines of the summarised history kept"
                     + (f", {left} left out (lowest value first; those the final user turn asks about come first)" if left else ""))
    if draft.tokens > target:
        why = _fixed_parts(breakdown, target)
        extra = ""
        if draft.past_target:
            extra = f"; the facts of the dropped history (~{breakdown['summary']:,} tokens) were kept anyway, since the next turn may need them"
        elif breakdown["summary"]:
            extra = f"; with the summary (~{breakdown['summary']:,}) and the turn that carries it the result is ~{draft.tokens:,}"
        notes.append(f"the target of {target:,} tokens is not reachable: {why}{extra}")
    return notes


def _fixed_parts(breakdown: dict[str, int], target: int) -> str:
    """What no pruning shrinks, in words: the system prompt, the cached prefix, the final user turn."""
    fixed = breakdown["system"] + breakdown["protected_prefix"] + breakdown["final_turn"]
    parts = f"the system prompt ({breakdown['system']:,})" + (
        f", the cached prefix ({breakdown['protected_prefix']:,})" if breakdown["protected_prefix"] else "") + (
        f" and the final user turn ({breakdown['final_turn']:,})")
    return f"{parts} alone take {fixed:,} tokens" if fixed > target else f"{parts} take {fixed:,} tokens"


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


def _maybe_move_breakpoint(pruner: Pruner, kept: Draft, level: str, target: int, budget_used_share: float | None, before: int) -> Draft:
    """Prune inside the cached prefix only when that is cheaper for this call
    even though the new prefix has to be written to the cache again."""
    s = pruner.settings
    meter = pruner.h.meter
    prefix = kept.protected_prefix
    cached = meter.system_tokens + sum(meter.per_message[:prefix])
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
