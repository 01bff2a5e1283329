"""The facts of pruned history, offline: extract, score, choose, print.

An agent rarely needs the prose of an old turn; it needs the facts in it: a
name, the port, the host, the file it edited, the version it pinned, who
approves, what was decided, what is still open. So a summary is built from
*units* (sentences of prose, lines of tool output, code and pasted text),
each scored by

- the fact-like values it carries (URLs, paths, hosts, IP addresses, ports,
  versions, dates and times, quantities with units, money, tickets, commits,
  identifiers, names, "my name is X"), each weighted by its kind;
- what it is: a statement in prose, a ``key: value`` setting (in a config, a
  log line, a JSON answer, a constant in code), a rare line of a long output,
  or routine output and code, which carry little (a line of a function body is
  worth a fifth of a setting);
- who said it (the user's words weigh most) and cue words (decisions,
  constraints, ownership, open questions);
- whether the question being answered now refers to it (``Question``): a unit
  sharing the words of one of the final turn's questions, or carrying the kind
  of value it asks for (who -> a name, which port -> a port), counts several
  times over, so the facts the next turn needs come first.

Units are picked greedily by new value per character (values the kept
conversation already states count as covered), then printed in their
original order so that later statements read as later. Credential values
never pass: a unit that may hold one is redacted first, and only the
credential's name is listed.

Values and their weights live in ``values``, the question in ``question``.
Everything is general rules over text shapes; nothing knows the benchmark's
templates.
"""

from __future__ import annotations

import heapq
import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from ..credentials import CREDENTIAL_HINT, redact_credentials
from .question import Question, stems_of
from .values import IMPORTANT_KEY, SETTING_VALUE, values_and_kinds

MAX_UNIT_CHARS = 300
MAX_OUTPUT_LINES = 120  # lines of one tool output that are scored at most
MIN_DENSITY = 0.006  # value per character below which a unit is not worth including
UNIT_OVERHEAD_CHARS = 3  # the " … " joining units
BULLET_OVERHEAD_CHARS = 12  # "- [" "] " and the newline, besides the label
CODE_FACTOR = 0.2  # a line of code (not a setting, not a comment) is mostly not a fact
STRONG_VALUE = 2.0  # a value at least this heavy (before who-said-it) makes its unit a fact
RELEVANCE_SHARPNESS = 3.0  # a unit fully answering a question counts e^this (20) times
ANSWERED_RELEVANCE = 0.6  # a chosen unit answering a part this well answers it: others lose that part's boost
ASKED_RELEVANCE = 0.2  # past the target, only units that answer the question this well are kept


@dataclass(frozen=True)
class Fragment:
    """A piece of removed text offered to the summary."""

    text: str
    label: str  # who or what produced it: "user", "assistant", "bash result", ...
    weight: float  # how much a fact found here is worth, relative to tool output (1.0)
    order: int  # chronological position; units print in this order
    prose: bool  # words someone wrote (split into sentences; code and pastes inside are found) or tool output (lines)
    context: str = ""  # words around it that say what it is about (the sentence before a command): matched against the question


@dataclass
class Unit:
    text: str
    label: str
    order: int
    cost: int  # characters it adds to the summary
    base: float  # value of the unit beyond its values (a user's statement, a decision)
    values: tuple[tuple[str, float], ...]
    stems: frozenset[str] = frozenset()  # its words, for matching the question
    context: frozenset[str] = frozenset()  # words around it (the sentence before a command)
    kinds: frozenset[str] = frozenset()  # kinds of value it carries (port, date, name...)
    strong: bool = False  # states a fact: a heavy value, a setting or a decision


@dataclass
class FragmentUnits:
    units: list[Unit] = field(default_factory=list)
    credential_names: list[str] = field(default_factory=list)


