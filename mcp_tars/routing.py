"""Model routing: score how hard a request is, then pick the cheapest model that can do it.

The pure core has two steps:

``classify(messages, system, tools)`` reads the request and returns a
:class:`Complexity` (score 0-100, level, a reason a person can read, and the raw
signals). It looks at *what is asked*, not how long the request is: the ask (the
instruction sentences of the last user turn) is separated from pasted material
(code, logs, documents), and the task verb of the ask decides the base score. A
long essay followed by "fix the typos" is a light task whatever its length; a
one-line "prove that ..." is expert work. Material, maths, constraints, several
parts, expected output size and conversation depth then move the score.

``choose_model(complexity, settings, ...)`` maps the level to a model through the
configuration and applies the session rules: a pinned model wins; routing is
sticky within a session unless the level rises (switching model throws away the
prompt cache); above a budget share it steps one tier down, never below the
configured floor for expert work. ``fallback_models`` gives the chain to try on
persistent overload (529).

Signal families are word *stems* and structural features (fences, stack traces,
list items, option letters, numbers), not exact phrases: the classifier has to
work on prompts nobody wrote down in advance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


from mcp_tars import catalog
from mcp_tars.tokens import content_text
from mcp_tars.settings import LEVELS, RoutingSettings

_LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}


# --------------------------------------------------------------------------- settings


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Complexity:
    score: int
    level: str
    reason: str
    signals: dict = field(default_factory=dict)


@dataclass
class SessionRoute:
    """What the engine remembers per session_id between calls."""

    level: str
    model: str


@dataclass(frozen=True)
class RoutingDecision:
    model: str
    level: str
    score: int
    reason: str
    pinned: bool
    sticky: bool
    downgraded: bool


# --------------------------------------------------------------------------- signal families

_I = re.IGNORECASE


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")", _I)


_LANGUAGES = (
    r"(?:python|javascript|js|typescript|ts|java|rust|go|golang|c\+\+|c#|c|ruby|kotlin|swift|sql|bash|shell|php|scala|"
    r"haskell|elixir|perl|lua|r|dart|hooks|async/await|async|promises|classes|functional|pandas|numpy|react|vue|angular)\b"
)
_CODE_NOUNS = r"(?:code|function|component|class|module|script|program|query|snippet|method|file|test|service|endpoint|handler|schema)"

# Task families, strongest first. Each is a set of stems; the strongest family
# present in the ask sets the base score.
_EXPERT_TASK = _rx(
    r"prove\b", r"proofs?\b", r"disprove", r"show that (?!in\b|on\b|as\b|with\b|to\b|for\b|here\b)", r"show rigorously",
    r"demonstrate that", r"derive\b", r"derivation", r"formal(?:ly)? verif", r"formal (?:proof|spec|semantics|model)",
    r"threat[- ]model", r"security (?:audit|review|assessment)", r"pen(?:etration)?[- ]test",
    r"(?:find|identify|look for|check for|list) (?:\w+ ){0,3}(?:vulnerabilit|exploit|attack vector|security (?:hole|flaw|issue|bug)|race conditions)",
    r"(?:audit|review|analy[sz]e) (?:\w+ ){0,5}for (?:\w+ ){0,2}(?:vulnerabilit|security|exploit|race|memory[- ]safety|soundness)",
    r"novel (?:algorithm|approach|method|architecture|technique)", r"open problem", r"publishable", r"research[- ]grade",
    r"(?:design|invent|specify) (?:\w+ ){0,3}(?:protocol|consensus|type system|programming language|compiler|garbage collector|database engine|storage engine|query planner|operating system|kernel|cryptographic|allocator)",
    r"lower bound", r"tight (?:\w+ ){0,2}bound", r"asymptotic(?:ally)? optimal", r"np[- ](?:hard|complete)", r"give a reduction",
    r"reduction from", r"undecidab", r"worst[- ]case (?:guarantee|bound|analysis)",
)
_COMPLEX_TASK = _rx(
    r"debug", r"troubleshoot", r"diagnos", r"root[- ]cause", r"refactor", r"optimi[sz]", r"speed (?:it |this |things )?up",
    r"make (?:it|this|the \w+) (?:faster|scale|more efficient|robust)", r"improve (?:the )?(?:performance|throughput|latency|reliability)",
    r"implement", r"(?:re-?)?architect(?:ing|ed)? (?:a|an|the|our|this|my|it)\b", r"design\b", r"designing", r"migrat", r"upgrade (?:\w+ ){0,4}(?:to|from)\b",
    r"port (?:\w+ ){0,4}(?:to|from)\b", r"review (?:this|my|our|the|these)\b", r"code review", r"audit", r"analy[sz]", r"assess",
    r"evaluat", r"critique", r"trade-?offs?", r"investigat", r"benchmark", r"profil(?:e|ing)\b", r"figure out",
    r"reverse[- ]engineer", r"restructur", r"re-?architect", r"scal(?:e|ing) (?:\w+ ){0,3}(?:to|for|beyond)",
    r"fix(?:es|ing)?\b(?!\s+(?:the\s+|any\s+|all\s+|my\s+|these\s+|those\s+)?(?:typo|spelling|grammar|punctuation|formatting|indentation|capitali|wording|tone|sentence|paragraph))",
    r"(?:resolve|solve|track down|find) (?:\w+ ){0,3}(?:bug|issue|error|crash|failure|exception|problem|race|leak|deadlock|regression|flak)",
    r"why (?:\w+ ){0,8}(?:fail|crash|hang|slow|leak|deadlock|block|time ?out|break|throw|panic|segfault|return|wrong|differ|not\b|n't\b)",
    r"(?:is|are|keeps?|started|still|been) (?:\w+ ){0,2}(?:failing|broken|crashing|hanging|leaking|timing out|restarting|flaky|slow(?:er)?)",
    r"not working", r"doesn'?t work", r"stopped working", r"won'?t (?:compile|start|build|run|load|connect|work)", r"(?:does ?n[o']t|can'?t|cannot) (?:get \w+ to )?compile",
    r"build (?:a|an|me a|the|out) (?:\w+ ){0,3}(?:app|service|system|pipeline|api|cli|tool|parser|compiler|engine|bot|scraper|crawler|server|backend|platform|framework|library|game|dashboard|module)",
    r"write (?:a|an) (?:\w+ ){0,3}(?:parser|compiler|interpreter|scheduler|allocator|emulator|engine|framework|orm\b|server|crawler|pipeline|solver|tool|cli)",
    r"(?:set up|setup|configure) (?:\w+ ){0,3}(?:cluster|pipeline|module|infrastructure|ci|deployment|terraform|kubernetes)",
    r"(?:migration|rollout|scaling|launch|architecture|incident|recovery|capacity|cutover) (?:plan|strategy)",
    r"(?:plan|strategy|roadmap|playbook) for (?:\w+ ){0,2}(?:migrat|scal|rollout|launch|recover|cutover|deprecat)",
    r"plan (?:the|a|our) (?:\w+ ){0,2}(?:migration|rollout|launch|rewrite|upgrade|cutover)",
    r"multi-?step", r"end[- ]to[- ]end", r"what(?:'s| is) (?:going on|wrong|causing|happening)", r"what do (?:we|i) do\b",
    # symptoms of a production or code problem
    r"leak(?:s|ing)?\b", r"track (?:\w+ ){0,2}down", r"grows? (?:\w+ ){0,4}until", r"(?:keeps?|started) (?:dying|restarting|dropping|growing)",
    r"goes (?:down|yellow|red|offline)", r"(?:intermittent|sporadic|random)(?:ly)? (?:\w+ ){0,3}(?:fail|error|timeout|crash|drop|5\d\d)",
    r"flak(?:y|iness)", r"oom", r"(?:find|spot|identify) (?:the|any|a) (?:flaw|bug|mistake|problem)", r"flaw",
    r"what (?:could|might|would|can) (?:be )?(?:caus|explain|be wrong|be happening)", r"what would you (?:check|look at|do|change)",
    r"how would you (?:\w+ ){0,2}(?:track|debug|approach|find|investigate|diagnose|fix|design|handle|scale)",
    r"patch (?:it|this|that|the)\b", r"split (?:\w+ ){0,4}into", r"break (?:\w+ ){0,3}(?:up|down|apart) ", r"decompos", r"reorgani[sz]",
    r"(?:clean|tidy) up (?:this|the|my|our) (?:code|module|class|function|codebase)",
)
# Moderate verbs that ask for reasoning or code: these are not outranked by a
# light operation named in the same ask ("explain the summary", "convert this
# Python to Rust").
_MODERATE_REASONING = _rx(
    r"expla(?:in|nation)", r"why\b", r"compare", r"contrast", r"walk me through", r"teach", r"pros and cons", r"advice", r"advise",
    r"should (?:i|we)\b", r"difference(?:s)? between", r"what(?:'s| is| are) the (?:difference|best way|pros|advantages|disadvantages|tradeoff|impact|reason|point)",
    r"(?:convert|translate|port|rewrite|turn) (?:\w+ ){0,6}(?:to|into|in|as|using) " + _LANGUAGES,
    r"(?:write|create|make|build|give me|code) (?:\w+ ){0,3}(?:function|script|program|class|method|regex|regular expression|query|component|unit tests?|tests|dockerfile|endpoint|cli|macro|formula|algorithm)",
    r"interpret", r"strateg", r"recommend", r"feedback", r"improve\b", r"help me (?:understand|decide|choose|plan|figure)",
    r"which (?:\w+ ){0,3}(?:better|should|best|prefer)", r"how (?:does|do) (?:\w+ ){0,4}work\b", r"what (?:would|will) happen",
    r"what does (?:this|the|it|that|my) (?:\w+ )?do\b",
)
_MODERATE_TASK = _rx(
    r"describe", r"how (?:does|do|can|could|should|would|is|are|to)\b", r"write\b", r"writing\b", r"create", r"generate", r"draft",
    r"compose", r"re-?write", r"outline", r"plan\b", r"brainstorm", r"suggest", r"give me (?:\w+ ){0,2}(?:ideas|examples|a plan|options|tips|a list)",
    r"help me (?:with|to|write)", r"tips\b", r"ways to", r"solve\b", r"calculate", r"compute", r"estimate\b", r"predict", r"add (?:a|an|the)? ?(?:\w+ )?(?:feature|endpoint|option|flag|test|validation|support)",
    r"set up", r"setup\b", r"install", r"configure", r"make (?:a|an|me)\b", r"edit\b", r"update (?:the|this|my)\b", r"change (?:the|this|my)\b",
    r"modify", r"(?:convert|turn) (?:this|the|my|these) (?:\w+ ){0,3}" + _CODE_NOUNS,
)
_LIGHT_TASK = _rx(
    r"typos?\b", r"spelling", r"grammar", r"proofread", r"punctuation", r"rephrase", r"reword", r"paraphrase",
    r"translat", r"summari[sz]", r"summary", r"tl;?dr", r"recap", r"key points", r"main points", r"gist",
    r"shorten", r"condense", r"simplify (?:the |this )?(?:wording|language|sentence|text|paragraph)",
    r"re-?format", r"format (?:this|the|it|as)", r"clean up (?:the )?(?:formatting|whitespace|spacing)", r"capitali[sz]", r"lower-?case", r"upper-?case", r"title case",
    r"alphabeti[sz]", r"sort (?:this|these|the)", r"reverse (?:the )?order", r"(?:convert|turn) (?:\w+ ){0,4}(?:to|into) (?:json|csv|yaml|xml|markdown|a table|a list|bullet|celsius|fahrenheit|km|miles|kg|pounds|metric|imperial|uppercase|lowercase)",
    r"(?:change|convert) (?:\w+ ){0,5}(?:to|into) (?:\w+ )?format", r"extract", r"pull out", r"list (?:all |the |every |everyone|everything)", r"count (?:the|how)", r"how many (?:words|characters|lines|letters|times)",
    r"classify", r"categori[sz]", r"label (?:this|these|each)", r"tag (?:this|these|each)", r"sentiment", r"is this (?:\w+ ){0,2}(?:spam|positive|negative|polite|formal)",
    r"define\b", r"definition", r"meaning of", r"what does (?:\w+ ){0,3}(?:mean|stand for)", r"synonym", r"antonym", r"another word for", r"words? that rhyme", r"spell\b",
    r"make (?:this|it) (?:sound )?(?:more )?(?:formal|polite|friendly|casual|concise|professional|shorter)",
    r"add (?:\w+ ){0,2}(?:comments|docstrings?|emojis?|a title|headings)", r"rename", r"fill in", r"remind me", r"how do (?:you|i) say",
    r"how are you", r"(?:passive|active) voice", r"(?:past|present|future) tense", r"plural", r"re-?write (?:this|the) (?:sentence|phrase|line|title|word)", r"(?:hi|hello|hey|thanks|thank you|good morning|good evening)\b", r"fun fact", r"tell me a joke", r"what(?:'s| is) the (?:name|email|date|number|price|title|author)",
    r"(?:give|suggest|pick) (?:me )?(?:a|one|three|five|some) (?:\w+ ){0,2}names?\b",
)
_FACTUAL_QUESTION = _rx(
    r"what(?:'s| is| was| are| were)\b", r"who(?:'s| is| was| are| were| wrote| invented| discovered| painted)\b",
    r"when (?:is|was|did|does)\b", r"where (?:is|was|are|do|does)\b", r"which\b", r"how (?:many|much|old|tall|far|long)\b",
    r"is (?:it|there|a|an|the)\b", r"does\b", r"can (?:a|an|i|you)\b", r"name (?:a|the|three|five)\b",
)
_CONTINUATION = re.compile(
    r"^\W*(?:ok(?:ay)?|yes|yep|yeah|sure|great|good|perfect|thanks?|thank you|cool|nice|right|alright|go|please|now|so|and)?[\s,!.]*"
    r"(?:continue|go on|go ahead|keep going|carry on|proceed|next|do it|do that|try again|retry|again|run it|go for it|"
    r"yes|yep|yeah|ok(?:ay)?|sure|please do|sounds good|lgtm|ship it|what next|and then\??|more|finish|resume|next step)\b",
    _I,
)

# Maths.
_ADVANCED_MATHS = _rx(
    r"infinitely many", r"if and only if", r"iff\b", r"for (?:all|every|each|any) (?:integers?|reals?|real numbers?|primes?|positive|natural|n\b|x\b|k\b|epsilon|ε)",
    r"mod(?:ulo)? ?\d", r"\(mod", r"modular", r"congruen", r"diophantine", r"integer (?:solutions?|points)", r"irrational",
    r"bijecti", r"injecti", r"surjecti", r"isomorph", r"homomorph", r"manifold", r"topolog", r"eigen", r"converge", r"diverge",
    r"theorem", r"lemma", r"corollary", r"induction", r"countabl", r"uncountabl", r"measure theor",
    r"galois", r"group theor", r"(?:finite|cyclic|abelian|sub)[- ]?groups?", r"abelian", r"cardinality", r"supremum", r"infimum", r"lebesgue",
    r"hilbert space", r"banach", r"riemann", r"fourier", r"laplace transform", r"partial differential", r"stochastic", r"martingale",
    r"markov chain", r"primes?\b", r"closed[- ]form", r"generating function", r"recurrence", r"analytic (?:function|on)", r"fixed point", r"continuous function",
    r"itô|ito's lemma", r"lagrangian", r"hamiltonian", r"asymptotic", r"big[- ]?(?:o|theta|omega)\b",
)
_ADVANCED_MATHS_SYMBOLS = re.compile(r"[≡∀∃∑∏∫∮√∞∈∉⊂⊆∪∩ℕℤℚℝℂΩΘα]|\\(?:frac|sum|int|lim|forall|exists|mathbb|equiv|pmod|prod|infty|partial|nabla)\b")
_INTERMEDIATE_MATHS = _rx(
    r"derivative", r"differentiat", r"integral", r"integrat(?:e|ion) (?:\w+ ){0,2}(?:dx|from|over|of)", r"probabilit", r"expected value",
    r"variance", r"standard deviation", r"distribution", r"matri(?:x|ces)", r"determinant", r"vectors?\b", r"polynomial",
    r"quadratic", r"logarithm", r"exponential", r"combinator", r"permutation", r"combinations?\b", r"binomial",
    r"limit of", r"series\b", r"sequence\b", r"system of equations", r"simultaneous equations", r"inequalit",
    r"geometr", r"trigonometr", r"(?:sin|cos|tan)\b", r"hypotenuse", r"radius", r"area of", r"volume of", r"perimeter",
    r"compound interest", r"interest rate", r"regression", r"hypothesis test", r"p-value", r"confidence interval", r"bayes",
    r"significan(?:t|ce)\b", r"without replacement", r"solve for",
)
_NUMBER = re.compile(
    r"(?<![\w.:])\$?\d+(?:[.,:]\d+)*%?(?![\w])|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|dozen|half|twice|double|triple|quarter)\b",
    _I,
)
_QUESTION_LEAD = re.compile(r"^\s*(?:how|what|which|when|where|who|find|calculate|compute|determine|work out|estimate|is|are|does|do|can)\b", _I)
_STEP_CUES = _rx(
    r"each\b", r"per\b", r"every\b", r"total", r"altogether", r"in all\b", r"left\b", r"remain", r"more than", r"less than",
    r"fewer", r"twice", r"half", r"percent", r"%", r"times (?:as|more)", r"average", r"ratio", r"after\b", r"then\b", r"discount",
    r"tax\b", r"profit", r"split", r"shared? equally", r"rest\b", r"instead", r"how much (?:more|less)", r"another\b", r"remaining",
)
_MC_OPTION = re.compile(r"(?m)^\s*(?:\(?[A-Ea-e][).:]|[A-E]\s*-)\s+\S")

# Domains where a cheap model errs much more often. Points grow with the number
# of distinct hard stems found (more hard vocabulary, harder problem).
_HARD_DOMAINS: dict[str, re.Pattern[str]] = {
    "concurrency": _rx(r"race condition", r"deadlock", r"livelock", r"mutex", r"lock-?free", r"wait-?free", r"memory (?:ordering|model|barrier|fence)", r"atomics?\b", r"concurren", r"thread[- ]safe", r"data race", r"starvation", r"semaphore", r"aba problem", r"goroutines?", r"linearizab"),
    "distributed": _rx(r"distributed", r"consensus", r"partitions?\b", r"regions\b", r"global(?:ly)? (?:limit|consisten|distributed|replicated|unique)", r"over-?admission", r"clock (?:skew|drift)", r"raft\b", r"paxos", r"byzantine", r"partition(?:ed)? (?:from|toleran)", r"network partition", r"replica", r"eventual(?:ly)? consisten", r"strong(?:ly)? consisten", r"serializab", r"shard", r"multi-?region", r"active-active", r"fault[- ]toleran", r"high[- ]availability", r"exactly[- ]once", r"at[- ]least[- ]once", r"at[- ]most[- ]once", r"idempoten", r"two-phase commit", r"vector clock", r"crdt", r"fencing", r"leader election", r"split[- ]brain", r"at (?:global |planet )?scale", r"millions? of (?:users|requests|rps|qps|events)", r"\d+[km]? ?(?:rps|qps|requests per second)", r"region outage"),
    "security": _rx(r"vulnerab", r"exploit", r"cve-", r"injection", r"xss\b", r"csrf", r"ssrf", r"privilege escalation", r"cryptograph", r"side[- ]channel", r"threat", r"attack", r"sandbox", r"buffer overflow", r"use-after-free", r"memory[- ]safety", r"zero[- ]trust", r"length extension", r"timing attack", r"forg(?:e|ery|ing|ed)\b", r"session (?:fixation|hijack)", r"alg(?:orithm)? confusion", r"untrusted", r"mtls", r"stride\b"),
    "systems": _rx(r"kernel", r"syscall", r"page fault", r"cache coheren", r"simd", r"memory leak", r"garbage collect", r"gc (?:pause|log)", r"allocator", r"lock contention", r"tail latency", r"p99", r"jit\b", r"llvm", r"compiler", r"ssa form", r"type (?:system|inference|checker)", r"borrow checker", r"undefined behaviou?r", r"segfault|segmentation fault", r"cuda", r"query planner", r"isolation level", r"mvcc", r"real-?time (?:audio|system|constraint)", r"fragmentation", r"zero[- ]downtime", r"backfill", r"\d+ ?[tp]b\b"),
    "algorithms": _rx(r"time complexity", r"space complexity", r"big-?o\b", r"o\((?:n|log|1|m|k|v|e)[^)]{0,12}\)", r"n log n", r"dynamic programming", r"np-", r"amortized", r"graph (?:algorithm|coloring|colouring|traversal)", r"hamiltonian path", r"shortest path", r"max(?:imum)?[- ]flow", r"minimum spanning", r"approximation (?:algorithm|ratio)", r"backtracking", r"constraint propagation", r"branch and bound", r"linear programming", r"convex", r"optimal substructure", r"nearest neighbou?r", r"streaming algorithm", r"sketch", r"turing machine", r"decidab", r"comparisons? in the worst case"),
    "ml": _rx(r"gradient", r"backprop", r"loss function", r"transformer", r"self-attention", r"attention (?:head|mechanism|layer)", r"layer norm", r"overfit", r"regulari[sz]", r"fine-?tun", r"hyperparameter", r"reinforcement learning", r"bayesian (?:inference|optimi)", r"variational", r"diffusion model", r"ridge regression", r"svd\b", r"singular value"),
    "science": _rx(r"quantum", r"relativ", r"thermodynamic", r"entropy", r"lagrangian", r"hamiltonian", r"schr[oö]dinger", r"enthalpy", r"stereochem", r"reaction mechanism", r"nucleophil", r"electrophil", r"orbital", r"spectroscop", r"pharmacokinetic", r"contraindicat", r"differential diagnosis", r"pathophysiolog", r"enzyme kinetic", r"allele", r"epistasis", r"black[- ]scholes", r"option pricing", r"arbitrage", r"monetary policy", r"elasticity", r"jurisdiction", r"statute", r"tort\b", r"precedent", r"constitutional", r"estoppel", r"hearsay", r"fiduciary", r"negligence", r"mens rea", r"epistemolog", r"ontolog", r"categorical imperative", r"chaotic", r"equations? of motion", r"inr\b", r"dosing", r"drug interaction", r"cytochrome|cyp\d"),
}
_TECH_TERMS = _rx(
    r"api\b", r"database", r"sql\b", r"postgres", r"mysql", r"sqlite", r"mongo", r"redis", r"kafka", r"rabbitmq", r"server", r"docker", r"kubernetes|k8s",
    r"http", r"json", r"yaml", r"async", r"thread", r"cache", r"index", r"regex", r"git\b", r"ci\b", r"deploy", r"aws", r"gcp", r"azure", r"s3\b",
    r"lambda", r"schema", r"query", r"function", r"class\b", r"endpoint", r"latency", r"memory", r"cpu", r"network", r"dns", r"tcp", r"tls|ssl",
    r"socket", r"microservice", r"container", r"pipeline", r"terraform", r"nginx", r"react", r"typescript", r"python", r"rust\b", r"golang|go\b",
    r"java\b", r"c\+\+", r"node(?:\.js)?\b", r"webpack", r"orm\b", r"migration", r"transaction", r"queue", r"load balanc", r"oauth", r"jwt", r"webhook",
    r"algorithm", r"recursion", r"pointer", r"struct", r"interface", r"generic", r"closure", r"callback", r"promise", r"rpc", r"grpc", r"graphql",
    r"django", r"flask", r"fastapi", r"spring", r"jvm", r"etl", r"spark", r"snowflake", r"warehouse", r"throughput", r"backend", r"frontend", r"auth",
    r"encrypt", r"token", r"certificate", r"replica", r"cluster", r"pod", r"helm", r"prod(?:uction)?\b", r"deadline", r"sla\b", r"p\d\d\b",
    r"heap", r"snapshot", r"disk", r"logs?\b", r"service", r"repo(?:sitory)?\b", r"codebase", r"elasticsearch", r"websocket", r"\d+ ?(?:gb|mb|kb|tb|ms)\b",
    r"resolver", r"dataloader", r"sqlalchemy", r"express", r"middleware", r"cron", r"daemon", r"config", r"env(?:ironment)? var", r"stack ?trace",
)
_CONSTRAINTS = _rx(
    r"must\b", r"must not", r"should(?:n'?t| not)\b", r"without (?:using|any|changing|breaking|external|downtime|losing|cloning)", r"only (?:use|using)", r"at most\b",
    r"at least\b", r"no more than", r"less than \d", r"exactly\b", r"ensure", r"make sure", r"guarantee", r"never\b", r"handle (?:\w+ ){0,2}(?:edge cases|errors|failures|retries|redirects|timeouts)",
    r"o\([^)]{1,12}\)", r"in under", r"within \d", r"backward[s]?[- ]compatib", r"thread[- ]safe", r"idempoten", r"constant (?:time|space|memory)",
    r"linear time", r"in[- ]place", r"zero[- ]downtime", r"no (?:external|third[- ]party) (?:libraries|dependencies)", r"no libraries", r"type[- ]safe", r"deterministic",
    r"don'?t (?:use|change|break|modify)", r"keep(?:ing)? (?:\w+ ){0,2}(?:api|interface|behaviou?r|output|cli) (?:the same|unchanged|identical|stable|intact)", r"budget of", r"can'?t afford",
    r"preserv(?:e|ing)", r"respect(?:s|ing)?\b", r"bounded", r"survive", r"under \d+ ?(?:ms|seconds|minutes)",
)
_LONG_OUTPUT = _rx(
    r"detailed", r"comprehensive", r"in[- ]depth", r"thorough", r"step[- ]by[- ]step", r"complete (?:implementation|code|solution|guide|program|app)",
    r"full (?:implementation|code|solution|report|program|app|test suite)", r"production[- ](?:ready|grade|quality)", r"essay", r"report\b",
    r"white ?paper", r"chapter", r"tutorial", r"multiple files", r"(?:[5-9]\d\d|\d,?\d{3,}) words", r"every (?:case|detail)", r"exhaustive",
    r"design doc", r"rfc\b", r"specification", r"documentation for", r"include (?:\w+ ){0,2}tests", r"with tests", r"and tests\b",
)
_SHORT_OUTPUT = _rx(
    r"one word", r"single word", r"one sentence", r"two sentences", r"one line", r"one-liner", r"briefly", r"brief\b", r"short answer",
    r"quick question", r"yes or no", r"just (?:the|a|give|tell|say)", r"only (?:the|answer|reply|return)", r"tl;?dr", r"in a nutshell", r"few words",
    r"keep it short", r"no explanation", r"nothing else",
)
_DEICTIC = _rx(
    r"this\b", r"these\b", r"above\b", r"below\b", r"following\b", r"attached\b", r"here(?:'s| is)\b",
    r"the (?:text|story|article|email|message|notes|list|data|paragraph|review|reviews|document|passage|essay|letter|post|transcript|output|log|table|poem)\b",
)
_BUG_REPORT = _rx(
    r"instead of", r"expected\b", r"but (?:it|i|we) (?:get|got|see|only)", r"why (?:does|is|do|are|am|did)\b", r"wrong", r"doesn'?t", r"isn'?t",
    r"won'?t", r"can'?t", r"error", r"fails?\b", r"failing", r"broke", r"crash",
)

# Pasted material.
_FENCE = re.compile(r"```[^\n]*\n?.*?(?:```|\Z)", re.S)
_CODE_LINE = re.compile(
    r"^(?:\s{2,}\S|\t)|[;{}]\s*$|^\s*(?:def|class|import|from|return|if|elif|else|for|while|try|except|catch|function|const|let|var|public|private|static|package|func|fn|impl|struct|enum|#include|#define|using|namespace|SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|WITH)\b|^\s*(?:@\w+|//|/\*|\*|#!|<\w+[\s>/])|=>|->|::|\w+\(.*\)\s*[:{]?\s*$",
)
_TRACE = re.compile(
    r"Traceback \(most recent call last\)|^\s+at [\w.$<>]+\(|^\s*File \"[^\"]+\", line \d+|\b\w*(?:Error|Exception)\b[:(]|panic:|"
    r"segmentation fault|core dumped|exit(?:ed)? (?:with )?(?:code|status) [1-9]|npm ERR!|error\[E\d+\]|^\s*E\s{2,}|FAILED|"
    r"\b(?:ERROR|FATAL|CRITICAL|WARN(?:ING)?)\b|\[(?:error|warn|crit|alert|emerg)\]|undefined reference|cannot find symbol|unresolved import|status(?: code)? [45]\d\d|OOMKilled|BackOff",
    re.M,
)
_JSON_LINE = re.compile(r'[{\[]\s*"[^"\n]{1,60}"\s*:|"[^"\n]{1,60}"\s*:\s*[\[{"\d].*"[^"\n]{1,60}"\s*:')
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d{1,2}[.)]|[-*•]|\(\w\))\s+\S")
_DATA_LINE = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•]|\(\w\))\s+\S|^[^:\n]{1,40}:\s+\S|^[^,\n]*(?:,[^,\n]*){2,}$|^\s*[\"'“]|^\s*\|")
_QUOTED_LINE = re.compile(r"(?m)^\s*>.*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
_INLINE_COLON = re.compile(r"^([^:\n]{3,160}?):\s+(?=\S)")
_WORD = re.compile(r"[\w'’-]+")

# Bounds that keep classify() fast on huge inputs: signals are read from a
# window at the head and the tail of the text; sizes are measured on the whole.
_WINDOW_CHARS = 24_000
_MAX_LINES_SCANNED = 600
_ASK_MAX_CHARS = 4_000
_SHORT_PROSE_WORDS = 120  # a prose part this short, with nothing pasted, is all instruction
_CHARS_PER_TOKEN = 4  # rough; classify() must not pay for a tokenizer


def _window(text: str, limit: int = _WINDOW_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n\n" + text[-half:]


def _words(text: str) -> int:
    return len(_WORD.findall(text))


# --------------------------------------------------------------------------- text parts


def _is_tool_result_only(message: dict) -> bool:
    content = message.get("content")
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    )


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


@dataclass
class _Parts:
    ask: str  # instruction sentences
    material: str  # prose that is pasted, not asked
    code_lines: int
    has_code: bool
    has_trace: bool
    list_items: int
    mc_options: int


def _is_data_like(paragraph: str) -> bool:
    """Lists, key: value lines, CSV rows, quotes, tables: pasted data, not instructions."""
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
        if _JSON_LINE.search(line):  # a JSON object is data even on one line
            has_code = True
            code_lines += 1
            kept.append("")
            continue
        if line.strip() and _CODE_LINE.search(line) and _words(line) < 25:
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


def _split_ask(text: str) -> _Parts:
    """Separate the instruction (the ask) from pasted code, logs, data and documents."""
    window = _window(text)
    prose, code_lines, has_code = _strip_code(window)
    has_trace = bool(_TRACE.search(window))
    mc_options = len(_MC_OPTION.findall(prose))

    paragraphs = [p.strip() for p in _PARAGRAPH_SPLIT.split(prose) if p.strip()]
    ask_parts: list[str] = []
    material_parts: list[str] = []
    rest: list[str] = []
    for para in paragraphs:
        (material_parts if _is_data_like(para) and mc_options < 3 else rest).append(para)

    # "Instruction: <pasted text>" on one line or as a paragraph ending in a colon.
    if rest:
        first = rest[0]
        inline = _INLINE_COLON.match(first)
        if first.rstrip().endswith(":") and len(rest) > 1 and _words(first) <= 80:
            ask_parts.append(first)
            body = rest[1:]
            if len(body) > 1 and _words(body[-1]) <= 40:
                ask_parts.append(body.pop())  # a closing instruction after the material
            material_parts.extend(body)
            rest = []
        elif inline and _words(inline.group(1)) <= 25 and _words(first[inline.end():]) >= 40:
            ask_parts.append(inline.group(1))
            material_parts.append(first[inline.end():])
            rest = rest[1:]
            if rest and _words(rest[-1]) <= 40:
                ask_parts.append(rest.pop())
            material_parts.extend(rest)
            rest = []

    # "<pasted text> \n\n Fix the typos." — a short closing paragraph after a long
    # body is the instruction; the body is material.
    if len(rest) > 1:
        body_words = sum(_words(p) for p in rest[:-1])
        last = rest[-1]
        if _words(last) <= 30 and body_words >= 60 and (_DEICTIC.search(last) or body_words >= 3 * _words(last)):
            ask_parts.append(last)
            if _words(rest[0]) <= 25 and len(rest) > 2:
                ask_parts.insert(0, rest[0])
                rest = rest[1:]
            material_parts.extend(rest[:-1])
            rest = []

    if rest:
        rest_words = sum(_words(p) for p in rest)
        if rest_words <= _SHORT_PROSE_WORDS:
            ask_parts.extend(rest)
        else:
            # Long prose: the ask is usually at the head or the tail, or in
            # short instruction paragraphs; long paragraphs between are material.
            for i, para in enumerate(rest):
                para_words = _words(para)
                if para_words <= 60:
                    ask_parts.append(para)
                    continue
                sentences = [s for s in _SENTENCE_SPLIT.split(para) if s.strip()]
                if i == 0:
                    ask_parts.extend(sentences[:3])
                    material_parts.extend(sentences[3:])
                elif i == len(rest) - 1:
                    ask_parts.extend(sentences[-3:])
                    material_parts.extend(sentences[:-3])
                else:
                    material_parts.append(para)

    ask = "\n".join(ask_parts)[:_ASK_MAX_CHARS]
    list_items = len(_LIST_ITEM.findall(ask))
    return _Parts(ask, "\n".join(material_parts), code_lines, has_code, has_trace, list_items, mc_options)


# --------------------------------------------------------------------------- classify


def level_for_score(score: int, settings: RoutingSettings | None = None) -> str:
    s = settings or _DEFAULT_SETTINGS
    if score >= s.expert_threshold:
        return "expert"
    if score >= s.complex_threshold:
        return "complex"
    if score >= s.moderate_threshold:
        return "moderate"
    return "simple"


def _word_problem_steps(ask: str) -> int:
    """Rough count of arithmetic steps: quantities to combine plus chaining cues."""
    numbers = len(_NUMBER.findall(ask))
    cues = len(_STEP_CUES.findall(ask))
    sentences = len([s for s in _SENTENCE_SPLIT.split(ask) if _words(s) > 2])
    steps = max(1, numbers - 1)
    steps = max(steps, min(cues, numbers), sentences - 2)
    return min(steps, 8)


def _is_word_problem(ask: str, has_code: bool) -> bool:
    if has_code or len(_NUMBER.findall(ask)) < 2:
        return False
    sentences = [s for s in _SENTENCE_SPLIT.split(ask) if s.strip()]
    return any(s.rstrip().endswith("?") or _QUESTION_LEAD.match(s) for s in sentences[-3:])


def _is_continuation(text: str, max_words: int) -> bool:
    """'continue', 'yes, go ahead', 'try again': a turn that adds no new task."""
    if len(text) > max_words * 16:  # cheap bound before counting words of a huge text
        return False
    return _words(text) <= max_words and bool(_CONTINUATION.match(text))


def _find_task_message(messages: list[dict], max_words: int) -> tuple[int | None, bool, bool]:
    """Index of the user message that states the task, and whether the last user
    turn is a tool-loop turn or a short continuation of an earlier task."""
    user_indexes = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not user_indexes:
        return None, False, False
    last = user_indexes[-1]
    tool_loop = _is_tool_result_only(messages[last])
    text = _user_text(messages[last]).strip()
    continuation = not tool_loop and len(user_indexes) > 1 and _is_continuation(text, max_words)
    if not (tool_loop or continuation):
        return last, False, False
    for i in reversed(user_indexes[:-1]):
        earlier = _user_text(messages[i]).strip()
        if earlier and not _is_tool_result_only(messages[i]) and not _is_continuation(earlier, max_words):
            return i, tool_loop, continuation
    return last, tool_loop, continuation


def _first_match(pattern: re.Pattern[str], text: str) -> str:
    m = pattern.search(text)
    return m.group(0).strip().lower() if m else ""


def classify(
    messages: list[dict],
    system: Any = None,
    tools: list[dict] | None = None,
    *,
    settings: RoutingSettings | None = None,
) -> Complexity:
    """Score how hard the request is (0-100) and say why."""
    if not isinstance(messages, list):
        raise ValueError("classify: messages must be a list of Messages API messages")
    s = settings or _DEFAULT_SETTINGS
    w = s.weights
    task_index, tool_loop, continuation = _find_task_message(messages, s.continuation_max_words)
    task_text = _user_text(messages[task_index]) if task_index is not None else ""
    parts = _split_ask(task_text)
    ask = parts.ask
    ask_words = _words(ask)
    material = parts.has_code or parts.has_trace or bool(parts.material)
    signals: dict[str, Any] = {}
    why: list[str] = []

    # 1. What is asked: the strongest task family in the ask sets the base.
    found = {
        "expert": _first_match(_EXPERT_TASK, ask),
        "complex": _first_match(_COMPLEX_TASK, ask),
        "reasoning": _first_match(_MODERATE_REASONING, ask),
        "moderate": _first_match(_MODERATE_TASK, ask),
        "light": _first_match(_LIGHT_TASK, ask),
    }
    domain_text = ask + "\n" + parts.material[:4000]
    domain_stems = {
        name: {m.group(0).lower() for m in rx.finditer(domain_text)} for name, rx in _HARD_DOMAINS.items()
    }
    domain_stems = {k: v for k, v in domain_stems.items() if v}
    tech = {m.group(0).lower() for m in _TECH_TERMS.finditer(domain_text)}
    maths_advanced = bool(_ADVANCED_MATHS.search(ask) or _ADVANCED_MATHS_SYMBOLS.search(ask))
    maths_intermediate = bool(_INTERMEDIATE_MATHS.search(ask))
    bug_report = (parts.has_code or parts.has_trace) and bool(_BUG_REPORT.search(ask))
    factual = (
        bool(_FACTUAL_QUESTION.search(ask)) and ask_words <= 25
        and not (domain_stems or maths_advanced or parts.has_trace)
    )
    if found["expert"]:
        task, verb, score = "expert", found["expert"], w.expert_task_base
    elif found["complex"] or bug_report:
        task, verb, score = "complex", found["complex"] or "problem with pasted code/logs", w.complex_task_base
    elif found["reasoning"]:
        task, verb, score = "moderate", found["reasoning"], w.moderate_task_base
    elif found["light"]:
        task, verb, score = "light", found["light"], w.light_task_base
    elif found["moderate"]:
        task, verb, score = "moderate", found["moderate"], w.moderate_task_base
    elif factual:
        task, verb, score = "light", "factual question", w.light_task_base
    elif parts.has_code or parts.has_trace or domain_stems or len(tech) >= 2 or ask_words >= 25:
        # An ask we cannot name, about code, logs or a technical situation: the
        # costly mistake is sending it to the cheap model, so it starts moderate.
        task, verb, score = "moderate", "unrecognised ask with technical context", w.moderate_task_base
    else:
        task, verb, score = "unknown", "", w.unknown_task_base
    signals["task"] = task
    why.append(f"{task} task" + (f" ('{verb}')" if verb else ""))
    heavy = task in ("expert", "complex")

    # 2. Maths.
    if maths_advanced:
        score += w.advanced_maths
        signals["maths"] = "advanced"
        why.append("advanced maths")
        heavy = True
    elif maths_intermediate:
        score += w.intermediate_maths
        signals["maths"] = "intermediate"
        why.append("maths")
    if _is_word_problem(ask, parts.has_code):
        steps = _word_problem_steps(ask)
        signals["word_problem_steps"] = steps
        if steps > 1:
            score += w.word_problem_per_step * (steps - 1)
            why.append(f"word problem, ~{steps} steps")
        if steps >= 3:
            heavy = True

    # 3. Hard domains and technical vocabulary (ask plus the head of the material).
    if domain_stems:
        n_stems = sum(len(v) for v in domain_stems.values())
        score += min(w.hard_domain + w.per_extra_hard_term * (n_stems - 1), w.hard_domain_cap)
        signals["domains"] = sorted(domain_stems)
        why.append("hard domain: " + ", ".join(sorted(domain_stems)))
        if task in ("expert", "complex"):
            score += w.heavy_task_in_hard_domain
    if tech:
        score += min(w.technical_term * len(tech), w.technical_terms_cap)
        signals["technical_terms"] = len(tech)

    # 4. Pasted code and errors.
    if parts.has_code:
        score += w.code_present
        if parts.code_lines > 60:
            score += w.code_large * (2 if parts.code_lines > 300 else 1)
        signals["code_lines"] = parts.code_lines
        why.append(f"code ({parts.code_lines} lines)")
    if parts.has_trace:
        score += w.error_trace
        signals["error_trace"] = True
        why.append("error trace/log")

    # 5. Several parts (list items, questions, distinct task verbs), constraints.
    verbs = {m.group(0).lower() for rx in (_EXPERT_TASK, _COMPLEX_TASK, _MODERATE_REASONING, _MODERATE_TASK) for m in rx.finditer(ask)}
    n_parts = max(parts.list_items if parts.mc_options < 3 else 0, ask.count("?"), len(verbs), 1)
    if n_parts > 1:
        score += min(w.per_extra_part * (n_parts - 1), w.parts_cap)
        signals["parts"] = n_parts
        why.append(f"{n_parts} parts")
    constraints = {m.group(0).lower() for m in _CONSTRAINTS.finditer(ask)}
    if constraints:
        score += min(w.per_constraint * len(constraints), w.constraints_cap)
        signals["constraints"] = len(constraints)
        why.append(f"{len(constraints)} constraints")
    if parts.mc_options >= 3:
        signals["multiple_choice"] = parts.mc_options

    # 6. Expected output size and length of the instruction itself.
    if _LONG_OUTPUT.search(ask):
        score += w.long_output
        signals["output"] = "long"
        why.append("long answer wanted")
    elif _SHORT_OUTPUT.search(ask):
        score += w.short_output
        signals["output"] = "short"
        why.append("short answer wanted")
    if ask_words > 60:
        score += w.long_ask * (2 if ask_words > 150 else 1)
        why.append(f"long instruction ({ask_words} words)")
    elif ask_words <= 10 and not heavy and not material and not domain_stems and not tool_loop and not continuation:
        score += w.short_ask
        why.append("short ask")
    signals["ask_words"] = ask_words

    # 7. Conversation depth, agent loop, context size. These say the work is
    # involved, not that the task is expert: they never lift a score into the
    # expert band by themselves (a long agent session stays off the priciest tier
    # unless its task asks for it).
    score_before_shape = score
    user_turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user" and not _is_tool_result_only(m))
    if user_turns >= 4:
        score += w.conversation_depth * (2 if user_turns >= 10 else 1)
        why.append(f"{user_turns} user turns")
    agentic = tool_loop or any(
        isinstance(m, dict) and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in m["content"])
        for m in messages[-12:]
    )
    if agentic:
        score += w.agentic
        signals["agentic"] = True
        why.append("agent tool loop")
    context_chars = sum(len(content_text(m.get("content", ""))) for m in messages if isinstance(m, dict))
    if system:
        context_chars += len(content_text(system))
    context_tokens = context_chars // _CHARS_PER_TOKEN
    bands = sum(context_tokens >= b for b in (2_000, 8_000, 32_000))
    if bands:
        score += w.context_size * bands
        why.append(f"~{context_tokens:,} tokens of context")
    signals["context_tokens_estimate"] = context_tokens
    if score_before_shape < s.expert_threshold <= score:
        score = s.expert_threshold - 1
        why.append("session shape alone does not make a task expert")
    if tools:
        signals["tools"] = len(tools)
    if tool_loop:
        signals["tool_loop"] = True
    if continuation:
        signals["continuation"] = True
        why.append("continues the earlier task")

    # 8. A light task stays light however long its material, unless something
    # heavier is asked as well (a hard domain alone does not count: translating
    # a security advisory is still translation).
    if task == "light" and not heavy and not agentic:
        cap = min(w.light_task_cap, s.moderate_threshold - 1)
        if score > cap:
            score = cap
            why.append("capped: light task")

    score = max(0, min(100, int(round(score))))
    level = level_for_score(score, s)
    signals["families"] = [k for k, v in found.items() if v]
    reason = f"{level} (score {score}): " + "; ".join(why)
    return Complexity(score=score, level=level, reason=reason, signals=signals)


# --------------------------------------------------------------------------- choose


def choose_model(
    complexity: Complexity,
    settings: RoutingSettings,
    *,
    pinned_model: str | None = None,
    session: SessionRoute | None = None,
    budget_used_share: float | None = None,
) -> RoutingDecision:
    """The model for this call, and why."""
    level = level_for_score(complexity.score, settings)
    if pinned_model:
        return RoutingDecision(pinned_model, level, complexity.score, f"pinned to {pinned_model}; {complexity.reason}", True, False, False)
    if not settings.enabled:
        return RoutingDecision(settings.default_model, level, complexity.score, f"routing disabled: default model; {complexity.reason}", False, False, False)

    notes: list[str] = []
    model = settings.tier_models[level]
    sticky = False
    under_budget_pressure = (
        budget_used_share is not None and settings.budget_downgrade_share is not None
        and budget_used_share >= settings.budget_downgrade_share
    )
    if session is not None and settings.sticky_sessions and session.level in _LEVEL_RANK:
        if _LEVEL_RANK[level] <= _LEVEL_RANK[session.level]:
            # A lower (or equal) level keeps the session's model and level: a
            # model switch would throw the prompt cache away, and a short
            # follow-up inside a hard task is still part of that task.
            level = session.level
            if not under_budget_pressure and _is_below_tier(session.model, level, settings):
                model = settings.tier_models[level]  # an earlier budget downgrade no longer applies
                notes.append(f"budget pressure over: back to {model}")
            else:
                sticky = model != session.model or level != level_for_score(complexity.score, settings)
                model = session.model
                notes.append(f"sticky: session stays on {model} ({level})")
        else:
            notes.append(f"level rose from {session.level}")

    downgraded = False
    if under_budget_pressure:
        lower = _one_tier_down(model, level, settings)
        if lower and lower != model:
            notes.append(f"budget {budget_used_share:.0%} used: {model} -> {lower}")
            model, downgraded = lower, True
        elif lower is None and model in settings.model_ladder():
            notes.append(f"budget {budget_used_share:.0%} used, but {model} is already the floor")

    reason = complexity.reason + ("; " + "; ".join(notes) if notes else "")
    return RoutingDecision(model, level, complexity.score, reason, False, sticky, downgraded)


def _is_below_tier(model: str, level: str, settings: RoutingSettings) -> bool:
    ladder = settings.model_ladder()
    tier = settings.tier_models[level]
    return model in ladder and ladder.index(model) < ladder.index(tier)


def _one_tier_down(model: str, level: str, settings: RoutingSettings) -> str | None:
    ladder = settings.model_ladder()
    if model not in ladder:
        return None  # a model outside the tiers (a sticky pin): leave it alone
    if _is_below_tier(model, level, settings):
        return None  # already downgraded earlier in the session: one step is all
    i = ladder.index(model)
    if i == 0:
        return None
    lower = ladder[i - 1]
    floor = settings.expert_floor_model
    if level == "expert" and floor in ladder and ladder.index(lower) < ladder.index(floor):
        return None
    return lower


def fallback_models(model: str, settings: RoutingSettings) -> list[str]:
    """Models to try next, in order, when ``model`` keeps answering 529."""
    chain = settings.overload_fallback_chain.get(model)
    if chain is None:
        chain = settings.overload_fallback_chain.get(catalog.undated(model), [])
    seen: list[str] = []
    for candidate in chain:
        if candidate != model and candidate not in seen:
            seen.append(candidate)
    return seen


_DEFAULT_SETTINGS = RoutingSettings()
