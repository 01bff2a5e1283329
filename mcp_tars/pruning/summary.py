"""The summary that stands in for dropped history.

Extractive by default (``facts.py``: the facts of the dropped messages and of
what was cut from kept ones, the ones the current question refers to
first); abstractive when the caller passes a summarizer (credential values
are removed before it sees anything), completed with extracted facts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import tokens as tok
from ..credentials import redact_credentials
from .facts import Fragment, FragmentUnits, format_units, fragment_units, select_units
from .question import Question
from .values import values_in
from .history import History
from .validate import blocks

Summarizer = Callable[[list[dict]], str]
SUMMARY_CHARS_PER_CL100K_TOKEN = 3.2  # summaries are dense in numbers, paths and identifiers
# How much a fact is worth by where it was said, relative to tool output (1.0):
# what the user says is what the agent is asked to remember.
USER_WEIGHT = 4.0
ASSISTANT_WEIGHT = 2.5
TOOL_CALL_WEIGHT = 2.0  # the commands the agent ran (create-queue X, use-context Y)
READ_CALL_WEIGHT = 1.0  # which files it looked at matters less than what it changed
THINKING_WEIGHT = 1.0
SUPERSEDED_WEIGHT = 0.5  # an older version of a file shown again later
_READ_ONLY_TOOL = re.compile(r"(?i)read|view|cat|grep|glob|search|find|list|^ls$|fetch|get")
MIN_SUMMARY_TOKENS = 40  # below this, a summary is only its header


@dataclass
class Summary:
    text: str
    notes: list[str] = field(default_factory=list)
    facts_offered: int = 0  # units of the summarised history that state a fact (not yet in the kept conversation)
    facts_kept: int = 0  # of those, how many the summary holds
    bare: bool = True  # only the header: no fact made it


class SummaryWriter:
    def __init__(self, history: History, summarizer: Summarizer | None):
        self.h = history
        self.summarizer = summarizer
        self.question = Question(history.question_text())
        self.chars_per_token = SUMMARY_CHARS_PER_CL100K_TOKEN / tok.family_factor(history.model)
        self._units_cache: dict[int, list[FragmentUnits]] = {}
        self._cache: dict[tuple, Summary] = {}
        self._abstracts: dict[tuple[int, int], str] = {}

    # -- material

    def fragments(self, i: int) -> list[Fragment]:
        """What message ``i`` offers to the summary if it is dropped. Copies of
        text that appears again later are skipped: the later copy speaks for them."""
        h = self.h
        message = h.messages[i]
        role = message.get("role")
        content = message.get("content")
        weight = USER_WEIGHT if role == "user" else ASSISTANT_WEIGHT
        if isinstance(content, str):
            return [Fragment(content, str(role), weight, i * 1000, True)]
        out: list[Fragment] = []
        # what the message says in words: the context of the commands it runs
        words = ""
        if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks(content)):
            words = " ".join(str(b.get("text", ""))[:300] for b in blocks(content) if isinstance(b, dict) and b.get("type") == "text")
        for j, block in enumerate(blocks(content)):
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
                    if (i, j, key) in h.duplicate_of or (i, j, key) in h.superseded:
                        continue
                    rendered = value if isinstance(value, str) else json.dumps(value)
                    (long if len(rendered) > 200 else short).append((key, rendered))
                if short:
                    call = f"{name}: " + (short[0][1] if len(short) == 1 else ", ".join(f"{k}: {v}" for k, v in short))
                    call_weight = READ_CALL_WEIGHT if _READ_ONLY_TOOL.search(name) else TOOL_CALL_WEIGHT
                    out.append(Fragment(call, f"{name} call", call_weight, order, False, words))
                for key, value in long:
                    out.append(Fragment(value, f"{name} {key}", 1.0, order, False))
            elif kind == "tool_result" and (i, j) not in h.duplicate_of and (i, j) not in h.superseded:
                name = h.tool_names.get(block.get("tool_use_id", ""), "tool")
                text = tok.content_text(block.get("content", ""))
                out.append(Fragment(text, f"{name} result", 1.2 if block.get("is_error") else 1.0, order, False))
        return out

    def _units(self, i: int) -> list[FragmentUnits]:
        if i not in self._units_cache:
            self._units_cache[i] = [fragment_units(f) for f in self.fragments(i)]
        return self._units_cache[i]

    # -- writing

    def header(self, lo: int, hi: int) -> str:
        count = hi - lo
        if count:
            dropped_tokens = sum(self.h.meter.per_message[lo:hi])
            return f"[Summary of {count} earlier message{'s' if count != 1 else ''} (~{dropped_tokens:,} tokens) removed by context pruning"
        return "[Context pruning shortened some earlier content"

    def write(self, lo: int, hi: int, cut: list[Fragment], budget: int, covered: frozenset[str], summarize: bool = True,
              strong_only: bool = False) -> Summary:
        """Summary of messages[lo:hi] plus cut fragments, at most ``budget`` tokens.
        ``covered``: values the kept conversation states already (they need no room);
        ``strong_only`` (past the target) keeps to facts the question asks about."""
        count = hi - lo
        header = self.header(lo, hi)
        bare = header + ".]"
        if not summarize or budget < MIN_SUMMARY_TOKENS:
            return Summary(bare)
        cache_key = (lo, hi, len(cut), budget, covered, strong_only)
        if cache_key in self._cache:
            return self._cache[cache_key]
        model = self.h.model
        if self.question and not self.question.idf:
            # the question's words weigh by their rarity in everything that may be summarised
            # (after the cached prefix: once per call, so every candidate is scored alike)
            self.question.fit_idf([u for i in range(lo, self.h.tail_start) for fu in self._units(i) for u in fu.units])
        covered = set(covered)
        budget_chars = budget * self.chars_per_token - len(header) - 40
        body: list[str] = []
        notes: list[str] = []
        if self.summarizer is not None and count:
            try:
                if (lo, hi) not in self._abstracts:  # one call per dropped range, whatever the budget
                    self._abstracts[(lo, hi)] = redact_credentials(str(self.summarizer(redacted_copy(self.h.messages[lo:hi]))).strip())[0]
                abstract = self._abstracts[(lo, hi)]
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
        quoted = self.h.request_index  # quoted verbatim when it is dropped: its words need no summary
        for part in [fu for i in range(lo, hi) if i != quoted for fu in self._units(i)] + [fragment_units(f) for f in cut]:
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
        if tok.estimate_text_tokens(text, model) > budget:
            text = bare
        kept: list = []
        chosen_count = -1
        for _ in range(4):
            chosen = select_units(units, max(0.0, budget_chars), covered, self.question, strong_only)
            candidate = render(chosen)
            tokens = tok.estimate_text_tokens(candidate, model)
            if tokens <= budget:
                text, kept = candidate, chosen
                if tokens >= 0.9 * budget or len(chosen) == chosen_count:
                    break  # full, or more room would not add anything
                chosen_count = len(chosen)
            budget_chars *= min(2.0, 0.95 * budget / max(1, tokens))
        offered = {u.text for u in units if u.strong and not all(v in covered for v, _ in u.values)}
        summary = Summary(text, notes, len(offered), len({u.text for u in kept if u.text in offered}), text == bare)
        self._cache[cache_key] = summary
        return summary


def redacted_copy(messages: list[dict]) -> list[dict]:
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