# Words that mark decisions, constraints, ownership, incidents and open questions.
# Matched word by word (a set lookup is far cheaper than a large regex alternation).
_CUE_WORDS = frozenset(
    """decision agree agreed let's going chose choose picked pick selected settled opted drop dropped instead
    rather must never always don't remember note important deadline due owner owns responsible contact
    assigned rollback sign-off signoff target pin pinned limit budget quota retention sla slo constraint todo
    fixme blocked blocker unresolved tbd regression broke broken culprit introduced workaround credential
    credentials secret password token env named called wins""".split()
)
_CUE_PREFIXES = ("decid", "approv", "deploy", "releas", "migrat", "upgrad", "downgrad", "requir", "confirm", "prefer", "switch", "replac", "bisect", "favo", "schedul")
_CUE_PHRASES = ("go with", "we'll", "we will", "we should", "do not", "keep in mind", "make sure", "ruled out", "final answer", "root cause", "caused by", "fixed by", "open question", "not sure", "reach out", "api key", "environment variable", "final call")
_LOWER_WORD = re.compile(r"[a-z][a-z'-]*")


def _cue_count(piece: str) -> int:
    lowered = piece[:400].lower()
    count = sum(1 for w in _LOWER_WORD.findall(lowered) if w in _CUE_WORDS or w.startswith(_CUE_PREFIXES))
    if count < 3:
        count += sum(1 for phrase in _CUE_PHRASES if phrase in lowered)
    return count


