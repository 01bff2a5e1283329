"""Word lists for the question analyser (data, kept small and conservative:
a missing entry costs recall, a wrong one costs precision)."""

from __future__ import annotations

from functools import lru_cache


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




# The words of the neutral framings ("what is X", "tell me about X", "can you
# explain X", "how do I X" / "how to X"): two questions whose other words are the same, in the same order,
# ask the same thing (see decision.same_question).
NEUTRAL_FRAME_WORDS = _words("""
    what whats s is are tell me explain describe define give an a the overview of can could would should
    you please meaning definition does do mean means know i we one to some information on how
""")  # "about" only after "tell me" / "information" ("what is Dune about" is not "what is Dune")
