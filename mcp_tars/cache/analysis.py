"""Question analysis: what a question means, as far as matching needs to
know (case and whitespace folded, question framing dropped, numbers, units,
operators, negations, tense, entities and word order kept)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .lexicon import (
    FILLERS, FRAMES, FUTURE, LANGUAGE_PROFILES, MARKERS, NEGATIONS,
    NUMBER_WORDS, OPERATORS, ORDINALS, PAST, PERSONAL_VERBS, QUESTION_WORDS,
    SOFT_TERMS, STOPWORDS, SUBORDINATORS, SYNONYMS, TECH_NAMES, TOPIC_PREPOSITIONS,
    UNITS, WORD_OPERATORS, _APOSTROPHELESS, _CURRENCY_SIGNS, _MAX_FRAME, _STEMMED_CLOSED,
    _UNIT_ONLY_AFTER_NUMBER, stem,
)


_CONTRACTIONS = [
    (re.compile(r"\bwon[’']t\b", re.I), "will not"),
    (re.compile(r"\bcan[’']t\b", re.I), "can not"),
    (re.compile(r"\bshan[’']t\b", re.I), "shall not"),
    (re.compile(r"\bain[’']t\b", re.I), "is not"),
    (re.compile(r"\bcannot\b", re.I), "can not"),
    (re.compile(r"n[’']t\b", re.I), " not"),
    (re.compile(r"\b(what|who|where|when|why|how|that|there|here|it|he|she)[’']s\b", re.I), r"\1 is"),
    (re.compile(r"\blet[’']s\b", re.I), "let us"),
    (re.compile(r"(?<=[a-z])[’']re\b", re.I), " are"),
    (re.compile(r"(?<=[a-z])[’']ll\b", re.I), " will"),
    (re.compile(r"(?<=[a-z])[’']ve\b", re.I), " have"),
    (re.compile(r"\bi[’']m\b", re.I), "i am"),
    (re.compile(r"(?<=[a-z])[’']d\b", re.I), " would"),
    (re.compile(r"(?<=\w)[’']s\b"), ""),  # possessive: France's capital -> France capital
]

_TOKEN_RE = re.compile(
    r"""
      (?P<fence>```.*?(?:```|$))
    | (?P<code>`[^`\n]+`)
    | (?P<quote>"[^"\n]{1,500}"|“[^”\n]{1,500}”|(?<!\w)'[^'\n]{1,500}'(?!\w))
    | (?P<deg>°\s?[cCfF]\b)
    | (?P<num>(?:(?<![\w.)\]])-)?[$€£¥₹]?\d+(?:,\d{3})*(?:\.\d+)?(?:°[cCfF]|[^\W\d_]+|%)?)
    | (?P<word>\.?[^\W_](?:\w|(?:[./\-]|::)(?=[^\W_])|_)*(?:\+\+|\#|\+(?!\w))?)
    | (?P<op>\*\*|<=|>=|!=|[+\-−*/^=<>%×÷≠≤≥√°])
    | (?P<punct>[,;:?!.()\[\]{}"…—–]|\n)
    """,
    re.X | re.S,
)
_CAMEL = re.compile(r"[a-z][A-Z]")
_ROMAN = re.compile(r"(?=[IVX]{2,}$)X{0,3}(?:IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10}


def _roman_value(numeral: str) -> int:
    total = 0
    for i, ch in enumerate(numeral):
        v = _ROMAN_VALUES[ch]
        total += -v if i + 1 < len(numeral) and _ROMAN_VALUES[numeral[i + 1]] > v else v
    return total


_SCRIPTS = (
    ("latin", re.compile(r"[A-Za-zÀ-ɏ]")), ("cyrillic", re.compile(r"[Ѐ-ӿ]")),
    ("greek", re.compile(r"[Ͱ-Ͽ]")), ("arabic", re.compile(r"[؀-ۿ]")),
    ("hebrew", re.compile(r"[֐-׿]")), ("devanagari", re.compile(r"[ऀ-ॿ]")),
    ("thai", re.compile(r"[฀-๿]")), ("hangul", re.compile(r"[가-힯ᄀ-ᇿ]")),
    ("kana", re.compile(r"[぀-ヿ]")), ("han", re.compile(r"[一-鿿]")),
)


# Words that point at something the question itself does not say: a
# demonstrative before a noun, "the above/below/following", "the second one".
_DEIXIS = re.compile(
    r"\b(?:this|these|that|those)\s+(?!is\b|are\b|was\b|were\b|means?\b|way\b|much\b|many\b|kind\b|sort\b|type\b)[a-z]\w*"
    r"|\b(?:the\s+)?(?:above|below|following|attached|aforementioned|previous|latter|former)\b"
    r"|\bthe\s+(?:first|second|third|fourth|fifth|last|next|other|same)\s+(?:one|ones|option|item|step|point|example)\b"
    r"|\b(?:what|how)\s+about\s+(?:it|that|this|them|those|these)\b"
    r"|^\s*(?:and|but|so|also|then)\b"
    r"|\b(?:explain|fix|rewrite|summari[sz]e|translate|improve|review|shorten|simplify|debug)\s+(?:it|this|that|them)\b",
    re.I,
)


def deictic(text: str) -> bool:
    """Does the question point at something it does not contain?"""
    return bool(_DEIXIS.search(text))


@dataclass(frozen=True)
class _Tok:
    kind: str  # word | num | unit | op | punct | code (code spans and quoted text, kept verbatim)
    value: str  # normalised
    raw: str
    entity: bool = False


@dataclass(frozen=True)
class QueryAnalysis:
    """What a question means, as far as matching needs to know."""

    text: str
    hard: tuple[str, ...]  # meaning-bearing terms (sorted): content words, numbers, units, operators, code
    soft: tuple[str, ...]  # pronouns and modals (sorted): they count less (SOFT_TERMS)
    numbers: tuple[str, ...]  # in order
    units: tuple[str, ...]  # in order
    operators: tuple[str, ...]  # in order
    negations: tuple[str, ...]  # sorted
    tense: tuple[str, ...]  # sorted: past / future markers
    intents: tuple[str, ...]  # sorted question words (how, why, who...)
    entities: frozenset[str]  # terms that are names, identifiers or closed-class words
    segments: tuple[tuple[str | None, tuple[str, ...]], ...]  # word order, for the order guard
    script: str | None
    language: str | None
    deictic: bool = False  # points at something it does not contain ("this circuit"): see ``deictic``


def _script_of(text: str) -> str | None:
    counts = Counter()
    for name, pattern in _SCRIPTS:
        n = len(pattern.findall(text))
        if n:
            counts[name] = n
    if not counts:
        return None
    if "kana" in counts:  # Japanese mixes kana and han
        return "kana"
    return counts.most_common(1)[0][0]


def _language_of(words: list[str]) -> str | None:
    scores = {lang: sum(1 for w in words if w in profile) for lang, profile in LANGUAGE_PROFILES.items()}
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= 2 and top > second:
        return best
    return None


def _tokenize(text: str) -> list[_Tok]:
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    if _CODE_CHARS.search(text):
        text = _CHUNK.sub(_quote_compact_code, text)
    if "'" in text or "annot" in text.lower():
        for pattern, repl in _CONTRACTIONS:
            text = pattern.sub(repl, text)
    toks: list[_Tok] = []
    sentence_start = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        raw = m.group()
        if kind in ("fence", "code"):
            inner = raw.strip("`")
            for w in re.findall(r"[^\W\d_][\w.]*|\d+(?:\.\d+)?|[^\w\s]", inner):
                toks.append(_Tok("code", w, w, True))
            sentence_start = False
            continue
        if kind == "quote":
            # quoted text is the object of the task (translate it, correct it): every word counts
            toks.append(_Tok("code", "“" + " ".join(raw[1:-1].split()) + "”", raw, True))
            sentence_start = False
            continue
        if kind == "punct":
            toks.append(_Tok("punct", raw, raw))
            sentence_start = raw in ".?!;:\n"
            continue
        if kind == "deg":
            toks.append(_Tok("unit", UNITS["°" + raw[-1].casefold()], raw))
            continue
        if kind == "op":
            prev = toks[-1] if toks else None
            if raw == "%" and prev is not None and prev.kind == "num":
                toks.append(_Tok("unit", "percent", raw))
            elif raw in "-–" and (prev is None or prev.kind != "num"):
                toks.append(_Tok("punct", raw, raw))  # "inflation - what is it?": a dash, not a minus
                sentence_start = True
            else:
                toks.append(_Tok("op", OPERATORS.get(raw, raw), raw))
            continue
        if kind == "num":
            toks.extend(_number_tokens(raw))
            sentence_start = False
            continue
        # a word
        lower = raw.casefold()
        keep_case = "_" in raw or bool(_CAMEL.search(raw))
        value = raw if keep_case else lower
        entity = keep_case or ("." in raw.strip(".") and not raw.endswith(".")) or "::" in raw
        if raw[:1].isupper() and not sentence_start and lower != "i" and len(raw) > 1:
            entity = True
        if len(raw) >= 2 and raw.isupper() and raw.isalpha():
            entity = True  # acronym
        if _ROMAN.fullmatch(raw):
            toks.append(_Tok("num", str(_roman_value(raw)), raw))  # World War II = World War 2
            sentence_start = False
            continue
        if re.fullmatch(r"[A-Z]{2,}s", raw):
            value, entity = lower[:-1], True  # APIs = API
        if lower in _APOSTROPHELESS:
            for w in _APOSTROPHELESS[lower].split():
                toks.append(_Tok("word", w, w))
        elif "-" in value and not keep_case and value.replace("-", "").isalpha() and value not in SYNONYMS:
            toks.append(_Tok("word", value.replace("-", ""), raw, entity))
        else:
            toks.append(_Tok("word", value, raw, entity))
        sentence_start = False
    if len(toks) > 3 and sum(t.raw.isupper() for t in toks if t.kind == "word") > 0.6 * sum(
        t.kind == "word" for t in toks
    ):
        # SHOUTED TEXT: capitals say nothing about names
        toks = [_Tok(t.kind, t.value, t.raw, t.kind == "code") for t in toks]
    return toks


