"""Offline extractive summaries of pruned conversation history.

An agent rarely needs the prose of an old turn; it needs the facts in it:
the deploy target, the port, the file it edited, the version it pinned, who
approves, what was decided, what is still open. So the summary is built from
*units* (sentences of prose, lines of tool output), each scored by the
fact-like values it carries (URLs, paths, hosts, versions, quantities,
identifiers, names...), by who wrote it (the user's words weigh most) and by
cue words (decisions, constraints, questions); in long tool outputs, lines
whose template is rare stand out and routine ones are not even scored. Units
are picked greedily by new value per character (values already present in
the kept conversation count as covered), then printed in their original
order so that later statements read as later. Credential values never pass:
any unit that may hold one is redacted first, and only the credential's name
is listed.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from .credentials import CREDENTIAL_HINT, redact_credentials

MAX_UNIT_CHARS = 300
MAX_OUTPUT_LINES = 120  # lines of one tool output that are scored at most
MIN_DENSITY = 0.006  # value per character below which a unit is not worth including
UNIT_OVERHEAD_CHARS = 3  # the " … " joining units
BULLET_OVERHEAD_CHARS = 24  # "- [label] " and the newline


@dataclass(frozen=True)
class Fragment:
    """A piece of removed text offered to the summary."""

    text: str
    label: str  # who or what produced it: "user", "assistant", "bash result", ...
    weight: float  # how much a fact found here is worth, relative to tool output (1.0)
    order: int  # chronological position; units print in this order
    prose: bool  # split into sentences (prose) or lines (tool output, files, logs)


@dataclass
class Unit:
    text: str
    label: str
    order: int
    cost: int  # characters it adds to the summary
    base: float  # value of the unit beyond its values (a user's statement, a decision)
    values: tuple[tuple[str, float], ...]


@dataclass
class FragmentUnits:
    units: list[Unit] = field(default_factory=list)
    credential_names: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- values

_VALUE = re.compile(
    r"""
 (?P<url>\b(?:https?|wss?|ftp|s3|gs|git|ssh|postgres(?:ql)?|mysql|redis|mongodb(?:\+srv)?|amqps?|kafka|grpc)://[^\s<>"'`)\]}]+)
|(?P<email>\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)
|(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2}|:\d{2,5})?\b)
|(?P<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)
|(?P<date>\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?Z?)?)
|(?P<path>(?:~|\.{1,2})?/(?:[\w.@%+-]+/)*[\w.@%+-]+/?|\b[\w.-]+/(?:[\w.-]+/)*[\w-]+\.[A-Za-z]\w{0,5}\b)
|(?P<version>\bv?\d+\.\d+(?:\.\d+)+(?:[-+][\w.]+)?\b|\bv\d+(?:\.\d+)?\b)
|(?P<money>[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s?[kKmM]\b)?)
|(?P<qty>\b\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|mins?|minutes?|h|hrs?|hours?|days?|weeks?|months?|years?
      |[KMGTP]i?B|[KMGT]i|[kKMG]b?ps|%|x|rps|qps|req/s|cores?|vCPUs?|CPUs?|GPUs?|USD|EUR|tokens?|users?|requests?
      |rows?|records?|replicas?|nodes?|pods?|shards?|workers?|threads?|connections?|retries|attempts?|items?|files?|lines?)\b)
