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

Everything here is general rules over text shapes; nothing knows the
benchmark's templates.
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
RELEVANCE_NORM = 5.0  # idf weight a question part needs (about one rare word) for a full match


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


# ---------------------------------------------------------------- values

_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_VALUE = re.compile(
    rf"""
 (?P<url>\b(?:https?|wss?|ftp|s3|gs|git|ssh|postgres(?:ql)?|mysql|redis|mongodb(?:\+srv)?|amqps?|kafka|grpc)://[^\s<>"'`)\]}}]+)
|(?P<email>\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)
|(?P<ip>\b\d{{1,3}}(?:\.\d{{1,3}}){{3}}(?:/\d{{1,2}}|:\d{{2,5}})?\b)
|(?P<uuid>\b[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}\b)
|(?P<date>\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?Z?)?
   |\b\d{{1,2}}\s{_MONTH}\.?(?:,?\s\d{{4}})?\b|\b(?=[JFMASOND]){_MONTH}\.?\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s\d{{4}})?\b
   |\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b)
|(?P<time>\b\d{{1,2}}:\d{{2}}(?::\d{{2}})?\s?(?:[ap]\.?m\.?\b)?(?:\s?(?:UTC|GMT|CES?T|EES?T|[ECMP][SD]T|BST|IST|JST|AEST)\b)?
   |\b\d{{1,2}}\s?[ap]\.?m\.?(?:\s?(?:UTC|GMT|CES?T|[ECMP][SD]T)\b)?)
|(?P<path>(?:~|\.{{1,2}})?/(?:[\w.@%+-]+/)*[\w.@%+-]+/?|\b[\w.-]+/(?:[\w.-]+/)*[\w-]+\.[A-Za-z]\w{{0,5}}\b|\b[A-Za-z]:\\[\w\\. -]+)
|(?P<version>\bv?\d+\.\d+(?:\.\d+)+(?:[-+][\w.]+)?\b|\bv\d+(?:\.\d+)?\b)
|(?P<money>[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?[kKmM]\b)?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP|dollars|euros)\b)
|(?P<qty>\b\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|mins?|minutes?|h|hrs?|hours?|days?|weeks?|months?|years?
      |[KMGTP]i?B|[KMGT]i|[kKMG]b?ps|%|x|rps|qps|req/s|cores?|vCPUs?|CPUs?|GPUs?|tokens?|users?|requests?|calls?
      |rows?|records?|replicas?|nodes?|pods?|shards?|workers?|threads?|connections?|retries|attempts?|items?|files?|lines?
      |instances?|servers?|machines?|seats?|licen[cs]es?|events?|messages?|jobs?|partitions?|GB|MB|KB|TB|kb|mb|gb)\b)
|(?P<port>(?i:port)\s*[:=]?\s*\d{{2,5}}\b|:\d{{4,5}}\b)
|(?P<kv>\b[A-Za-z][\w.-]*=(?!=)[^\s,;&"')\]}}]+)
|(?P<ticket>\b[A-Z][A-Z0-9]{{1,9}}-\d{{1,6}}\b|\#\d{{2,7}}\b)
|(?P<hex>\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{{7,64}}\b)
|(?P<host>\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+\b)
|(?P<const>\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b)
|(?P<ident>\b[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b|\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b)
|(?P<name>\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)+\b)
|(?P<capword>\b[A-Z][a-z]{{2,}}\b)
|(?P<acronym>\b[A-Z]{{2,6}}\d{{0,2}}\b)
|(?P<number>\b\d{{2,}}(?:\.\d+)?\b)
|(?P<code>`[^`\n]{{2,60}}`)
""",
    re.X,
)
# "my name is Dana", "I'm Dana", "call me Dana", "Dana here": a person introducing themselves.
_SELF_NAME = re.compile(r"(?:\b(?:[Mm]y name is|[Nn]ame's|I'm|I am|[Cc]all me|[Tt]his is)\s+([A-Z][a-z]{1,20})\b|^([A-Z][a-z]{1,20}) here\b)")