_CODE_CHARS = re.compile(r"[\[\](){}=<>:`]")
_CHUNK = re.compile(r"```.*?(?:```|$)|`[^`\n]+`|[^\s`]+", re.S)
_SIMPLE_PARENTHESIS = re.compile(r"\([\w'-]+\)")


def _quote_compact_code(m: re.Match) -> str:
    """Backquote unspaced code written as prose (a[1:], f(x), x==5, (2+3)*4,
    std::vector, URLs): its brackets and signs are its meaning."""
    chunk = m.group()
    if chunk.startswith("`"):
        return chunk
    core = chunk.strip(".,!?;:'\"")
    if not core or _SIMPLE_PARENTHESIS.fullmatch(core):
        return chunk
    paired = any(o in core and c in core for o, c in ("[]", "()", "{}"))
    if paired or re.search(r"\w\s*(?:[=<>!]=?|::?|->)\s*[\w\"'(\[-]", core):
        return chunk.replace(core, f"`{core}`", 1)
    return chunk


def _number_tokens(raw: str) -> list[_Tok]:
    out: list[_Tok] = []
    sign = ""
    if raw.startswith("-"):
        sign, raw = "-", raw[1:]
    currency = None
    if raw[0] in _CURRENCY_SIGNS:
        currency, raw = _CURRENCY_SIGNS[raw[0]], raw[1:]
    m = re.match(r"(\d+(?:,\d{3})*(?:\.\d+)?)(.*)", raw)
    digits, suffix = sign + m.group(1).replace(",", ""), m.group(2).casefold()
    if currency:
        out.append(_Tok("unit", currency, "$"))
    if suffix in ("st", "nd", "rd", "th"):
        out.append(_Tok("num", digits + "th", raw))
    elif suffix == "s" and len(digits) == 4:
        out.append(_Tok("num", digits + "s", raw))  # the 1990s
    elif suffix in UNITS or suffix in ("°c", "°f"):
        out.append(_Tok("num", digits, raw))
        out.append(_Tok("unit", UNITS.get(suffix, suffix), suffix))
    elif suffix:
        out.append(_Tok("num", digits + suffix, raw))  # 3d, 4k, 2x: keep as written
    else:
        out.append(_Tok("num", digits, raw))
    return out


