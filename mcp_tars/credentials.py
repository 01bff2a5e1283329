"""Find credential values in text and replace them, keeping only their names.

Pruning rewrites history and writes summaries; neither may carry a secret
forward. A value is treated as a credential when it has a well-known token
shape (``sk-ant-...``, ``AKIA...``, ``ghp_...``, a JWT, a PEM private key, a
bearer token, a password inside a URL) or when it is assigned to a name that
says it is one (``STRIPE_SECRET_KEY=...``, ``password: ...``,
``"api_key": "..."``, ``--token=...``). The name survives, the value becomes
``[REDACTED]``, so an agent still knows *which* credential was involved.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

REDACTED = "[REDACTED]"

# (kind, pattern) for tokens recognisable without a name.
_TOKEN_SHAPES: tuple[tuple[str, str], ...] = (
    ("private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"),
    ("Anthropic API key", r"\bsk-ant-[A-Za-z0-9_-]{16,}"),
    ("OpenAI-style API key", r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"),
    ("Stripe key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{12,}"),
    ("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}"),
    ("SendGrid key", r"\bSG\.[\w-]{16,}\.[\w-]{16,}"),
    ("JSON web token", r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),
)
_SHAPES = re.compile("|".join(f"(?P<t{i}>{p})" for i, (_, p) in enumerate(_TOKEN_SHAPES)))
_SHAPE_KINDS = {f"t{i}": kind for i, (kind, _) in enumerate(_TOKEN_SHAPES)}

_BEARER = re.compile(r"(?i)\b(bearer|token|basic)\s+([A-Za-z0-9._~+/-]{16,}=*)")
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)")

# Name parts that make an assignment a credential, whatever the value looks like.
_SECRET_PARTS = frozenset(
    "secret secrets password passwd passphrase passcode pwd token apikey credential "
    "credentials privatekey dsn cookie".split()
)
# Name parts that only count when the value itself looks random ("SORT_KEY=created_at" is no secret).
_WEAK_PARTS = frozenset("key keys auth pass signature sig salt".split())
# A name ending like this describes a credential without holding it.
_HARMLESS_LAST_PARTS = frozenset(
    "path file dir url uri endpoint name names id ids len length ttl timeout expiry expires "
    "type header env var count size policy format min max file_path location hint prompt "
    "field fields rotation required enabled".split()
)

# name <sep> value, where sep is = or : and the value may be quoted.
_ASSIGNMENT = re.compile(
    r"""(?P<name>(?<![\w-])--?[A-Za-z][\w-]*|\b[A-Za-z_][\w.-]*)["']?(?P<sp1>[ \t]*)(?P<sep>:=|=(?!=)|:)(?P<sp2>[ \t]*)"""
    r"""(?:"(?P<vq>[^"\n]+)"|'(?P<vs>[^'\n]+)'|(?P<vu>[^\s"',;}\]]+))"""
)
# "the password is hunter2", "token was abc123..."
_PROSE = re.compile(
    r"(?i)\b(?P<name>password|passphrase|passcode|api[ _-]?key|secret(?: key)?|access token|auth token|token)"
    r"\s+(?:is|was|=|:)\s+[`\"']?(?P<value>[^\s`\"']{3,})"
)
_FLAG_VALUE = re.compile(r"(?<![\w-])(?P<name>--[A-Za-z][\w-]*)\s+(?P<value>[^\s-][^\s\"']*)")
# Cheap pre-check so that most text never reaches the slower patterns.
_MAYBE = re.compile(
    r"(?i)secret|pass|pwd|token|key|auth|cred|dsn|cookie|session|sig|salt|bearer|://[^\s/@]+:[^\s/@]+@"
    r"|sk-|sk_|rk_|gh[pousr]_|github_pat|glpat-|xox|AKIA|ASIA|AIza|hf_|npm_|SG\.|eyJ|-----BEGIN"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?\w+\}?|<[^>]*>|\*+|x{3,}|\.{3}|…|none|null|nil|true|false|redacted|\[redacted\]|changeme|example|"
    r"your[-_\w]*|todo|tbd|\{\{.*\}\}|%\(?\w+\)?s?|os\.environ.*|env\(.*|process\.env.*|getenv.*)$"
)