|(?P<port>(?i:port)\s*[:=]?\s*\d{2,5}\b|:\d{4,5}\b)
|(?P<kv>\b[A-Za-z][\w.-]*=(?!=)[^\s,;&"')\]}]+)
|(?P<ticket>\b[A-Z][A-Z0-9]{1,9}-\d{1,6}\b|\#\d{2,7}\b)
|(?P<hex>\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b)
|(?P<host>\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+\b)
|(?P<const>\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b)
|(?P<ident>\b[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b|\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b)
|(?P<name>\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)+\b)
|(?P<capword>\b[A-Z][a-z]{2,}\b)
|(?P<acronym>\b[A-Z]{2,6}\d{0,2}\b)
|(?P<number>\b\d{2,}(?:\.\d+)?\b)
|(?P<code>`[^`\n]{2,60}`)
""",
    re.X,
)

_KIND_WEIGHT = {
    "url": 3.0,
    "email": 3.0,
    "ip": 3.0,
    "uuid": 0.3,
    "path": 2.5,
    "version": 2.5,
    "money": 2.5,
    "qty": 2.5,
    "port": 3.0,
    "ticket": 2.5,
    "hex": 0.6,
    "const": 1.5,
    "code": 1.5,
    "number": 1.0,
}
_HOST_SUFFIXES = frozenset(
    "com net org io dev app ai co uk de eu us internal local lan corp cloud svc cluster example test "
    "localhost tech sh gg me info biz xyz site online".split()
)
_FILE_SUFFIXES = frozenset(
    "py js ts tsx jsx json yaml yml toml ini cfg conf md txt log csv sql sh go rs java rb php c h cc cpp "
    "hpp cs kt swift html css scss lock env tf hcl xml proto gradle mk pem crt key pdf png jpg svg gz zip tar".split()
)
# Capitalised words that are sentence openers or jargon, not names.
_COMMON_CAPS = frozenset(
    """The This That These Those There Their They Then Than Thanks Thank Here Hello Also And But
    For From With Without When While Where What Which Who Why How Yes Not None Null True False
    Now Next Note Okay Sure Great Good Done Let Lets Please Just Only Once Some Any All Each Every
    Both Other Another Before After Since Until Because Using Use Used Run Running Check Checking
    Looking Look Found Fixed Added Updated Created Removed Deleted Changed Reading Writing Read
    Write Let's It's Its Our Your You We Error Errors Warning Warnings Info Debug Trace Traceback
    Exception Failed Failure Success Successful Passed Passing Test Tests Testing File Files Line
    Lines Step Steps First Second Third Last Final Finally Summary Result Results Output Input Value
    Values Type Types Data Config Configuration Server Client Request Response Status Total Time
    Date Today Tomorrow Yesterday Monday Tuesday Wednesday Thursday Friday Saturday Sunday January
    February March April May June July August September October November December Will Would Could
    Should Can May Might Must Shall Did Does Has Have Had Was Were Are Is Am Been Being Get Got Set
    Make Made Take Took Give See Seems Seem Need Needs Want Try Tried Keep Start Started Stop Build
    Building Install Installing Installed Collecting Downloading Requirement Successfully Warning
    Hmm Well Actually Maybe Perhaps However Therefore Instead Meanwhile Otherwise Anyway Good Right
    Interesting Perfect Excellent Alright Cool Nice Great Thanks Hi Hey Dear Regards Best Class
    Function Method Module Package Object Array String List Dict Map Returns Return Raises Args""".split()
)
_COMMON_ACRONYMS = frozenset(
    """API APIs URL URLs URI DB SQL CLI HTTP HTTPS JSON YAML TOML XML HTML CSS CSV PDF OK ID IDs IO UI UX CPU GPU
    RAM SSD TTL TLS SSL SSH DNS TCP UDP IP AM PM UTC GMT EOF README TODO FIXME NOTE WIP PR PRs CI CD QA LGTM ETA
    FYI ASAP IMO TBD AI ML LLM SDK OS VM GET POST PUT PATCH DELETE HEAD INFO DEBUG WARN ERROR FATAL TRACE PASSED
    FAILED SKIPPED XFAIL ERR NULL NONE TRUE FALSE AND OR NOT""".split()
)
# Words that mark decisions, constraints, ownership, incidents and open questions.
# Matched word by word (a set lookup is far cheaper than a large regex alternation).
_CUE_WORDS = frozenset(
    """decision agree agreed let's going chose choose picked pick selected settled opted drop dropped instead
    rather must never always don't remember note important deadline due owner owns responsible contact
    assigned rollback sign-off signoff target pin pinned limit budget quota retention sla slo constraint todo
    fixme blocked blocker unresolved tbd regression broke broken culprit introduced workaround credential
    credentials secret password token env""".split()
)
_CUE_PREFIXES = ("decid", "approv", "deploy", "releas", "migrat", "upgrad", "downgrad", "requir", "confirm", "prefer", "switch", "replac", "bisect", "favo")
_CUE_PHRASES = ("go with", "we'll", "we will", "we should", "do not", "keep in mind", "make sure", "ruled out", "final answer", "root cause", "caused by", "fixed by", "open question", "not sure", "reach out", "api key", "environment variable")
_LOWER_WORD = re.compile(r"[a-z][a-z'-]*")


def _cue_count(piece: str) -> int:
    lowered = piece[:400].lower()
    count = sum(1 for w in _LOWER_WORD.findall(lowered) if w in _CUE_WORDS or w.startswith(_CUE_PREFIXES))
    if count < 3:
        count += sum(1 for phrase in _CUE_PHRASES if phrase in lowered)
    return count


_IMPORTANT_KEY = re.compile(
    r"(?i)(?:host|port|url|uri|endpoint|addr|address|domain|region|zone|target|version|tag|image|bucket|"
    r"database|\bdb\b|db_|schema|cluster|namespace|project|account|owner|email|contact|user(?:name)?|timeout|"
    r"limit|max|min|replicas|memory|cpu|size|branch|env|environment|queue|topic|channel|path|dir|file|"
    r"model|key|secret|token|password|deadline|date|budget|cron|schedule|id\b)"
)
_CONFIG_LINE = re.compile(r"""^[ \t]*(?:export[ \t]+|-[ \t]+)?["']?([A-Za-z_][\w.\-\[\]]*)["']?\s*(?::=|=|:)\s*(?![^"'\n]*\()\S""")
_LOG_PREFIX = re.compile(r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|^\s*\[?\d{2}:\d{2}:\d{2}|^\s*(?:DEBUG|INFO|TRACE)\b")
_LOG_ALERT = re.compile(r"(?i)\b(?:error|warn\w*|fatal|critical|exception|panic|fail\w*|denied|refused|timeout|timed out)\b")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if |elif |else:|for |while |try:|except|with |"
    r"const |let |var |function |export |public |private |#include|package |\}|\{|\)|\]|//|/\*|\*)"
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\[\(\"'`*])")
_JUNK_LINE = re.compile(r"^[\s\-=_*#~`|+.:;,<>()\[\]{}\\/]*$")


def _value_weight(kind: str, value: str, prose: bool) -> float:
    if kind in _KIND_WEIGHT:
        if kind == "number" and not prose:
            return 0.3 if len(value) >= 6 else 0.6  # bare numbers in tool output are mostly ids and counters
        if kind == "hex" and prose:
            return 2.5  # a commit sha someone mentions is a fact
        return _KIND_WEIGHT[kind]
    if kind == "kv":  # key=value inside a line: a setting, worth what its key says
        key = value.split("=", 1)[0]
        return 2.5 if _IMPORTANT_KEY.search(key) else 0.5
    if kind == "date":
        return 1.5 if prose else (0.1 if len(value) > 10 else 0.5)
    if kind == "host":
        last = value.rsplit(".", 1)[-1]
        if last in _FILE_SUFFIXES:
            return 1.5  # a file name
        if last in _HOST_SUFFIXES or "-" in value or any(c.isdigit() for c in value):
            return 2.5
        return 0.3  # attribute chains like os.path.join
    if kind == "ident":
        return 2.0 if any(c.isdigit() for c in value) else 1.0
    if kind == "name":
        words = value.split()
        if all(w in _COMMON_CAPS for w in words):
            return 0.0
        return 2.0 if prose else 0.8
    if kind == "capword":
        if value in _COMMON_CAPS:
            return 0.0
        return 1.2 if prose else 0.3
    if kind == "acronym":
        if value in _COMMON_ACRONYMS:
            return 0.0
        return 1.0 if prose else 0.2
    return 0.5


def unit_values(text: str, prose: bool) -> tuple[tuple[str, float], ...]:
    found: dict[str, float] = {}
    for m in _VALUE.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(0).rstrip(".,:;")
        if kind == "name":  # the parts count too: once "Priya Raman" is in, "Priya" is known
            for word in value.split():
                if word not in _COMMON_CAPS:
                    found.setdefault(word, 0.3)
        weight = _value_weight(kind, value, prose)
        if weight > found.get(value, 0.0):
            found[value] = weight
    return tuple(found.items())


def values_in(text: str) -> set[str]:
    """The value strings of ``text`` (what counts as already known)."""
    out: set[str] = set()
    for m in _VALUE.finditer(text):
        value = m.group(0).rstrip(".,:;")
        out.add(value)
        if m.lastgroup == "name":
            out.update(value.split())
    return out


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


def _prose_pieces(text: str) -> list[str]:
    pieces: list[str] = []
    for line in text.splitlines():
        if not line or _JUNK_LINE.match(line):
            continue
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


def _multiplier(piece: str, prose: bool, rarity: float = 1.0) -> float:
    # Cue words are looked for in prose and in lines that stand out; in routine
    # output lines they would cost more time than they are worth.
    cues = _cue_count(piece) if prose or rarity > 1.0 else 0
    factor = 1.0 + 0.35 * min(cues, 3)
    if prose:
        if piece.endswith("?"):
            factor *= 1.3
        return factor
    config = _CONFIG_LINE.match(piece)
    if config:
        factor *= 1.8 if _IMPORTANT_KEY.search(config.group(1)) else 1.2
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
    units = [Unit(text, fragment.label, fragment.order, len(text) + UNIT_OVERHEAD_CHARS, base, values) for text, base, values in scored]
    return FragmentUnits(units, list(names))


@lru_cache(maxsize=2048)  # holds fragments' text: bounded well below the token-count cache
def _scored_pieces(text: str, label: str, weight: float, prose: bool) -> tuple[tuple, tuple[str, ...]]:
    """((piece, base, values), ...) and credential names of one fragment.
    Cached: an agent resends the same history every turn, and each turn past
    the threshold is pruned again."""
    names: list[str] = []
    if prose:
        text, names = redact_credentials(text)
        candidates = [(piece, 1.0) for piece in _prose_pieces(text)]
    else:
        candidates = []
        for line, rarity in _output_lines(text):
            # Only what may reach the summary is redacted: most of a big output never does.
            if CREDENTIAL_HINT.search(line):
                line, found = redact_credentials(line)
                names.extend(n for n in found if n not in names)
            pieces = _split_long(line) if len(line) > MAX_UNIT_CHARS else [line.strip()]
            candidates.extend((piece, rarity) for piece in pieces)
    scored = []
    seen: set[str] = set()
    for piece, rarity in candidates:
        if len(piece) < 3 or piece in seen:
            continue
        seen.add(piece)
        values = unit_values(piece, prose)
        cue_factor = _multiplier(piece, prose, rarity)
        factor = weight * cue_factor
        if rarity > 1.0:  # a rare line in a long output stands out, whatever its log level
            factor = weight * max(cue_factor, 1.0) * rarity
        elif rarity < 1.0 and not _CONFIG_LINE.match(piece):
            factor *= rarity
        base = 0.0
        if prose and len(piece.split()) >= 4 and (weight >= 3.0 or cue_factor > 1.0):
            base = 0.6 * factor  # a request, a decision or a constraint can matter without any value in it
        if values or base:
            scored.append((piece, base, tuple((v, w * factor) for v, w in values if w > 0)))
    return tuple(scored), tuple(names)


# ---------------------------------------------------------------- selection


def select_units(units: list[Unit], budget_chars: float, covered: set[str]) -> list[Unit]:
    """Greedy choice of units with the most not-yet-covered value per character,
    within ``budget_chars`` (bullet labels included).

    Lazy greedy: a unit's gain only shrinks as values get covered, so a popped
    unit whose recomputed gain still beats the next best one is the best pick.
    """
    covered = set(covered)
    latest: dict[str, Unit] = {}
    for unit in units:  # the same line said twice is worth one bullet, the later one
        if unit.text not in latest or unit.order > latest[unit.text].order:
            latest[unit.text] = unit
    units = list(latest.values())

    def gain(unit: Unit) -> float:
        return unit.base + sum(w for v, w in unit.values if v not in covered)

    heap = [(-gain(u) / u.cost, i) for i, u in enumerate(units)]
    heapq.heapify(heap)
    chosen: list[Unit] = []
    bullets: set[tuple[int, str]] = set()
    spent = 0.0
    while heap and spent < budget_chars:
        neg_density, i = heapq.heappop(heap)
        unit = units[i]
        density = gain(unit) / unit.cost
        if density < MIN_DENSITY:
            if -neg_density < MIN_DENSITY:
                break
            continue
        if heap and density < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-density, i))
            continue
        cost = unit.cost + (0 if (unit.order, unit.label) in bullets else BULLET_OVERHEAD_CHARS + len(unit.label))
        if spent + cost > budget_chars:
            continue  # too big for what is left; a smaller unit may still fit
        chosen.append(unit)
        bullets.add((unit.order, unit.label))
        spent += cost
        covered.update(v for v, _ in unit.values)
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