def _clauses(toks: list[_Tok]) -> list[list[_Tok]]:
    clauses, cur = [], []
    for t in toks:
        if t.kind == "punct":
            if cur:
                clauses.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        clauses.append(cur)
    return clauses


def _strip_frames(clause: list[_Tok]) -> tuple[list[_Tok], list[str], str | None]:
    """Drop question framing at the start (and politeness at the end) of a
    clause. Returns what is left, the question words the framing stood for,
    and the asker's pronoun a "how do I / how do you" frame carried."""
    intents: list[str] = []
    pronoun: str | None = None
    words = [t.value if t.kind == "word" else None for t in clause]
    i = 0
    stripped_lead = False
    while i < len(clause):
        if words[i] in FILLERS:
            i += 1
            continue
        if words[i] == "what" and i + 1 < len(words) and words[i + 1] in ("does", "do") and words[-1] in ("mean", "means"):
            i += 2  # "what does X mean" = "what is X"
            stripped_lead = True
            continue
        for n in range(min(_MAX_FRAME, len(clause) - i), 0, -1):
            key = tuple(words[i : i + n])
            if None not in key and key in FRAMES:
                if FRAMES[key]:
                    intents.append(FRAMES[key])
                    if key[-1] in SOFT_TERMS and pronoun is None:
                        pronoun = key[-1]
                i += n
                stripped_lead = True
                break
        else:
            break
    rest = clause[i:]
    if pronoun and not (rest and rest[0].value in PERSONAL_VERBS):
        pronoun = None  # the generic "you" of "how do you boil an egg" = "how do I boil an egg"
    while rest:  # trailing politeness, and the "is" of "what machine learning is"
        tail = tuple(t.value for t in rest[-2:] if t.kind == "word")
        if tail[-2:] in (("for", "me"), ("thank", "you"), ("to", "me")) and len(rest) > 2:
            rest = rest[:-2]
        elif rest[-1].kind == "word" and (
            rest[-1].value in FILLERS
            or (stripped_lead and rest[-1].value in ("mean", "means", "is", "are", "like") and len(rest) > 1)
        ):
            rest = rest[:-1]
        else:
            break
    return rest, intents, pronoun