_CONFIG_LINE = re.compile(r"""^[ \t]*(?:export[ \t]+|-[ \t]+)?["']?([A-Za-z_][\w.\-\[\]]*)["']?\s*(?::=|=|:)\s*(?![^"'\n]*\()\S""")
# A constant inside code, its value a literal: NAME = 5433, const PORT = "x";, port: int = 5433
_SETTING_IN_CODE = re.compile(
    r"""^\s*(?:export\s+|const\s+|let\s+|var\s+|final\s+|static\s+|public\s+|private\s+|readonly\s+)*["']?[A-Za-z_][\w.]*["']?\s*"""
    r"""(?::\s*[A-Za-z_][\w\[\], ]*\s*)?(?:=|:)\s*(?:-?\d[\d_.,]*[A-Za-z%]*|"[^"\n]*"|'[^'\n]*'|true|false|True|False|[A-Za-z][\w.:/@-]*)\s*[;,]?\s*(?:(?:#|//).*)?$"""
)
_JSON_PAIR = re.compile(r'"[\w .-]{1,60}"\s*:\s*(?:"(?:[^"\\\n]|\\.){0,200}"|-?\d[\d.eE+-]*|true|false|null)')
_COMMENT = re.compile(r"^\s*(?:#|//|--|/\*|\*)\s?(.*)$")
_LOG_PREFIX = re.compile(r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|^\s*\[?\d{2}:\d{2}:\d{2}|^\s*(?:DEBUG|INFO|TRACE)\b")
_LOG_LINE = re.compile(r"(?m)^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_LOG_STAMP = re.compile(r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\]?\s+(?:(?:DEBUG|INFO|TRACE|NOTICE)\s+)?")
_LOG_ALERT = re.compile(r"(?i)\b(?:error|warn\w*|fatal|critical|exception|panic|fail\w*|denied|refused|timeout|timed out)\b")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if |elif |else:|for |while |try:|except|with |async |await |"
    r"const |let |var |function |export |public |private |#include|package |\}|\{|\)|\]|//|/\*|\*|@\w)"
)
_CODE_END = re.compile(r"(?:[{};(\[,]|\):|\) \{|=>|->)\s*$")
_CODE_SYNTAX = re.compile(r"\w\(|\)\s*[:{]|[=!<>]=|\+=|-=|=>|->|::|&&|\|\||\[\w*\]|\w\.\w+\(")
_CODE_PUNCT = re.compile(r"[(){}\[\];=<>]")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\[\(\"'`*])")
_JUNK_LINE = re.compile(r"^[\s\-=_*#~`|+.:;,<>()\[\]{}\\/]*$")


# ---------------------------------------------------------------- units


def _split_long(piece: str) -> list[str]:
    """Cut an over-long line (minified JSON, a wrapped paragraph) into pieces."""
    out = []
    while len(piece) > MAX_UNIT_CHARS:
        cut = max(piece.rfind(sep, 0, MAX_UNIT_CHARS) for sep in (", ", "; ", " ", ","))
        if cut < MAX_UNIT_CHARS // 3:
            cut = MAX_UNIT_CHARS
        out.append(piece[: cut + 1].strip())
        piece = piece[cut + 1 :]
    if piece.strip():
        out.append(piece.strip())
    return out


def _looks_like_code(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _CODE_LINE.match(line):
        return True
    if not _CODE_PUNCT.search(stripped):
        return False  # words only: prose, or a log line
    if _CODE_END.search(stripped):
        return True
    if line[:1] in (" ", "\t") and _CODE_SYNTAX.search(stripped):
        return True
    words = stripped.split()
    return len(_CODE_SYNTAX.findall(stripped)) >= 2 or (len(words) <= 6 and bool(_CODE_SYNTAX.search(stripped)) and not stripped.endswith((".", "?", "!")))


def _segments(text: str) -> list[tuple[str, str]]:
    """Split words someone wrote into ("prose" | "block", text): fenced blocks
    and runs of three or more lines of code or log are blocks (pasted code,
    output, configs), the rest is prose."""
    if "\n" not in text or not (_CODE_PUNCT.search(text) or "`" in text or _LOG_LINE.search(text)):
        return [("prose", text)]  # one paragraph, or words only: nothing pasted
    lines = text.split("\n")
    out: list[tuple[str, list[str]]] = []

    def push(mode: str, line: str) -> None:
        if out and out[-1][0] == mode:
            out[-1][1].append(line)
        else:
            out.append((mode, [line]))

    fenced = False
    run: list[str] = []

    def flush_run() -> None:
        if len(run) >= 3:
            for line in run:
                push("block", line)
        else:
            for line in run:
                push("prose", line)
        run.clear()

    for line in lines:
        if _FENCE.match(line):
            flush_run()
            fenced = not fenced
            continue
        if fenced:
            push("block", line)
        elif line.strip() and (_looks_like_code(line) or _LOG_PREFIX.match(line)):
            run.append(line)
        else:
            flush_run()
            push("prose", line)
    flush_run()
    return [(mode, "\n".join(body)) for mode, body in out]


def _prose_pieces(text: str) -> list[str]:
    pieces: list[str] = []
    for line in text.splitlines():
        if not line or _JUNK_LINE.match(line):
            continue
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)  # list markers carry nothing
        if len(line) > 80:
            for sentence in _SENTENCE_BREAK.split(line):
                pieces.extend(_split_long(sentence) if len(sentence) > MAX_UNIT_CHARS else [sentence.strip()])
        else:
            pieces.append(line.strip())
    return pieces


def _output_lines(text: str) -> list[tuple[str, float]]:
    """(line, rarity) of the lines of a tool output worth scoring.

    A long output is mostly routine: the same log template, the same code
    shape, over and over. Lines whose template is rare, config-like lines and
    alerts are kept; the rest is never scored at all, which is also what keeps
    pruning a megabyte-sized history fast."""
    lines = text.split("\n")
    if len(lines) < 12:
        return [(line, 1.0) for line in lines if line and not _JUNK_LINE.match(line)]
    shapes = _WORDS.sub("w", text).split("\n")
    counts = Counter(shapes)
    first_of_shape: dict[str, int] = {}
    for i, shape in enumerate(shapes):
        first_of_shape.setdefault(shape, i)
    # Lines of one template are either all config-like or none: test one of each.
    config_shapes = {shape for shape, i in first_of_shape.items() if _CONFIG_LINE.match(lines[i])}
    config = {i for i, shape in enumerate(shapes) if shape in config_shapes}
    starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    alerts = {bisect_right(starts, m.start()) - 1 for m in _LOG_ALERT.finditer(text)}
    chosen = {i for i, shape in enumerate(shapes) if counts[shape] <= 2} | config | alerts
    if len(chosen) > MAX_OUTPUT_LINES:
        ranked = sorted(chosen, key=lambda i: (i not in config, i not in alerts, counts[shapes[i]], i))
        chosen = set(ranked[:MAX_OUTPUT_LINES])
    out = []
    for i in sorted(chosen):
        line = lines[i]
        if line and not _JUNK_LINE.match(line):
            out.append((line, _rarity(counts[shapes[i]])))
    return out


def _is_code(text: str) -> bool:
    """Whether an output (or a pasted block) is source code: many of its lines look like code."""
    lines = [line for line in text.split("\n", 400)[:400] if line.strip()]
    if len(lines) < 4:
        return False
    sample = lines[:: max(1, len(lines) // 12)]  # a spread sample says as much, far cheaper
    return sum(1 for line in sample if _looks_like_code(line)) >= 0.35 * len(sample)


def _multiplier(piece: str, prose: bool, rarity: float = 1.0, code: bool = False) -> float:
    # Cue words are looked for in prose and in lines that stand out; in routine
    # output lines they would cost more time than they are worth.
    cues = _cue_count(piece) if prose or rarity > 1.0 else 0
    factor = 1.0 + 0.35 * min(cues, 3)
    if prose:
        if piece.endswith("?"):
            factor *= 1.3
        return factor
    if code:
        comment = _COMMENT.match(piece)
        if comment and len(comment.group(1).split()) >= 3:
            return factor * 0.8  # a comment says something in words
        setting = _SETTING_IN_CODE.match(piece)
        if setting:
            return factor * (1.8 if IMPORTANT_KEY.search(piece.split("=", 1)[0].split(":", 1)[0]) else 1.0)
        return factor * CODE_FACTOR
    config = _CONFIG_LINE.match(piece)
    if config:
        factor *= 1.8 if IMPORTANT_KEY.search(config.group(1)) else 1.2
    elif _LOG_PREFIX.match(piece):
        factor *= 1.1 if _LOG_ALERT.search(piece) else 0.35
    elif _CODE_LINE.match(piece):
        factor *= 0.5
    elif _LOG_ALERT.search(piece):
        factor *= 1.2
    return factor


_WORDS = re.compile(r"[A-Za-z0-9_]+")  # masked to "w": a line's template keeps only its punctuation and layout


def _rarity(count: int) -> float:
    """In a long output, a line whose template occurs once stands out (the one
    startup line among request logs); a template repeated a hundred times is routine."""
    if count == 1:
        return 2.0
    if count == 2:
        return 1.3
    return max(0.3, 1.2 / count**0.5)


def fragment_units(fragment: Fragment) -> FragmentUnits:
    """Split a fragment into scored units, credential values replaced."""
    scored, names = _scored_pieces(fragment.text, fragment.label, fragment.weight, fragment.prose)
    context = stems_of(fragment.context) if fragment.context else frozenset()
    units = [Unit(text, fragment.label, fragment.order, len(text) + UNIT_OVERHEAD_CHARS, base, values, stems, context, kinds, strong)
             for text, base, values, stems, kinds, strong in scored]
    return FragmentUnits(units, list(names))


def _line_candidates(text: str, names: list[str]) -> tuple[list[tuple[str, float, bool]], bool]:
    """(line, rarity, repeated key) of an output or a pasted block, and whether it is code."""
    code = _is_code(text)
    candidates = []
    for line, rarity in _output_lines(text):
        # Only what may reach the summary is redacted: most of a big output never does.
        if CREDENTIAL_HINT.search(line):
            line, found = redact_credentials(line)
            names.extend(n for n in found if n not in names)
        if not code and line[:2].lstrip("[ ")[:1].isdigit():
            line = _LOG_STAMP.sub("", line, count=1) or line  # the time stamp of a log line is rarely the fact
        if len(line) > 80 and line.lstrip()[:1] in "{[" and (pairs := _JSON_PAIR.findall(line)):
            pieces = [p.strip() for p in pairs]  # a minified JSON answer: one unit per "key": value
        else:
            pieces = _split_long(line) if len(line) > MAX_UNIT_CHARS else [line.strip()]
        candidates.extend((piece, rarity) for piece in pieces)
    # A key that comes back again and again ("name": ... in every record of a
    # list) is a column of data, not a setting: routine, like a repeated template.
    keys = [_setting_key(piece) for piece, _ in candidates]
    counts = Counter(k for k in keys if k)
    out = []
    for (piece, rarity), key in zip(candidates, keys):
        repeated = bool(key) and counts[key] >= 3
        out.append((piece, min(rarity, _rarity(counts[key])) if repeated else rarity, repeated))
    return out, code


def _setting_key(piece: str) -> str | None:
    match = SETTING_VALUE.match(piece) or _CONFIG_LINE.match(piece)
    return match.group(1).lower() if match else None


@lru_cache(maxsize=2048)  # holds fragments' text: bounded well below the token-count cache
def _scored_pieces(text: str, label: str, weight: float, prose: bool) -> tuple[tuple, tuple[str, ...]]:
    """((piece, base, values, stems, kinds, strong), ...) and credential names
    of one fragment. Cached: an agent resends the same history every turn, and
    each turn past the threshold is pruned again."""
    names: list[str] = []
    # (piece, rarity, is prose, is code, a setting whose key repeats)
    candidates: list[tuple[str, float, bool, bool, bool]] = []
    if prose:
        text, found = redact_credentials(text)
        names.extend(found)
        for mode, segment in _segments(text):
            if mode == "prose":
                candidates.extend((piece, 1.0, True, False, False) for piece in _prose_pieces(segment))
            else:
                lines, code = _line_candidates(segment, names)
                candidates.extend((piece, rarity, False, code, repeated) for piece, rarity, repeated in lines)
    else:
        lines, code = _line_candidates(text, names)
        candidates.extend((piece, rarity, False, code, repeated) for piece, rarity, repeated in lines)
    scored = []
    seen: set[str] = set()
    for piece, rarity, is_prose, code, repeated in candidates:
        if len(piece) < 3 or piece in seen:
            continue
        seen.add(piece)
        values, kinds = values_and_kinds(piece, is_prose)
        cue_factor = _multiplier(piece, is_prose, rarity, code)
        factor = weight * cue_factor
        if rarity > 1.0 and not code:  # a rare line in a long output stands out, whatever its log level
            factor = weight * max(cue_factor, 1.0) * rarity
        elif rarity < 1.0 and (repeated or not _CONFIG_LINE.match(piece)):
            factor *= rarity
        base = 0.0
        if is_prose and len(piece.split()) >= 4 and (weight >= 3.0 or cue_factor > 1.0):
            base = 0.6 * factor  # a request, a decision or a constraint can matter without any value in it
        decision = is_prose and cue_factor > 1.0 and any(w >= 1.0 for _, w in values)
        if decision:
            kinds = kinds | {"decision"}
        # Does it state a fact? A short sentence with a value in it, a setting, a
        # heavy value (a host, a path, a URL) in a line that stands out, a decision.
        meaningful = any(w >= 1.0 for _, w in values)
        heavy = any(w >= STRONG_VALUE for _, w in values)
        setting = not is_prose and bool(SETTING_VALUE.match(piece) or _CONFIG_LINE.match(piece))
        statement = is_prose and meaningful and len(piece.split()) <= 40
        strong = statement or decision or (setting and meaningful and not repeated) or (heavy and rarity >= 1.0 and not code)
        if values or base:
            scored.append((piece, base, tuple((v, w * factor) for v, w in values if w > 0), stems_of(piece), kinds, strong))
    return tuple(scored), tuple(names)


# ---------------------------------------------------------------- selection


def select_units(units: list[Unit], budget_chars: float, covered: set[str], question: Question | None = None,
                 strong_only: bool = False) -> list[Unit]:
    """Greedy choice of units with the most not-yet-covered value per character,
    within ``budget_chars`` (bullet labels included).

    A unit that answers a part of the question counts up to
    e^RELEVANCE_SHARPNESS times more, until a chosen unit has answered that
    part: the facts the question asks for come first, one answer each.
    ``strong_only`` (past the target) keeps to units that answer the question.

    Lazy greedy: a unit's gain only shrinks as values get covered and parts
    answered, so a popped unit whose recomputed gain still beats the next best
    one is the best pick.
    """
    covered = set(covered)
    latest: dict[str, Unit] = {}
    for unit in units:  # the same line said twice is worth one bullet, the later one
        if unit.text not in latest or unit.order > latest[unit.text].order:
            latest[unit.text] = unit
    units = list(latest.values())
    part_scores: list[list[tuple[int, float]]] = [[] for _ in units]
    if question:
        part_scores = [question.scores(u) for u in units]
    if strong_only:  # facts the question refers to; other facts too when it asks for information at all
        asks = bool(question and question.asks)
        keep = [i for i, u in enumerate(units)
                if (u.strong and asks)
                or ((best := max((sc for _, sc in part_scores[i]), default=0.0)) >= ASKED_RELEVANCE and (u.strong or best >= 0.6))]
        units, part_scores = [units[i] for i in keep], [part_scores[i] for i in keep]
    answered: set[int] = set()
    questions = question.questions if question else set()

    def gain(i: int) -> float:
        unit = units[i]
        relevance = max((sc for part, sc in part_scores[i] if part not in answered), default=0.0)
        return math.exp(RELEVANCE_SHARPNESS * relevance) * (unit.base + sum(w for v, w in unit.values if v not in covered))

    heap = [(-gain(i) / u.cost, i) for i, u in enumerate(units)]
    heapq.heapify(heap)
    chosen: list[Unit] = []
    bullets: set[tuple[int, str]] = set()
    spent = 0.0
    while heap and spent < budget_chars:
        neg_density, i = heapq.heappop(heap)
        unit = units[i]
        density = gain(i) / unit.cost
        if density < MIN_DENSITY:
            if -neg_density < MIN_DENSITY:
                break
            continue
        if heap and density < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-density, i))
            continue
        if strong_only and questions and questions <= answered and not part_scores[i]:
            continue  # past the target: once every question has its answer, other facts wait
        cost = unit.cost + (0 if (unit.order, unit.label) in bullets else BULLET_OVERHEAD_CHARS + len(unit.label))
        if spent + cost > budget_chars:
            continue  # too big for what is left; a smaller unit may still fit
        chosen.append(unit)
        bullets.add((unit.order, unit.label))
        spent += cost
        covered.update(v for v, _ in unit.values)
        answered.update(part for part, sc in part_scores[i] if sc >= ANSWERED_RELEVANCE)
    return chosen


def format_units(units: list[Unit]) -> list[str]:
    """Bullets in chronological order, one per source, units joined by ' … '."""
    lines: list[str] = []
    current: tuple[int, str] | None = None
    parts: list[str] = []
    for unit in sorted(units, key=lambda u: u.order):
        key = (unit.order, unit.label)
        if key != current and parts:
            lines.append(f"- [{current[1]}] " + " … ".join(parts))  # type: ignore[index]
            parts = []
        current = key
        parts.append(unit.text)
    if parts and current:
        lines.append(f"- [{current[1]}] " + " … ".join(parts))
    return lines