_ASKS = re.compile(r"\?|(?i:\b(?:what|which|who|whom|whose|when|where|why|how|remind|tell me|list|recap|summari[sz]e)\b)")
# A question about the asker themselves: "what's my name?", "who am I?", "what name did I give you?"
_ASKS_OWN_NAME = re.compile(r"(?i)\bmy name\b|\bwho am i\b|\bname\b.*\b(?:i|me)\b|\b(?:i|me)\b.*\bname\b")

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
    "time": 2.5,
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
    Date Today Tomorrow Yesterday Will Would Could
    Should Can May Might Must Shall Did Does Has Have Had Was Were Are Is Am Been Being Get Got Set
    Make Made Take Took Give See Seems Seem Need Needs Want Try Tried Keep Start Started Stop Build
    Building Install Installing Installed Collecting Downloading Requirement Successfully Warning
    Hmm Well Actually Maybe Perhaps However Therefore Instead Meanwhile Otherwise Anyway Good Right
    Interesting Perfect Excellent Alright Cool Nice Great Thanks Hi Hey Dear Regards Best Class
    Function Method Module Package Object Array String List Dict Map Returns Return Raises Args
    Understood Noted Sounds Quick Small Right Context Heads Morning Afternoon Evening Hello Welcome
    Tools Tool Style Security Performance Testing Review Escalation Output Section Guidelines Policies
    Conventions Workflow Notes Plan Changes Rollout Risks Design Migration Proposal Why How What""".split()
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


_IMPORTANT_KEY = re.compile(
    r"(?i)(?:host|port|url|uri|endpoint|addr|address|domain|region|zone|target|version|tag|image|bucket|"
    r"database|\bdb\b|db_|schema|cluster|namespace|project|account|owner|email|contact|user(?:name)?|timeout|"
    r"limit|max|min|replicas|memory|cpu|size|branch|env|environment|queue|topic|channel|path|dir|file|"
    r"model|key|secret|token|password|deadline|date|time|budget|cron|schedule|id\b|name|ip\b|ticket|commit)"
)
_CONFIG_LINE = re.compile(r"""^[ \t]*(?:export[ \t]+|-[ \t]+)?["']?([A-Za-z_][\w.\-\[\]]*)["']?\s*(?::=|=|:)\s*(?![^"'\n]*\()\S""")
# A constant inside code, its value a literal: NAME = 5433, const PORT = "x";, port: int = 5433
_SETTING_IN_CODE = re.compile(
    r"""^\s*(?:export\s+|const\s+|let\s+|var\s+|final\s+|static\s+|public\s+|private\s+|readonly\s+)*["']?[A-Za-z_][\w.]*["']?\s*"""
    r"""(?::\s*[A-Za-z_][\w\[\], ]*\s*)?(?:=|:)\s*(?:-?\d[\d_.,]*[A-Za-z%]*|"[^"\n]*"|'[^'\n]*'|true|false|True|False|[A-Za-z][\w.:/@-]*)\s*[;,]?\s*(?:(?:#|//).*)?$"""
)
_JSON_PAIR = re.compile(r'"[\w .-]{1,60}"\s*:\s*(?:"(?:[^"\\\n]|\\.){0,200}"|-?\d[\d.eE+-]*|true|false|null)')
# A setting in a config, a log line or JSON: key: value, key = value, "key": value, NAME="value";
# (group 1 the key, group 2 the value)
_SETTING_VALUE = re.compile(
    r"""^\s*(?:export\s+|const\s+|let\s+|var\s+|final\s+|-\s+)?["']?([A-Za-z_][\w.\-]*)["']?\s*(?::=|=|:)\s*([^\s#;,{}()\[\]][^#;{}()\[\]]*?)\s*[;,]?\s*(?:(?:#|//).*)?$"""
)
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
        return 2.5 if prose else (0.1 if len(value) > 10 else 1.0)  # a full timestamp in output is a log stamp
    if kind == "host":
        last = value.rsplit(".", 1)[-1]
        if last in _FILE_SUFFIXES:
            return 1.5  # a file name
        if last in _HOST_SUFFIXES or "-" in value or any(c.isdigit() for c in value):
            return 2.5
        return 0.3  # attribute chains like os.path.join
    if kind == "ident":
        return 2.0 if any(c.isdigit() for c in value) else 1.2
    if kind == "name":
        words = value.split()
        if all(w in _COMMON_CAPS for w in words):
            return 0.0
        return 2.5 if prose else 0.8
    if kind == "capword":
        if value in _COMMON_CAPS:
            return 0.0
        return 1.2 if prose else 0.3
    if kind == "acronym":
        if value in _COMMON_ACRONYMS:
            return 0.0
        return 1.0 if prose else 0.2
    return 0.5


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
_KIND_OF_VALUE = {"capword": "name", "kv": "setting"}  # value kinds as a question names them


def _values_and_kinds(text: str, prose: bool) -> tuple[tuple[tuple[str, float], ...], frozenset[str]]:
    """(value, weight) pairs of a unit and the kinds of value it carries."""
    found: dict[str, float] = {}
    kinds: set[str] = set()
    for m in _VALUE.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(0).rstrip(".,:;")
        if kind == "name":  # the parts count too: once "Priya Raman" is in, "Priya" is known
            for word in value.split():
                if word not in _COMMON_CAPS:
                    found.setdefault(word, 0.3)
        weight = _value_weight(kind, value, prose)
        if weight <= 0:
            continue
        kinds.add(_KIND_OF_VALUE.get(kind, kind))
        if weight > found.get(value, 0.0):
            found[value] = weight
    if not prose:
        setting = _SETTING_VALUE.match(text)
        if setting:  # the value of a setting is the fact, whatever its shape
            key, value = setting.group(1), setting.group(2).strip().strip("\"'").strip()
            if value and value.lower() not in ("true", "false", "null", "none") and len(value) <= 120:
                weight = 2.5 if _IMPORTANT_KEY.search(key) else 1.2
                if weight > found.get(value, 0.0):
                    found[value] = weight
                kinds.add("setting")
                if "port" in key.lower() and value.isdigit():
                    kinds.add("port")
    if prose:
        for m in _SELF_NAME.finditer(text):
            name = m.group(1) or m.group(2)
            if name not in _COMMON_CAPS:
                found[name] = max(found.get(name, 0.0), 3.0)
                kinds.update(("name", "person", "self"))
    return tuple(found.items()), frozenset(kinds)


@lru_cache(maxsize=4096)
def values_in(text: str) -> frozenset[str]:
    """The value strings of ``text`` (what counts as already known)."""
    out: set[str] = set()
    for m in _VALUE.finditer(text):
        value = m.group(0).rstrip(".,:;")
        out.add(value)
        if m.lastgroup == "name":
            out.update(value.split())
    return frozenset(out)


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
    sample = lines[:: max(1, len(lines) // 20)]  # a spread sample says as much, far cheaper
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
            return factor * (1.8 if _IMPORTANT_KEY.search(piece.split("=", 1)[0].split(":", 1)[0]) else 1.0)
        return factor * CODE_FACTOR
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
        if not code:
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
    match = _SETTING_VALUE.match(piece) or _CONFIG_LINE.match(piece)
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
        values, kinds = _values_and_kinds(piece, is_prose)
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
        setting = not is_prose and bool(_SETTING_VALUE.match(piece) or _CONFIG_LINE.match(piece))
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
