"""What counts as a value in text, and what it weighs.

A fact is carried by values: URLs, e-mails, IP addresses, dates and times,
paths, versions, money, quantities with units, ports, ``key=value`` pairs,
tickets, commit ids, hosts, constants, identifiers, names ("Priya Raman",
and "my name is Dana"). ``values_and_kinds`` finds them with their weight
(what one such value is worth to a summary, before who said it) and their
kinds (what a question may ask for: a port, a date, a name...).
"""

from __future__ import annotations

import re
from functools import lru_cache

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

IMPORTANT_KEY = re.compile(
    r"(?i)(?:host|port|url|uri|endpoint|addr|address|domain|region|zone|target|version|tag|image|bucket|"
    r"database|\bdb\b|db_|schema|cluster|namespace|project|account|owner|email|contact|user(?:name)?|timeout|"
    r"limit|max|min|replicas|memory|cpu|size|branch|env|environment|queue|topic|channel|path|dir|file|"
    r"model|key|secret|token|password|deadline|date|time|budget|cron|schedule|id\b|name|ip\b|ticket|commit)"
)

# A setting in a config, a log line or JSON: key: value, key = value, "key": value, NAME="value";
# (group 1 the key, group 2 the value)
SETTING_VALUE = re.compile(
    r"""^\s*(?:export\s+|const\s+|let\s+|var\s+|final\s+|-\s+)?["']?([A-Za-z_][\w.\-]*)["']?\s*(?::=|=|:)\s*([^\s#;,{}()\[\]][^#;{}()\[\]]*?)\s*[;,]?\s*(?:(?:#|//).*)?$"""
)

def _value_weight(kind: str, value: str, prose: bool) -> float:
    if kind in _KIND_WEIGHT:
        if kind == "number" and not prose:
            return 0.3 if len(value) >= 6 else 0.6  # bare numbers in tool output are mostly ids and counters
        if kind == "hex" and prose:
            return 2.5  # a commit sha someone mentions is a fact
        return _KIND_WEIGHT[kind]
    if kind == "kv":  # key=value inside a line: a setting, worth what its key says
        key = value.split("=", 1)[0]
        return 2.5 if IMPORTANT_KEY.search(key) else 0.5
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

_KIND_OF_VALUE = {"capword": "name", "kv": "setting"}  # value kinds as a question names them


def values_and_kinds(text: str, prose: bool) -> tuple[tuple[tuple[str, float], ...], frozenset[str]]:
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
        setting = SETTING_VALUE.match(text)
        if setting:  # the value of a setting is the fact, whatever its shape
            key, value = setting.group(1), setting.group(2).strip().strip("\"'").strip()
            if value and value.lower() not in ("true", "false", "null", "none") and len(value) <= 120:
                weight = 2.5 if IMPORTANT_KEY.search(key) else 1.2
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