def _name_parts(name: str) -> list[str]:
    name = name.lstrip("-")
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


def is_credential_name(name: str) -> bool:
    """Whether a variable/key name says that its value is a credential."""
    parts = _name_parts(name)
    if not parts or parts[-1] in _HARMLESS_LAST_PARTS:
        return False
    joined = "".join(parts)
    if any(p in _SECRET_PARTS for p in parts) or any(
        s in joined for s in ("apikey", "secretkey", "privatekey", "accesskey", "password", "clientsecret")
    ):
        return True
    return any(p in _WEAK_PARTS for p in parts)


def _is_weak_name(name: str) -> bool:
    parts = _name_parts(name)
    joined = "".join(parts)
    strong = any(p in _SECRET_PARTS for p in parts) or any(
        s in joined for s in ("apikey", "secretkey", "privatekey", "accesskey", "password", "clientsecret")
    )
    return not strong


_VERSION_LIKE = re.compile(r"^[=<>~^!]*v?\d+(?:\.\d+)+(?:[-+.][\w.]+)?$")


def _looks_random(value: str) -> bool:
    """A value that looks generated: long, mixing letters and digits, not a word, a path or a version."""
    if len(value) < 12 or "/" in value or " " in value or _VERSION_LIKE.match(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha


_CODE_VALUE = re.compile(r"^[A-Za-z_][\w.]*(?:\(.*)?$|.*[()\[\]{}]")
_EXPRESSION = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\(?$|.*[()\[\]{}]")
_NUMBER_LIKE = re.compile(r"^[\d.,_]+[A-Za-z%]{0,3}$")


def _value_is_secret(name: str, value: str) -> bool:
    value = value.strip()
    if len(value) < 3 or _PLACEHOLDER.match(value) or REDACTED in value:
        return False
    if _NUMBER_LIKE.match(value) and "pin" not in _name_parts(name):
        return False  # max_tokens: 1024, timeout=30s: counts, not credentials
    if not is_credential_name(name):
        return False
    if _is_weak_name(name):
        return _looks_random(value)
    # A strong name holding a path or a URL without credentials points at a secret, it is not one.
    if value.startswith(("/", "./", "~/")) or re.match(r"^[a-z]+://[^@]*$", value):
        return False
    return True


_LONG_TOKEN = re.compile(r"(?<![\w/.-])[A-Za-z0-9][A-Za-z0-9_-]{19,}(?![\w/.-])")
_SHORT_TOKEN = re.compile(r"(?<![\w/.@-])[A-Za-z0-9][A-Za-z0-9_\-!@#$%^&*+=~]{7,}")
_CONSTANT = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
_CREDENTIAL_MENTION = re.compile(r"(?i)passw|passphrase|secret|token|api[ _-]?key|credential|private[ _-]?key|access[ _-]?key")


# Frequent English letter pairs: words and identifiers are made of them, random strings much less.
_COMMON_BIGRAMS = frozenset(
    """th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me de hi
    ri ro ic ne ea ra ce li ch ll be ma si om ur ca el ta la ns di fo ho pe ec pr no ct us ac ot il tr ly nc et
    ut ss so rs un lo wi ge ie wh ee wa em ad ol rt po we na ul ni ts mo ow pa im mi ai sh ir su id os iv ia am
    fi ci vi pl ig tu ev ld ry mp fe bl ab gh ty op wo sa ay ex ke fr oo av ag if ap gr od bo sp rd do uc bu ei
    ov by rm ep tt oc fa ef cu rn sc gi da yo cr cl du ga qu ue ff ba ey ls va um pp ua up lu go ht ru ug ds lt
    pi rc rr eg au ck ew mu br bi pt ak pu ui rg ib tl ny ki rk ys ob mm fu ph og ms ye ud mb ip ub oi rl gu dr
    hr cc tw ft wn nu af hu nn eo vo rv nf xp gn sm fl iz ok nl my gl aw sy oa tn dl dd cy jo""".split()
)


def _wordlike(token: str) -> float:
    """Share of adjacent letter pairs that are common in English (about 0.8 for
    words and identifiers, well under 0.5 for most random strings)."""
    lowered = token.lower()
    pairs = [lowered[i : i + 2] for i in range(len(lowered) - 1) if lowered[i].isalpha() and lowered[i + 1].isalpha()]
    return sum(p in _COMMON_BIGRAMS for p in pairs) / len(pairs) if pairs else 0.0


def _class_switches(token: str) -> float:
    classes = ["u" if c.isupper() else "l" if c.islower() else "d" if c.isdigit() else "p" for c in token]
    return sum(1 for a, b in zip(classes, classes[1:]) if a != b) / max(1, len(token))


def _looks_generated(token: str, min_length: int = 20) -> bool:
    """A long token mixing cases and digits (or symbols) with frequent switches
    between character classes: a random secret, not a CamelCase identifier."""
    body = token.split("-", 1)[-1] if len(token.split("-", 1)[-1]) >= min_length else token
    if len(body) < min_length:
        return False
    upper = sum(c.isupper() for c in body)
    lower = sum(c.islower() for c in body)
    if upper < 2 or lower < 2 or len(body) - upper - lower < 2:
        return False
    return _class_switches(body) >= 0.35


def _looks_like_a_value(token: str) -> bool:
    """Next to a credential's name, a shorter token is its value when it looks
    random: mixed character classes, frequent switches or unusual letter pairs."""
    if len(token) < 8:
        return False
    upper = sum(c.isupper() for c in token)
    lower = sum(c.islower() for c in token)
    other = len(token) - upper - lower
    if (upper > 0) + (lower > 0) + (other > 0) < 2:
        return False
    switches, wordlike = _class_switches(token), _wordlike(token)
    return (switches >= 0.5 and wordlike < 0.7) or (other >= 1 and wordlike < 0.5 and switches >= 0.2) or (switches >= 0.35 and wordlike < 0.6)


def _redact_assignments(text: str, note) -> str:
    """``name=value`` pairs whose value is a credential. Scanned by hand so that
    a harmless match (``env: X_TOKEN=...``) does not hide the pair inside it."""
    out: list[str] = []
    last = pos = 0
    while (m := _ASSIGNMENT.search(text, pos)) is not None:
        group = "vq" if m.group("vq") is not None else "vs" if m.group("vs") is not None else "vu"
        name, value = m.group("name"), m.group(group)
        code = group == "vu" and m.group("sep") != ":" and (m.group("sp1") or m.group("sp2")) and _CODE_VALUE.match(value)
        # code like `token = parser.get(...)` assigns an expression, not a literal
        if not code and (_value_is_secret(name, value) or _SHAPES.fullmatch(value.strip())):
            note(name.lstrip("-"))
            out.append(text[last : m.start(group)])
            out.append(REDACTED)
            last = pos = m.end(group)
        else:
            pos = m.end("sep")
    out.append(text[last:])
    return "".join(out)


def _redact_near_mentions(text: str, note) -> str:
    """On a line that talks about a credential, a random-looking word is its value
    ("DB_PASSWORD is set (currently zaWbVwvrQ7f2bD)")."""
    if not _CREDENTIAL_MENTION.search(text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _CREDENTIAL_MENTION.search(line):
            named = [n for n in _CONSTANT.findall(line) if is_credential_name(n)]

            def token(m: re.Match) -> str:
                if m.group(0) in named or not _looks_like_a_value(m.group(0)):
                    return m.group(0)
                note(named[0] if named else "credential value")
                return REDACTED

            lines[i] = _SHORT_TOKEN.sub(token, line)
    return "\n".join(lines)


# Anything redact_credentials could act on starts with one of these: text
# without a match needs no further work.
CREDENTIAL_HINT = re.compile(_MAYBE.pattern + "|" + _LONG_TOKEN.pattern)


_MEMO_MAX_CHARS = 16_000_000  # texts remembered, in characters (agents re-send the same tool outputs every turn)
_memo: "OrderedDict[tuple[int, int], tuple[str, str, tuple[str, ...]]]" = OrderedDict()
_memo_chars = 0
_memo_lock = threading.Lock()


def clear_memo() -> None:
    """Forget remembered redactions (benchmarks time cold runs)."""
    global _memo_chars
    with _memo_lock:
        _memo.clear()
        _memo_chars = 0


def redact_credentials(text: str) -> tuple[str, list[str]]:
    """``text`` with credential values replaced by ``[REDACTED]``, and the
    names (or kinds) of the credentials found, in order of first appearance.
    Remembered for recent texts: a long session is pruned again every turn."""
    global _memo_chars
    if not text:
        return text, []
    key = (hash(text), len(text))
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None and hit[0] == text:
            _memo.move_to_end(key)
            return hit[1], list(hit[2])
    redacted, names = _redact(text)
    if len(text) <= _MEMO_MAX_CHARS // 16:
        with _memo_lock:
            if key not in _memo:
                _memo[key] = (text, redacted, tuple(names))
                _memo_chars += len(text) + len(redacted)
            while _memo_chars > _MEMO_MAX_CHARS and _memo:
                _, (old, old_redacted, _) = _memo.popitem(last=False)
                _memo_chars -= len(old) + len(old_redacted)
    return redacted, names


def _redact(text: str) -> tuple[str, list[str]]:
    names: list[str] = []

    def note(name: str) -> None:
        if name not in names:
            names.append(name)

    if _MAYBE.search(text):
        text = _redact_assignments(text, note)

        def prose(m: re.Match) -> str:
            value = m.group("value")
            if _PLACEHOLDER.match(value) or REDACTED in value or _NUMBER_LIKE.match(value) or len(value) < 6 or _EXPRESSION.match(value):
                return m.group(0)
            note(m.group("name").lower())
            return m.group(0)[: m.start("value") - m.start()] + REDACTED + m.group(0)[m.end("value") - m.start() :]

        text = _PROSE.sub(prose, text)

        def flag(m: re.Match) -> str:
            if not _value_is_secret(m.group("name"), m.group("value")):
                return m.group(0)
            note(m.group("name").lstrip("-"))
            return f"{m.group('name')} {REDACTED}"

        text = _FLAG_VALUE.sub(flag, text)

        def url(m: re.Match) -> str:
            if m.group(2) == REDACTED:
                return m.group(0)
            note("password in a URL")
            return f"{m.group(1)}{REDACTED}{m.group(3)}"

        text = _URL_PASSWORD.sub(url, text)

        def bearer(m: re.Match) -> str:
            if not _looks_random(m.group(2)):
                return m.group(0)
            note(f"{m.group(1).capitalize()} token")
            return f"{m.group(1)} {REDACTED}"

        text = _BEARER.sub(bearer, text)

        def shape(m: re.Match) -> str:
            note(_SHAPE_KINDS[m.lastgroup or ""])
            return REDACTED

        text = _SHAPES.sub(shape, text)
        text = _redact_near_mentions(text, note)

    def generated(m: re.Match) -> str:
        if not _looks_generated(m.group(0)):
            return m.group(0)
        note("random-looking token")
        return REDACTED

    if _LONG_TOKEN.search(text):
        text = _LONG_TOKEN.sub(generated, text)
    return text, names


def contains_credentials(text: str) -> bool:
    return bool(redact_credentials(text)[1])