class _Analyser:
    """Walks the tokens of one question clause by clause, collecting terms,
    guard features and the word order (segments)."""

    def __init__(self) -> None:
        self.hard: list[str] = []
        self.soft: list[str] = []
        self.numbers: list[str] = []
        self.units: list[str] = []
        self.operators: list[str] = []
        self.negations: list[str] = []
        self.tense: list[str] = []
        self.intents: list[str] = []
        self.entities: set[str] = set()
        self.segments: list[tuple[str | None, tuple[str, ...]]] = []
        self.language_words: list[str] = []
        self._label: str | None = None
        self._seq: list[str] = []

    # Segments: runs of words between punctuation, question words,
    # subordinators and topic prepositions, labelled by what opened them.
    def _close(self, next_label: str | None = None) -> None:
        if self._seq:
            self.segments.append((self._label, tuple(self._seq)))
        self._seq, self._label = [], next_label

    def _add(self, term: str, *, soft: bool = False) -> None:
        (self.soft if soft else self.hard).append(term)
        self._seq.append(term)

    def clause(self, clause: list[_Tok]) -> None:
        self.language_words.extend(t.value for t in clause if t.kind == "word")
        clause, frame_intents, kept_pronoun = _strip_frames(clause)
        self.intents.extend(frame_intents)
        self._close(frame_intents[0] if frame_intents else None)
        if kept_pronoun:  # "how do I" keeps its "I": "how do I feel" != "how do you feel"
            self._add(kept_pronoun, soft=True)
        segments_before = len(self.segments)
        for idx, t in enumerate(clause):
            prev = clause[idx - 1] if idx else None
            nxt = clause[idx + 1] if idx + 1 < len(clause) else None
            self._token(t, prev, nxt, last=idx == len(clause) - 1)
        label, had_words = self._label, bool(self._seq)
        self._close()
        if label and not had_words and len(self.segments) == segments_before and self.segments:
            # "python: reverse a list, how?": a lone question word labels what came before it
            prev_label, prev_seq = self.segments[-1]
            if prev_label is None:
                self.segments[-1] = (label, prev_seq)

    def _token(self, t: _Tok, prev: _Tok | None, nxt: _Tok | None, *, last: bool) -> None:
        if t.kind == "num":
            self.numbers.append(t.value)
            self._add(t.value)
            return
        if t.kind == "unit":
            self.units.append(t.value)
            self._add("u:" + t.value)
            return
        if t.kind == "op":
            self.operators.append(t.value)
            self._add("op:" + t.value)
            return
        if t.kind == "code":
            self.entities.add(t.value)
            self._add(t.value)
            return
        w = SYNONYMS.get(t.value, t.value)
        if w in FILLERS:
            return
        after_number = prev is not None and prev.kind == "num"
        if w in WORD_OPERATORS and after_number and (
            w in ("squared", "cubed") or (nxt is not None and (nxt.kind == "num" or nxt.value == "by"))
        ):
            self.operators.append(WORD_OPERATORS[w])
            self._add("op:" + WORD_OPERATORS[w])
            return
        if w == "x" and after_number and nxt is not None and nxt.kind == "num":
            self.operators.append("*")
            self._add("op:*")
            return
        if w == "by" and prev is not None and prev.value in ("divided", "multiplied"):
            return
        if w in QUESTION_WORDS:
            self.intents.append(QUESTION_WORDS[w])
            self._close(QUESTION_WORDS[w])
            return
        if w in SUBORDINATORS:
            self._close(w)
            return
        if w in NEGATIONS:
            self.negations.append(NEGATIONS[w])
            self._seq.append("neg:" + NEGATIONS[w])
            return
        if w in PAST or w in FUTURE:
            self.tense.append("past" if w in PAST else "future")
        if w in ("do", "does", "did") and last:
            self._add("do")  # "what does a CPU do" is not "what is a CPU"
            return
        if w in PAST or w in FUTURE:
            return
        if w in TOPIC_PREPOSITIONS:
            self._close(w)
            return
        if w in MARKERS:
            self._seq.append("m:" + MARKERS[w])
            return
        if w in STOPWORDS and not (t.entity and t.raw.isupper()):  # "IT" the field is not "it"
            return
        if w in NUMBER_WORDS and not (w == "one" and nxt is not None and nxt.value == "of"):
            self.numbers.append(NUMBER_WORDS[w])
            self._add(NUMBER_WORDS[w])
            return
        if w in ORDINALS and not (w == "second" and after_number):
            self.numbers.append(ORDINALS[w])
            self._add(ORDINALS[w])
            return
        if w in UNITS and (w not in _UNIT_ONLY_AFTER_NUMBER or after_number):
            self.units.append(UNITS[w])
            self._add("u:" + UNITS[w])
            return
        if w in SOFT_TERMS:
            self._add(w, soft=True)
            return
        named = t.entity or w in TECH_NAMES
        term = w if named or not w.isalpha() else stem(w)
        if named or term in _STEMMED_CLOSED:
            self.entities.add(term)
        self._add(term)


