"""The question being answered now, and how fully a unit of text answers it.

The final user turn (or the current request of a tool loop) is split into
parts, one per question or clause; each part is its content words (crude
stems, identifiers split, a few synonym groups folded together) and the
kinds of value it asks for (who -> a name, which port -> a port, when -> a
date). A unit answers a part by sharing its rarer words and by carrying a
value of the kind asked for.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .facts import Unit

RELEVANCE_NORM = 5.0  # idf weight a question part needs (about one rare word) for a full match

_ASKS = re.compile(r"\?|(?i:\b(?:what|which|who|whom|whose|when|where|why|how|remind|tell me|list|recap|summari[sz]e)\b)")
# A question about the asker themselves: "what's my name?", "who am I?", "what name did I give you?"
_ASKS_OWN_NAME = re.compile(r"(?i)\bmy name\b|\bwho am i\b|\bname\b.*\b(?:i|me)\b|\b(?:i|me)\b.*\bname\b")

# What a question asks for (its words) -> the value kinds that answer it.
_ASKED_KINDS: dict[str, frozenset[str]] = {
    "who": frozenset({"name", "person", "email"}), "whom": frozenset({"name", "person", "email"}),
    "whose": frozenset({"name", "person"}), "name": frozenset({"name", "person", "ident", "const"}),
    "approv": frozenset({"name", "person"}), "owner": frozenset({"name", "person"}), "owns": frozenset({"name", "person"}),
    "contact": frozenset({"name", "person", "email"}), "respo": frozenset({"name", "person"}),
    "when": frozenset({"date", "time"}), "date": frozenset({"date"}), "day": frozenset({"date"}),
    "deadl": frozenset({"date"}), "sched": frozenset({"date", "time"}), "time": frozenset({"time"}),
    "port": frozenset({"port"}), "ip": frozenset({"ip"}), "addre": frozenset({"ip", "email", "host", "url"}),
    "host": frozenset({"host", "ip"}), "hostn": frozenset({"host"}), "server": frozenset({"host", "ip"}),
    "machi": frozenset({"host", "ip"}), "where": frozenset({"path", "url", "host", "ident"}),
    "path": frozenset({"path"}), "file": frozenset({"path"}), "direc": frozenset({"path"}), "folder": frozenset({"path"}),
    "url": frozenset({"url"}), "link": frozenset({"url"}), "page": frozenset({"url"}), "email": frozenset({"email"}),
    "mail": frozenset({"email"}), "versi": frozenset({"version", "number"}), "relea": frozenset({"version"}),
    "much": frozenset({"qty", "money", "number"}), "many": frozenset({"qty", "number"}),
    "limit": frozenset({"qty", "money", "number"}), "budge": frozenset({"money", "qty"}), "cost": frozenset({"money"}),
    "price": frozenset({"money"}), "ticket": frozenset({"ticket"}), "issue": frozenset({"ticket"}),
    "commit": frozenset({"hex"}), "sha": frozenset({"hex"}), "revis": frozenset({"hex", "version"}),
    "id": frozenset({"ident", "number", "hex", "uuid", "ticket"}), "ident": frozenset({"ident", "number", "uuid"}),
    "region": frozenset({"ident"}), "varia": frozenset({"const"}), "envir": frozenset({"const"}),
    "key": frozenset({"const"}), "called": frozenset({"ident", "name", "capword", "const"}),
    "decid": frozenset({"decision"}), "decis": frozenset({"decision"}), "choos": frozenset({"decision"}),
    "chose": frozenset({"decision"}), "pick": frozenset({"decision"}), "settl": frozenset({"decision"}),
    "instea": frozenset({"decision"}), "option": frozenset({"decision"}),
}

# ---------------------------------------------------------------- words (for matching questions)

_STEM_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+")
_STOPWORDS = frozenset(
    """the a an and or of to in on at by for from with without into onto over under about as is are was were be been
    being am do does did done doing have has had having it its it's this that these those there here then than so
    such what which who whom whose when where why how me my mine we our ours us you your yours they them their i
    he she his her him can could would should will shall may might must not no yes also again please just only
    any some all each every one two use used using uses make made get got set let lets tell remind know said say
    ok okay thanks thank quick last thing things before after now still out up down off too very much more most
    other another same new old way back want need needs like well right sure did didn don doesn isn aren wasn
    answer answers question questions conversation discussed covered today session help note remember check
    confirm details detail again while during also""".split()
)


def _stem(word: str) -> str:
    """A crude, language-agnostic stem: lower case, the first five letters of
    longer words ("approval", "approves", "approver" -> "appro")."""
    word = word.lower()
    if word.isdigit():
        return word
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:5] if len(word) > 5 else word


# Words that ask for the same thing in a question and state it in an answer
# ("who signs off?" / "approval comes from"): general English and operations
# vocabulary, each group folded onto one stem.
_SYNONYM_GROUPS = (
    "approve approval approver approves approved sign signs signed signoff sign-off",
    "owner owns own owned responsible maintainer maintains",
    "contact reach talk ask",
    "database databases db postgres postgresql mysql",
    "host hostname hostnames server servers machine machines box",
    "address addresses ip",
    "link links url urls page dashboard",
    "email emails mail mailbox inbox",
    "ticket tickets issue issues jira",
    "date dates day schedule scheduled planned",
    "limit limits cap capped ceiling max maximum quota threshold",
    "decide decided decision choose chose chosen pick picked settle settled select selected opted",
    "version versions release releases pin pinned",
    "path location directory folder dir",
    "name named called",
    "region zone",
    "commit commits sha revision hash",
    "credential credentials secret secrets token tokens",
    "cost costs price budget spend",
)
_SYNONYM = {_stem(word): group.split()[0][:5] for group in _SYNONYM_GROUPS for word in group.split()}


_STEM_OF: dict[str, str] = {}  # word -> its stem ("" for a stopword); words recur far more than they vary


def stems_of(text: str) -> frozenset[str]:
    """Content-word stems of ``text``; identifiers are split (admin_api_port -> admin, api, port)."""
    out = set()
    for w in _STEM_WORD.findall(text):
        stem = _STEM_OF.get(w)
        if stem is None:
            stem = "" if (len(w) < 2 and not w.isdigit()) or w.lower() in _STOPWORDS else _stem(w)
            stem = _SYNONYM.get(stem, stem)
            if len(_STEM_OF) < 200_000:
                _STEM_OF[w] = stem
        if stem:
            out.add(stem)
    return frozenset(out)


class Question:
    """What the turn being answered now asks about: one part per question
    (or clause) of the final user turn, each a set of word stems and the
    kinds of value it asks for. ``scores(unit)`` says how fully the unit
    answers each part (0 to 1); words of a unit's context (the sentence
    before a command) count half."""

    def __init__(self, text: str):
        self.parts: list[tuple[frozenset[str], frozenset[str]]] = []
        self.questions: set[int] = set()  # parts that come from a question (they can be answered)
        for sentence in re.finditer(r"[^?\n;.!]+(?:[?.!;]+|\n|$)", text or ""):
            is_question = bool(_ASKS.search(sentence.group(0)))
            for part in re.split(r",\s+(?:and\s+)?|\band\b", sentence.group(0)):
                words = [w.lower() for w in _STEM_WORD.findall(part)]
                stems = stems_of(part)
                asked: set[str] = set()
                for w in words:
                    for probe in (w, w[:5], w[:6]):
                        asked |= _ASKED_KINDS.get(probe, frozenset())
                if _ASKS_OWN_NAME.search(part):
                    asked.add("self")
                if stems or asked:
                    if is_question:
                        self.questions.add(len(self.parts))
                    self.parts.append((stems, frozenset(asked)))
        self.stems = frozenset().union(*(p[0] for p in self.parts)) if self.parts else frozenset()
        # a request for information ("which port...?", "remind me of..."), not "continue"
        self.asks = bool(self.parts) and bool(_ASKS.search(text or ""))
        self.idf: dict[str, float] = {}
        self._totals: list[float] = []
        self._parts_of: dict[str, list[int]] = {}
        self._asking: list[tuple[int, frozenset[str]]] = []
        self._cache: dict[tuple, list[tuple[int, float]]] = {}

    def __bool__(self) -> bool:
        return bool(self.parts)

    def fit_idf(self, units: list[Unit]) -> None:
        """Weigh the question's words by how rare they are among ``units`` (once
        per pruning call: the units of the whole history)."""
        df: Counter = Counter()
        for unit in units:
            df.update((unit.stems | unit.context) & self.stems)
        n = len(units) + 1
        self.idf = {s: math.log(1 + n / (1 + df[s])) for s in self.stems}
        self._totals = [max(sum(self.idf[s] for s in stems), RELEVANCE_NORM) for stems, _ in self.parts]
        self._parts_of: dict[str, list[int]] = {}
        for index, (stems, _) in enumerate(self.parts):
            for stem in stems:
                self._parts_of.setdefault(stem, []).append(index)
        self._asking = [(index, asked) for index, (_, asked) in enumerate(self.parts) if asked]
        self._cache: dict[tuple, list[tuple[int, float]]] = {}

    def scores(self, unit: Unit) -> list[tuple[int, float]]:
        """(part, how fully the unit answers it) for the parts it answers at all."""
        if not self.idf and self.stems:
            self.fit_idf([unit])
        key = (unit.stems, unit.context, unit.kinds)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        matched: dict[int, float] = {}
        own = unit.stems & self.stems
        for stem in own:
            for index in self._parts_of[stem]:
                matched[index] = matched.get(index, 0.0) + self.idf[stem]
        for stem in (unit.context & self.stems) - own:
            for index in self._parts_of[stem]:
                matched[index] = matched.get(index, 0.0) + 0.5 * self.idf[stem]
        kind_of = {}
        for index, asked in self._asking:
            if "self" in asked and "self" in unit.kinds:
                kind_of[index] = 2.0  # "what's my name?" and "I'm Dana"
            elif asked & unit.kinds:
                kind_of[index] = 1.0
        out = []
        for index in set(matched) | set(kind_of):
            kind = kind_of.get(index, 0.0)
            if kind == 2.0:
                out.append((index, 1.0))
                continue
            # A part asking with one common word ("the name") is matched by every
            # unit holding it: a match counts by how rare its words are, not only how many.
            share = matched.get(index, 0.0) / self._totals[index]
            score = share * (0.7 + 0.3 * kind) + 0.15 * kind if share else (0.3 * kind if not self.parts[index][0] else 0.0)
            if score > 0:
                out.append((index, min(1.0, score)))
        self._cache[key] = out
        return out

    def relevance(self, unit: Unit) -> float:
        return max((score for _, score in self.scores(unit)), default=0.0)
