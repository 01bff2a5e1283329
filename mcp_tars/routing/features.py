"""What the router reads from a request: named signals and the words of the ask.

``extract(messages, system, tools)`` returns :class:`Features`, a pure function
of the request:

* ``values``: named signals, each scaled to about 0..1 (how long the ask is,
  how many numbers and questions it holds, whether code or an error log is
  pasted, which kind of task verb leads the ask, multiple-choice options...);
* ``terms``: the ask's words and word pairs (``w:prime``, ``b:prime number``,
  ``lead:translate``), the small local text representation the fitted model
  has a weight for (most terms have none and cost nothing);
* ``agent``: whether the request is an agent's tool loop (tools offered, or
  tool calls in the conversation). The fitted model never sees this: no
  outcome data covers agent turns, so the decision (decision.py) handles
  them by rule.

The *ask* is the instruction of the user turn that states the task: pasted
material (code, logs, documents, data) is set apart, so a long essay followed
by "fix the typos" reads as a light edit, and a tool-loop turn or a short
"continue" reads as the task that started it.

Everything here is bounded: signals are read from a window at the head and
tail of huge texts, so a 500K-token conversation costs about what a long
prompt does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_I = re.IGNORECASE

# --------------------------------------------------------------------------- word families
#
# Stems of task verbs and vocabulary, grouped in families. A family is one named
# feature whose weight is fitted (bench/fit_router.py); the stems only say which
# words belong together. A stem matches any word it starts; "=" marks a word
# that must match exactly.

_FAMILIES: dict[str, str] = {
    # task verbs, heaviest first
    "expert": "prove proof proofs= disprov derive derivation rigorous formally theorem lemma corollary undecidab "
              "np-hard np-complete asymptotic byzantine linearizab tla+ invariant novel exploit vulnerab threat",
    "complex": "debug troubleshoot diagnos refactor optimi implement architect design migrat review analy assess "
               "evaluat critique tradeoff tradeoffs= trade-off investigat benchmark profil restructur fix= fixes= "
               "fixing decompos reorganis reorganiz patch",
    "reasoning": "explain explanation why= compare comparison contrast teach pros= cons= difference differences= "
                 "recommend advice advise interpret strateg understand",
    "generate": "write writing create generat draft compose outline plan brainstorm suggest describe build make add= "
                "setup configure install calculate compute solve estimat show give",
    "light": "typo spelling grammar proofread punctuation rephrase reword paraphras translat summar tldr recap shorten "
             "condense simplif reformat format capitali lowercase uppercase alphabeti sort= extract list= count= "
             "classif categori label= tag= sentiment define definition meaning synonym antonym rhyme spell rename "
             "remind convert correct",
    "question": "what= who= when= where= which= is= are= was= were= does= do= did= can= could= would= will= should= "
                "how= whom= whose=",
    # what the task is about
    "symptom": "bug bugs= crash leak leaks= leaking deadlock flaky flakiness failing fails= broken timeout timeouts= "
               "slow slower bottleneck outage incident error errors= exception traceback stacktrace oom "
               "intermittent sporadic",
    "hard_domain": "race= mutex lock-free atomic concurren thread-safe semaphore goroutine consensus partition replica "
                   "raft= paxos shard multi-region idempoten exactly-once two-phase crdt injection xss= csrf ssrf "
                   "privilege cryptograph side-channel sandbox overflow use-after-free kernel syscall allocator "
                   "compiler latency p99= mvcc complexity amortized backtracking gradient backprop transformer "
                   "overfit regulari quantum thermodynam entropy lagrangian pharmacokinet jurisdiction statute tort= "
                   "precedent constitutional fiduciary negligence distributed",
    "tech": "api= apis= database server docker kubernetes k8s= http json yaml async thread cache index regex git= "
            "ci= deploy aws= gcp= azure s3= lambda schema query endpoint memory cpu= network dns= tcp= tls= ssl= "
            "socket microservice container terraform nginx react typescript python rust= golang go= java= node "
            "webpack orm= transaction queue oauth jwt= webhook algorithm recursion pointer struct interface "
            "callback promise grpc graphql django flask fastapi jvm= etl= spark warehouse throughput backend "
            "frontend encrypt certificate cluster pod= pods= helm= heap disk logs= repo= repository codebase "
            "elasticsearch websocket middleware cron daemon config sql= postgres mysql sqlite redis kafka "
            "rabbitmq celery",
    "maths": "derivative differentiat integral probabilit variance deviation distribution matri eigen polynomial "
             "quadratic logarithm exponential combinator permutation binomial equation equations= inequalit "
             "geometr trigonometr sin= cos= tan= modular modulo congruen prime primes= factori divisib remainder "
             "digits= sum= ratio= ratios= percent fraction integer converge diverge series= sequence= recurrence",
    "constraint": "must= without only= exactly ensure guarantee never= preserv backward deterministic bounded keep= "
                  "limit= limits=",
    "long_output": "detailed comprehensive thorough in-depth step-by-step complete full= production-ready essay report "
                   "tutorial documentation tests= specification",
    "short_output": "briefly brief= quick quickly one-word one-line one-sentence nutshell",
}
_PHRASES: dict[str, str] = {
    # word pairs that mean more than their words
    "show that": "expert", "lower bound": "expert", "tight bound": "expert", "threat model": "expert",
    "security audit": "expert", "formal proof": "expert", "memory ordering": "expert", "if and": "expert",
    "root cause": "complex", "race condition": "hard_domain", "race conditions": "hard_domain",
    "step by": "long_output", "one word": "short_output", "one sentence": "short_output", "one line": "short_output",
    "yes or": "short_output", "short answer": "short_output", "no explanation": "short_output",
    "at most": "constraint", "at least": "constraint", "no more": "constraint", "make sure": "constraint",
    "how many": "question", "how much": "question", "walk me": "reasoning", "pros and": "reasoning",
    "should i": "reasoning", "should we": "reasoning", "what would": "reasoning",
}
FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
# families whose first word in the ask names the task ("Translate ...", "Prove ...", "Is ...?")
LEAD_FAMILIES: tuple[str, ...] = ("expert", "complex", "reasoning", "generate", "light", "question")


def _stem_table() -> tuple[dict[str, str], dict[str, str]]:
    prefixes: dict[str, str] = {}
    exact: dict[str, str] = {}
    for family, stems in _FAMILIES.items():
        for stem in stems.split():
            if stem.endswith("="):
                exact.setdefault(stem[:-1], family)
            else:
                prefixes.setdefault(stem, family)
    return prefixes, exact


_PREFIXES, _EXACT = _stem_table()
_PREFIX_LENGTHS = sorted({len(s) for s in _PREFIXES})
_family_memo: dict[str, str | None] = {}
_FAMILY_MEMO_MAX = 50_000


def family_of(word: str) -> str | None:
    """The family a (lower-case) word belongs to, if any."""
    try:
        return _family_memo[word]
    except KeyError:
        pass
    found = _EXACT.get(word)
    if found is None:
        for n in _PREFIX_LENGTHS:
            if n > len(word):
                break
            found = _PREFIXES.get(word[:n]) or found  # the longest matching stem wins
    if len(_family_memo) >= _FAMILY_MEMO_MAX:
        _family_memo.clear()
    _family_memo[word] = found
    return found


# words skipped before the lead word: "Can you please explain" leads with "explain"
_FILLER = frozenset(
    "please pls kindly can could would will you u i we me us need want wanted like help to so ok okay hey hi hello "
    "now quick question just also then and but hmm um also actually really".split()
)

# verbs whose object says what the task is: "fix the typos" is a light edit, "fix the race" is not
_EDIT_VERBS = frozenset("fix correct check clean improve change update edit tidy".split())

# --------------------------------------------------------------------------- text parts

_WORD = re.compile(r"[a-z0-9][a-z0-9+#'_-]*")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d{1,2}[.)]|[-*•]|\(\w\))\s+\S")
_MC_OPTION = re.compile(r"(?m)^\s*(?:\(?[A-Ea-e][).:]|[A-E]\s*-)\s+\S")
_TECH_TOKEN = re.compile(r"\b\w+[./_:]\w[\w./_:-]*|\b[a-z]+[A-Z]\w+|\b[A-Z]{2,}\w*\b|\w+\(\)")
_CLAUSE = re.compile(r",|;| and | with | then | but ")
_MATHS_SYMBOL = re.compile(r"[≡∀∃∑∏∫√∞∈⊂⊆∪∩ℕℤℚℝℂΩΘαβγδεθλμπσφω≤≥≠±]|\\(?:frac|sum|int|lim|forall|mathbb|equiv|pmod|sqrt)\b|\^\d|\d\s*[*/^]\s*\d|\b[a-z]\s*[=<>]\s*\d")

_FENCE = re.compile(r"```[^\n]*\n?.*?(?:```|\Z)", re.S)
_CODE_LINE = re.compile(
    r"^(?:\s{2,}\S|\t)|[;{}]\s*$|^\s*(?:def|class|import|from|return|if|elif|else|for|while|try|except|catch|function|const|let|var|public|private|static|package|func|fn|impl|struct|enum|#include|#define|using|namespace|SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|WITH)\b|^\s*(?:@\w+|//|/\*|\*|#!|<\w+[\s>/])|=>|->|::|\w+\(.*\)\s*[:{]?\s*$",
)
_TRACE = re.compile(
    r"Traceback \(most recent call last\)|^\s+at [\w.$<>]+\(|^\s*File \"[^\"]+\", line \d+|\b\w*(?:Error|Exception)\b[:(]|panic:|"
    r"segmentation fault|core dumped|exit(?:ed)? (?:with )?(?:code|status) [1-9]|npm ERR!|error\[E\d+\]|^\s*E\s{2,}|FAILED|"
    r"\b(?:ERROR|FATAL|CRITICAL|WARN(?:ING)?)\b|\[(?:error|warn|crit|alert|emerg)\]|undefined reference|cannot find symbol|status(?: code)? [45]\d\d|OOMKilled|BackOff",
    re.M,
)
_JSON_LINE = re.compile(r'[{\[]\s*"[^"\n]{1,60}"\s*:|"[^"\n]{1,60}"\s*:\s*[\[{"\d].*"[^"\n]{1,60}"\s*:')
_DATA_LINE = re.compile(
    r"^\s*(?:\d{1,2}[.)]|[-*•]|\(\w\))\s+\S|^[^:\n]{1,40}:\s+\S|^[^,\n]*(?:,[^,\n]*){2,}$|^\s*[\"'“]|^\s*\|"
    r"|^\s*\[?\d{4}-\d\d-\d\d[T ]\d|^\s*\[?\d\d:\d\d:\d\d|\b(?:DEBUG|INFO|WARN|WARNING|ERROR|FATAL|TRACE)\b"  # log lines
)
_QUOTED_LINE = re.compile(r"(?m)^\s*>.*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
_INLINE_COLON = re.compile(r"^([^:\n]{3,160}?):\s+(?=\S)")
_DEICTIC = re.compile(
    r"\b(?:this|these|above|below|following|attached|here(?:'s| is)|the (?:text|story|article|email|message|notes|list|data|"
    r"paragraph|review|reviews|document|passage|essay|letter|post|transcript|output|log|table|poem))\b", _I)
_CONTINUATION = re.compile(
    r"^\W*(?:ok(?:ay)?|yes|yep|yeah|sure|great|good|perfect|thanks?|thank you|cool|nice|right|alright|go|please|now|so|and)?[\s,!.]*"
    r"(?:continue|go on|go ahead|keep going|carry on|proceed|next|do it|do that|try again|retry|again|run it|go for it|"
    r"yes|yep|yeah|ok(?:ay)?|sure|please do|sounds good|lgtm|ship it|what next|and then\??|more|finish|resume|next step)\b",
    _I,
)

# Bounds that keep extraction fast on huge inputs.
_WINDOW_CHARS = 24_000
_MAX_LINES_SCANNED = 600
_ASK_MAX_CHARS = 4_000
_ASK_MAX_WORDS = 400  # words of the ask that make terms
_PLAIN_MAX_CHARS = 1_200  # a text this short, with no fence and few lines, is all ask
_SHORT_PROSE_WORDS = 120
_CHARS_PER_TOKEN = 4  # rough; extraction must not pay for a tokenizer
CONTINUATION_MAX_WORDS = 12


def _count_words(text: str) -> int:
    return len(_WORD.findall(text.lower()))


def _window(text: str, limit: int = _WINDOW_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n\n" + text[-half:]


def _is_tool_result_only(message: dict) -> bool:
    content = message.get("content")
    return (isinstance(content, list) and bool(content)
            and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content))


def _user_text(message: dict) -> str:
    """Text a user typed in a message (tool results are material, not the ask)."""
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) if isinstance(b, dict) and b.get("type") == "text" else (b if isinstance(b, str) else "")
            for b in content
        )
    return ""


def _content_chars(content) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for b in content:
            if isinstance(b, str):
                total += len(b)
            elif isinstance(b, dict):
                for key in ("text", "content", "input", "thinking"):
                    value = b.get(key)
                    if isinstance(value, str):
                        total += len(value)
                    elif value is not None:
                        total += _content_chars(value) if isinstance(value, list) else len(str(value))
        return total
    return 0


def is_continuation(text: str, max_words: int = CONTINUATION_MAX_WORDS) -> bool:
    """'continue', 'yes, go ahead', 'try again': a turn that adds no new task."""
    if len(text) > max_words * 16:
        return False
    return _count_words(text) <= max_words and bool(_CONTINUATION.match(text))


def find_task_message(messages: list[dict], max_words: int = CONTINUATION_MAX_WORDS) -> tuple[int | None, bool, bool]:
    """Index of the user message that states the task, and whether the last user
    turn is a tool-loop turn or a short continuation of an earlier task."""
    user_indexes = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not user_indexes:
        return None, False, False
    last = user_indexes[-1]
    tool_loop = _is_tool_result_only(messages[last])
    continuation = not tool_loop and len(user_indexes) > 1 and is_continuation(_user_text(messages[last]).strip(), max_words)
    if not (tool_loop or continuation):
        return last, False, False
    for i in reversed(user_indexes[:-1]):
        earlier = _user_text(messages[i]).strip()
        if earlier and not _is_tool_result_only(messages[i]) and not is_continuation(earlier, max_words):
            return i, tool_loop, continuation
    return last, tool_loop, continuation


@dataclass
class Parts:
    """A user turn split into the instruction and the pasted material."""

    ask: str
    material_words: int
    code_lines: int
    has_code: bool
    has_trace: bool
    mc_options: int


def _is_data_like(paragraph: str) -> bool:
    lines = [ln for ln in paragraph.split("\n") if ln.strip()]
    if len(lines) < 3:
        return False
    return sum(1 for ln in lines if _DATA_LINE.search(ln)) >= 0.6 * len(lines)


def _strip_code(window: str) -> tuple[str, int, bool]:
    """Prose with fenced and unfenced code removed; code line count; whether any code."""
    code_lines = 0
    has_code = False
    for block in _FENCE.findall(window):
        has_code = True
        code_lines += block.count("\n")
    prose = _QUOTED_LINE.sub("", _FENCE.sub("\n\n", window))
    lines = prose.split("\n")
    if len(lines) > _MAX_LINES_SCANNED:
        half = _MAX_LINES_SCANNED // 2
        lines = lines[:half] + lines[-half:]
    kept: list[str] = []
    pending: list[str] = []  # consecutive code-like lines: one alone is usually prose
    for line in lines + [""]:
        if _JSON_LINE.search(line):
            has_code = True
            code_lines += 1
            kept.append("")
            continue
        if line.strip() and _CODE_LINE.search(line) and line.count(" ") < 25:
            pending.append(line)
            continue
        if len(pending) >= 2:
            has_code = True
            code_lines += len(pending)
            kept.append("")
        else:
            kept.extend(pending)
        pending = []
        kept.append(line)
    return "\n".join(kept).strip(), code_lines, has_code


def split_ask(text: str) -> Parts:
    """Separate the instruction (the ask) from pasted code, logs, data and documents."""
    if len(text) <= _PLAIN_MAX_CHARS and "```" not in text and text.count("\n") <= 8:
        # the usual short prompt: all of it is the ask (multiple-choice options included)
        return Parts(text, 0, 0, False, bool(_TRACE.search(text)), len(_MC_OPTION.findall(text)))
    window = _window(text)
    prose, code_lines, has_code = _strip_code(window)
    has_trace = bool(_TRACE.search(window))
    mc_options = len(_MC_OPTION.findall(prose))
    paragraphs = [p.strip() for p in _PARAGRAPH_SPLIT.split(prose) if p.strip()]
    ask_parts: list[str] = []
    material: list[str] = []
    rest: list[str] = []
    for para in paragraphs:
        (material if _is_data_like(para) and mc_options < 3 else rest).append(para)

    # "Instruction: <pasted text>" on one line, or a paragraph ending in a colon
    if rest:
        first = rest[0]
        inline = _INLINE_COLON.match(first)
        if first.rstrip().endswith(":") and len(rest) > 1 and _count_words(first) <= 80:
            ask_parts.append(first)
            body = rest[1:]
            if len(body) > 1 and _count_words(body[-1]) <= 40:
                ask_parts.append(body.pop())  # a closing instruction after the material
            material.extend(body)
            rest = []
        elif inline and _count_words(inline.group(1)) <= 25 and _count_words(first[inline.end():]) >= 40:
            ask_parts.append(inline.group(1))
            material.append(first[inline.end():])
            rest = rest[1:]
            if rest and _count_words(rest[-1]) <= 40:
                ask_parts.append(rest.pop())
            material.extend(rest)
            rest = []

    # "<pasted text> \n\n Fix the typos.": a short closing paragraph after a long body
    if len(rest) > 1:
        body_words = sum(_count_words(p) for p in rest[:-1])
        last = rest[-1]
        last_words = _count_words(last)
        if last_words <= 30 and body_words >= 60 and (_DEICTIC.search(last) or body_words >= 3 * last_words):
            ask_parts.append(last)
            if _count_words(rest[0]) <= 25 and len(rest) > 2:
                ask_parts.insert(0, rest[0])
                rest = rest[1:]
            material.extend(rest[:-1])
            rest = []

    if rest:
        if sum(_count_words(p) for p in rest) <= _SHORT_PROSE_WORDS:
            ask_parts.extend(rest)
        else:
            # long prose: the ask is usually at the head or the tail, or in short
            # paragraphs; long paragraphs between them are material
            for i, para in enumerate(rest):
                if _count_words(para) <= 60:
                    ask_parts.append(para)
                    continue
                sentences = [s for s in _SENTENCE_SPLIT.split(para) if s.strip()]
                if i == 0:
                    ask_parts.extend(sentences[:3])
                    material.extend(sentences[3:])
                elif i == len(rest) - 1:
                    ask_parts.extend(sentences[-3:])
                    material.extend(sentences[:-3])
                else:
                    material.append(para)
    ask = "\n".join(ask_parts)[:_ASK_MAX_CHARS]
    return Parts(ask, sum(_count_words(m) for m in material), code_lines, has_code, has_trace, mc_options)


# --------------------------------------------------------------------------- features


@dataclass
class Features:
    values: dict[str, float]
    terms: list[str]
    agent: bool = False
    tool_loop: bool = False
    continuation: bool = False
    lead: str = ""
    context_tokens: int = 0
    matched: dict[str, list[str]] = field(default_factory=dict)  # family -> the ask's words in it (for the reason)


def _scaled(count: float, cap: float) -> float:
    return min(count, cap) / cap


def _log_scaled(count: float, cap: float) -> float:
    return min(math.log1p(count) / math.log1p(cap), 1.0)


def text_features(text: str) -> Features:
    """Features of one user turn's text (the task message)."""
    parts = split_ask(text)
    ask = parts.ask
    lowered = ask.lower()
    words = _WORD.findall(lowered)
    n_words = len(words)
    words = words[:_ASK_MAX_WORDS]
    tokens = ["#" if w[0].isdigit() else w.strip("'_-") or w for w in words]  # every number is one token
    numbers = sum(1 for t in tokens if t == "#")

    matched: dict[str, list[str]] = {}
    for w in tokens:
        fam = family_of(w)
        if fam is not None:
            matched.setdefault(fam, []).append(w)
    terms = {"w:" + t for t in tokens}
    for a, b in zip(tokens, tokens[1:]):
        pair = a + " " + b
        terms.add("b:" + pair)
        fam = _PHRASES.get(pair)
        if fam is not None:
            matched.setdefault(fam, []).append(pair)
    lead_at = next((i for i, t in enumerate(tokens) if t not in _FILLER), None)
    lead = tokens[lead_at] if lead_at is not None else ""
    lead_family = family_of(lead) if lead else None
    if lead_at is not None and lead_at + 1 < len(tokens):
        lead_family = _PHRASES.get(lead + " " + tokens[lead_at + 1], lead_family)  # "show that", "how many"
    if lead in _EDIT_VERBS and any(family_of(t) == "light" for t in tokens[lead_at + 1:lead_at + 5]):
        lead_family = "light"  # "fix the typos", "correct the spelling": the object names the task
    if lead:
        terms.add("lead:" + lead)

    questions = ask.count("?")
    values: dict[str, float] = {
        "ask_words": _log_scaled(n_words, 400),
        "short_ask": 1.0 if n_words <= 10 else 0.0,
        "long_ask": 1.0 if n_words > 60 else 0.0,
        "questions": _scaled(questions, 4),
        "sentences": _scaled(len(_SENTENCE_END.findall(ask)) + (0 if ask.rstrip()[-1:] in ".!?" else 1), 8),
        "numbers": _log_scaled(numbers, 20),
        "word_problem": 1.0 if numbers >= 2 and (questions or (lead_family == "question")) and not parts.has_code else 0.0,
        "multiple_choice": 1.0 if parts.mc_options >= 3 else 0.0,
        "list_items": _scaled(len(_LIST_ITEM.findall(ask)) if parts.mc_options < 3 else 0, 8),
        "clauses": _scaled(len(_CLAUSE.findall(lowered)), 10),
        "tech_tokens": _log_scaled(len(_TECH_TOKEN.findall(ask)), 20),
        "maths_symbols": 1.0 if _MATHS_SYMBOL.search(ask) else 0.0,
        "material_words": _log_scaled(parts.material_words, 5000),
        "has_code": 1.0 if parts.has_code else 0.0,
        "code_lines": _log_scaled(parts.code_lines, 1000),
        "error_trace": 1.0 if parts.has_trace else 0.0,
    }
    for family in FAMILIES:
        hits = matched.get(family)
        values["has_" + family] = _scaled(len(set(hits)), 3) if hits else 0.0
    for family in LEAD_FAMILIES:
        values["lead_" + family] = 1.0 if lead_family == family else 0.0
    return Features(values=values, terms=list(terms), lead=lead, matched=matched)


def extract(messages: list[dict], system=None, tools: list[dict] | None = None, *,
            continuation_max_words: int = CONTINUATION_MAX_WORDS) -> Features:
    """Features of a Messages API request (see the module docstring)."""
    if not isinstance(messages, list):
        raise ValueError("classify: messages must be a list of Messages API messages")
    task_index, tool_loop, continuation = find_task_message(messages, continuation_max_words)
    text = _user_text(messages[task_index]) if task_index is not None else ""
    features = text_features(text)
    recent = messages[-12:]
    tool_history = any(
        isinstance(m, dict) and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in m["content"])
        for m in recent
    )
    features.agent = bool(tools) or tool_history
    features.tool_loop = tool_loop
    features.continuation = continuation
    chars = sum(_content_chars(m.get("content", "")) for m in messages if isinstance(m, dict))
    if system:
        chars += len(system) if isinstance(system, str) else _content_chars(system)
    features.context_tokens = chars // _CHARS_PER_TOKEN
    return features