@lru_cache(maxsize=4096)
def analyse(text: str) -> QueryAnalysis:
    """Analyse one question (pure, cached)."""
    an = _Analyser()
    for clause in _clauses(_tokenize(text)):
        an.clause(clause)
    return QueryAnalysis(
        text=text,
        hard=tuple(sorted(an.hard)),
        soft=tuple(sorted(an.soft)),
        numbers=tuple(an.numbers),
        units=tuple(an.units),
        operators=tuple(an.operators),
        negations=tuple(sorted(an.negations)),
        tense=tuple(sorted(an.tense)),
        intents=tuple(sorted(set(an.intents))),
        entities=frozenset(an.entities),
        segments=tuple(an.segments),
        script=_script_of(text),
        language=_language_of(an.language_words),
        deictic=deictic(text),
    )


def signature(analysis: QueryAnalysis) -> str:
    """The meaning-bearing terms as one string: two questions the lexical
    scorer can match have the same signature (an index key, not a guard)."""
    return " ".join(("?" + i for i in analysis.intents)) + "|" + " ".join(analysis.hard)


# -- stored analyses -------------------------------------------------------------
#
# A cached question is analysed once, when its answer is stored, and the
# analysis is kept with the entry (``response_cache.query_analysis``): a
# lookup then analyses only the new question, not its 4 candidates again
# (about 0.35 ms each). The stamp is a hash of the analyser and its word
# lists, so an entry analysed by another version of the code is analysed
# afresh instead of being trusted.

def _analyser_stamp() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("analysis.py", "lexicon.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # no readable source (a frozen install): never trust a stored analysis
            return "unreadable"
    return digest.hexdigest()[:16]


ANALYSER_STAMP = _analyser_stamp()
_TUPLE_FIELDS = ("hard", "soft", "numbers", "units", "operators", "negations", "tense", "intents")


def analysis_json(a: QueryAnalysis) -> str:
    """``a`` as the JSON text stored with a cached question (its text is stored apart)."""
    data: dict = {"stamp": ANALYSER_STAMP, **{f: list(getattr(a, f)) for f in _TUPLE_FIELDS}}
    data["entities"] = sorted(a.entities)
    data["segments"] = [[label, list(seq)] for label, seq in a.segments]
    data["script"], data["language"], data["deictic"] = a.script, a.language, a.deictic
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def stored_analysis(text: str, stored: str | None) -> QueryAnalysis:
    """The analysis of a cached question: the stored one when this analyser
    wrote it, else a fresh one."""
    if stored:
        try:
            data = json.loads(stored)
            if data.get("stamp") == ANALYSER_STAMP:
                return QueryAnalysis(
                    text=text,
                    **{f: tuple(data[f]) for f in _TUPLE_FIELDS},
                    entities=frozenset(data["entities"]),
                    segments=tuple((label, tuple(seq)) for label, seq in data["segments"]),
                    script=data["script"], language=data["language"], deictic=bool(data["deictic"]),
                )
        except (ValueError, KeyError, TypeError):
            pass  # damaged or foreign: analyse again
    return analyse(text)
