"""Guards and features of a pair of analysed questions.

``guard_veto`` names the first hard conflict between two questions, or None.
A veto is final: no similarity overrides it. Vetoes are conflicts, not mere
differences: "python" on one side and "java" on the other (an entity swap),
two different numbers, "increase" against "decrease", a negation on one side
only, two terms that trade places ("convert miles to km" / "km to miles"), a
question that points at something outside the request ("this circuit", "the
second one") against one that does not, or with no earlier turns at all.

Words added or dropped are no veto: the calibrated decision
(``decision.py``) weighs them with the similarity, from ``pair_features``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .analysis import QueryAnalysis, deictic  # noqa: F401  (deictic: part of this module's API)
from .lexicon import _ANTONYM_PAIRS, SOFT_TERMS, SUBORDINATORS, stem

# x -> its opposites (stemmed both ways, as the analyser stems terms)
OPPOSITES: dict[str, set[str]] = {}
for _pair in _ANTONYM_PAIRS.split():
    _x, _y = _pair.split("/")
    for _p, _q in ((_x, _y), (_y, _x)):
        for _k in {_p, stem(_p)}:
            OPPOSITES.setdefault(_k, set()).update({_q, stem(_q)})

_FIRST_PERSON = frozenset("i me my mine myself we us our ours".split())
_SECOND_PERSON = frozenset("you your yours yourself".split())

def persons(a: QueryAnalysis) -> set[int]:
    return {1 if t in _FIRST_PERSON else 2 for t in a.soft if t in _FIRST_PERSON or t in _SECOND_PERSON}


def _sequence(a: QueryAnalysis) -> list[str]:
    # markers (to, from, than, vs...) stay: they give the terms around them their roles
    return [e for _, seq in a.segments for e in seq if e not in SOFT_TERMS]


def moved_blocks(a: QueryAnalysis, b: QueryAnalysis) -> tuple[int, bool]:
    """How many separate runs of shared terms are out of order between the
    two questions (after a longest common subsequence), and whether a
    negation is among them. One moved run is a rephrasing ("the question given
    below" / "the given below question"); two are terms trading places
    ("Indian women, Pakistani men" / "Pakistani women, Indian men")."""
    common = Counter(_sequence(a)) & Counter(_sequence(b))
    sa = [t for t in _sequence(a) if common[t]]
    sb = [t for t in _sequence(b) if common[t]]
    n, m = len(sa), len(sb)
    if n == 0 or sa == sb:
        return 0, False
    if _roles_swapped(sa, sb):
        return 2, False
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            lcs[i][j] = lcs[i + 1][j + 1] + 1 if sa[i] == sb[j] else max(lcs[i + 1][j], lcs[i][j + 1])
    i = j = 0
    kept: set[int] = set()
    while i < n and j < m:
        if sa[i] == sb[j]:
            kept.add(i)
            i, j = i + 1, j + 1
        elif lcs[i + 1][j] >= lcs[i][j + 1]:
            i += 1
        else:
            j += 1
    moved = [k for k in range(n) if k not in kept]
    blocks = sum(1 for k in moved if k - 1 not in moved)
    return blocks, any(sa[k].startswith("neg:") for k in moved)


def _roles_swapped(sa: list[str], sb: list[str]) -> bool:
    """Two terms that jump over a third one that stays between them: "the dog
    chases the cat" / "the cat chases the dog", "string to int" / "int to
    string", "10 minus 3" / "3 minus 10". A block of terms moving as a whole
    ("the question given below" / "the given below question") jumps over
    nothing that stays between. A repeated term counts at its first place on
    both sides ("read a file line by line in Python" / "Python: read a file
    line by line" moves one term, it swaps none)."""
    sa, sb = list(dict.fromkeys(sa)), list(dict.fromkeys(sb))
    pos_b = {t: i for i, t in enumerate(sb)}
    pos_a = {t: i for i, t in enumerate(sa)}
    terms = sa
    for x in range(len(terms)):
        for y in range(x + 1, len(terms)):
            s, t = terms[x], terms[y]
            (i, j), (k, l) = sorted((pos_a[s], pos_a[t])), sorted((pos_b[s], pos_b[t]))
            if (pos_a[s] < pos_a[t]) == (pos_b[s] < pos_b[t]):
                continue
            if any(k < pos_b[z] < l for z in sa[i + 1:j]):
                return True
    return False


_CLAUSE_LABELS = SUBORDINATORS | {"when"}  # "when" opens a clause as often as it asks a question


def _clause_changed(a: QueryAnalysis, b: QueryAnalysis) -> bool:
    """A shared term moved into or out of an "if / when / because..." clause:
    "when I run, my knee hurts" / "when my knee hurts, I run"."""
    def clause_of(x: QueryAnalysis) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for label, seq in x.segments:
            for t in seq:
                out.setdefault(t, label if label in _CLAUSE_LABELS else None)
        return out

    ca, cb = clause_of(a), clause_of(b)
    return any(ca[t] != cb[t] for t in ca.keys() & cb.keys() if not t.startswith("m:") and t not in SOFT_TERMS)


@dataclass(frozen=True)
class PairView:
    """What the guards and the features share: the terms each side has alone."""

    only_a: Counter
    only_b: Counter


def pair_view(a: QueryAnalysis, b: QueryAnalysis) -> PairView:
    ca, cb = Counter(a.hard), Counter(b.hard)
    return PairView(ca - cb, cb - ca)


SUBSTITUTE_MIN_COSINE = 0.5  # a word swapped for one less alike than this is another question


def guard_veto(a: QueryAnalysis, b: QueryAnalysis, *, has_history: bool = False, embedder=None) -> str | None:
    """The first hard conflict between ``a`` and ``b`` (symmetric), or None.
    ``has_history``: the request has earlier turns (both questions share
    them: the semantic layer compares only requests with the same context).
    With an ``embedder``, also a swapped word that is no near-synonym
    ("cat" for "dog"; "fix" for "repair" passes)."""
    if a.script != b.script or (a.language and b.language and a.language != b.language):
        return "language"
    if a.numbers != b.numbers and Counter(a.numbers) != Counter(b.numbers):
        return "number"
    if a.units != b.units and Counter(a.units) != Counter(b.units):
        return "unit"
    if a.operators != b.operators and Counter(a.operators) != Counter(b.operators):
        return "operator"
    if a.negations != b.negations:  # sorted
        return "negation"
    da, db = a.deictic, b.deictic
    if da != db or (da and not has_history):
        return "deixis"  # "this circuit" vs "a circuit"; or a referent the request does not carry
    if a.intents and b.intents and a.intents != b.intents:
        return "question_word"
    if a.tense != b.tense:
        return "tense"
    pa, pb = persons(a), persons(b)
    if pa and pb and pa != pb:
        return "pronoun"  # "how do I feel about X" != "how do you feel about X"
    view = pair_view(a, b)
    if any(OPPOSITES.get(x, set()) & set(view.only_b) for x in view.only_a):
        return "antonym"
    ents_a = [t for t in view.only_a if t in a.entities]
    ents_b = [t for t in view.only_b if t in b.entities]
    if ents_a and ents_b:
        return "entity"  # python vs java, Austria vs Australia
    if any(t.startswith("“") for t in (*view.only_a, *view.only_b)):
        return "quoted"  # quoted text and code are the object of the task: every character counts
    blocks, negation_moved = moved_blocks(a, b)
    if blocks >= 2 or negation_moved or _clause_changed(a, b):
        return "order"
    if embedder is not None and view.only_a and view.only_b and _unlike_swap(view, embedder):
        return "content"
    return None


def _unlike_swap(view: PairView, embedder) -> bool:
    """Does a term on one side have no near-synonym among the other side's own terms?"""
    for xs, ys in ((view.only_a, view.only_b), (view.only_b, view.only_a)):
        yvecs = [embedder.word(y)[0] for y in ys]
        for x in xs:
            vx = embedder.word(x)[0]
            if max(float(vx @ vy) for vy in yvecs) < SUBSTITUTE_MIN_COSINE:
                return True
    return False


# -- features of the calibrated decision ---------------------------------------

FEATURES = ("cos", "cos_terms", "overlap", "unmatched_max", "unmatched_min", "unmatched_word", "only_terms",
            "short_side", "entity_one_side", "question_word_one_side", "tense_one_side", "person_one_side",
            "moved", "same_terms", "one_term_differs", "same_soft")


def _unmatched_mass(xs: list[str], ys: list[str], embedder) -> tuple[float, float]:
    """Share of ``xs``' weight with no close word in ``ys`` (soft: a near
    synonym counts as partly there), and the largest single unmatched weight."""
    total = unmatched = worst = 0.0
    yvecs = [embedder.word(y)[0] for y in ys]
    yset = set(ys)
    for x in xs:
        vx, weight = embedder.word(x)
        if x in yset:
            best = 1.0
        else:
            best = max((float(vx @ vy) for vy in yvecs), default=0.0)
        missing = weight * (1.0 - max(0.0, min(1.0, best)))
        total += weight
        unmatched += missing
        worst = max(worst, missing)
    return (unmatched / total if total else 0.0), worst


def _content(a: QueryAnalysis) -> list[str]:
    return [t for t in a.hard if t[:2] not in ("u:", "op") and not t.startswith("“")]


def pair_features(a: QueryAnalysis, b: QueryAnalysis, va, vb, embedder) -> dict[str, float]:
    """The decision's inputs for one pair (``va``/``vb``: the texts' unit vectors)."""
    view = pair_view(a, b)
    ta, tb = _content(a), _content(b)
    ua, wa = _unmatched_mass(ta, tb, embedder)
    ub, wb = _unmatched_mass(tb, ta, embedder)
    terms_a = embedder.embed(" ".join(ta)) if ta else va
    terms_b = embedder.embed(" ".join(tb)) if tb else vb
    sa, sb = set(a.hard), set(b.hard)
    ents_a = any(t in a.entities for t in view.only_a)
    ents_b = any(t in b.entities for t in view.only_b)
    return {
        "cos": float(va @ vb),
        "cos_terms": float(terms_a @ terms_b),
        "overlap": len(sa & sb) / max(1, len(sa | sb)),
        "unmatched_max": max(ua, ub),
        "unmatched_min": min(ua, ub),
        "unmatched_word": max(wa, wb) / 20.0,  # word weights run to ~25
        "only_terms": float(min(6, sum(view.only_a.values()) + sum(view.only_b.values()))),
        "short_side": float(min(6, len(a.hard), len(b.hard))),
        "entity_one_side": float(ents_a != ents_b),
        "question_word_one_side": float(a.intents != b.intents),
        "tense_one_side": float(a.tense != b.tense),
        "person_one_side": float(persons(a) != persons(b)),
        "moved": float(moved_blocks(a, b)[0]),
        "same_terms": float(not view.only_a and not view.only_b and a.intents == b.intents),
        "one_term_differs": float(sum(view.only_a.values()) + sum(view.only_b.values()) == 1),
        "same_soft": float(a.soft == b.soft),
    }
