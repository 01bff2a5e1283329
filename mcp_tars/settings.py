"""Every section of ``performance-config.json`` as a pydantic model, and ``Config``.

A leaf: it imports nothing from the package at module level, so any module can
read its own settings without pulling in another lever (config.py loads files,
the levers hold behaviour). Every field has a default and a description; the
README's configuration reference is generated from these descriptions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


# --------------------------------------------------------------------------- errors


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- api


class ApiSettings(_Section):
    max_retries: int = Field(4, ge=0, le=20, description="Retries of a call on 429, 529, 5xx, timeouts and connection errors, before the fallback chain.")
    backoff_initial_seconds: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles per attempt, with full jitter.")
    backoff_max_seconds: float = Field(8.0, ge=0, le=600, description="Upper bound of one retry delay.")
    max_retry_after_seconds: float = Field(60.0, ge=0, le=3600, description="Longest retry-after from the API that is obeyed; a longer one goes to the fallback model instead.")
    timeout_seconds: float = Field(600.0, gt=0, le=3600, description="Timeout of one API request.")
    stream_threshold_max_tokens: int = Field(16000, ge=1, description="Calls with max_tokens above this are streamed (the SDK refuses long non-streaming calls).")


# --------------------------------------------------------------------------- cache

QUERY_TYPES = ("research", "fact_lookup", "code_pattern", "template", "default")


class CacheSettings(BaseModel):
    """The ``cache`` section of performance-config.json."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Serve and store answers from the response cache.")
    semantic: bool = Field(
        True,
        description="Also answer paraphrases of a cached question (same context, last user message "
        "reworded). Off: exact repeats only.",
    )
    scorer: Literal["lexical", "embedding"] = Field(
        "lexical",
        description="Similarity scorer for semantic matches: 'lexical' (built in, no downloads) or "
        "'embedding' (local MiniLM model; needs the 'embeddings' extra). Both sit behind the same guards.",
    )
    similarity_threshold: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="A semantic match needs similarity >= this value. HIGHER is STRICTER: 1.0 accepts "
        "only questions with identical analysed terms; lower values accept more filler and pronoun "
        "differences (lexical) or looser paraphrases (embedding).",
    )
    max_substitutions: int = Field(
        1,
        ge=0,
        le=3,
        description="Content words one question may swap for different ones and still match (only the "
        "embedding scorer accepts swaps; the lexical scorer never does). Added or dropped words always veto.",
    )
    semantic_max_chars: int = Field(
        4000, ge=1, description="Last user messages longer than this are matched exactly only."
    )
    ttl_seconds: dict[str, int] = Field(
        default_factory=lambda: {
            "research": 3600,
            "fact_lookup": 7200,
            "code_pattern": 86400,
            "template": 86400,
            "default": 3600,
        },
        description="Time to live of a cached answer, by detected query type (research, fact_lookup, "
        "code_pattern, template, default).",
    )
    max_entries: int = Field(100_000, ge=1, description="Most answers kept; above it the lowest-priority ones are evicted.")
    max_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Most bytes of cached answers kept; above it the lowest-priority ones are evicted."
    )
    evict_fraction: float = Field(
        0.05,
        gt=0.0,
        le=0.5,
        description="When a limit is exceeded, evict down to (1 - this) x the limit in one go, so eviction "
        "runs once per many inserts instead of on every insert.",
    )
    eviction_recency_half_life_seconds: float = Field(
        86400.0,
        gt=0,
        description="Eviction priority is (1 + hits) x money a hit saves / size, halved after this many "
        "seconds without use.",
    )
    cache_high_temperature: bool = Field(
        False, description="Also cache calls whose explicit temperature is above max_cacheable_temperature."
    )
    max_cacheable_temperature: float = Field(
        0.7,
        ge=0.0,
        le=2.0,
        description="Calls that explicitly ask for a temperature above this want varied answers and are "
        "neither served from nor stored in the cache (unless cache_high_temperature). Calls that leave "
        "temperature unset are cacheable.",
    )
    namespace: str | None = Field(
        None,
        description="Share one cache under this name across API keys (a team cache). Null: every tenant "
        "(hash of the API key) has its own cache.",
    )
    hit_flush_seconds: float = Field(
        5.0,
        ge=0.0,
        description="Hit counts and recency are written in batches at most this often (lookups stay reads).",
    )

    @field_validator("ttl_seconds")
    @classmethod
    def _check_ttls(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(QUERY_TYPES))
        if unknown:
            raise ValueError(f"unknown query type(s) {unknown} in cache.ttl_seconds; use {list(QUERY_TYPES)}")
        bad = {k: v for k, v in value.items() if not isinstance(v, int) or v <= 0}
        if bad:
            raise ValueError(f"cache.ttl_seconds values must be positive whole seconds, got {bad}")
        return {**{"default": 3600}, **value}

    def ttl_for(self, query_type: str) -> int:
        return self.ttl_seconds.get(query_type, self.ttl_seconds["default"])


# --------------------------------------------------------------------------- routing

LEVELS: tuple[str, ...] = ("simple", "moderate", "complex", "expert")

HAIKU = "claude-haiku-5-5"
SONNET = "claude-sonnet-5-5"
OPUS = "claude-opus-5-5"


class ComplexityWeights(BaseModel):
    """Points each signal adds to the 0-100 complexity score."""

    model_config = ConfigDict(extra="forbid")

    expert_task_base: int = Field(70, description="Base score when the ask is a proof, derivation, formal verification, threat model or research-grade design.")
    complex_task_base: int = Field(46, description="Base score for debugging, refactoring, implementing, reviewing, analysing trade-offs, system design.")
    moderate_task_base: int = Field(28, description="Base score for explaining, writing a standard piece of code or prose, comparing, planning.")
    light_task_base: int = Field(6, description="Base score for light transformations: fix typos, translate, summarise, reformat, extract, look up a fact.")
    unknown_task_base: int = Field(16, description="Base score when no task verb is recognised.")
    light_task_cap: int = Field(20, description="A light task with no heavier signal never scores above this (below the moderate threshold), whatever its length.")
    advanced_maths: int = Field(18, description="Proof-level or higher maths (modular arithmetic, infinitely many, iff, eigenvalues, convergence, ...).")
    intermediate_maths: int = Field(10, description="Calculus, probability, linear algebra, combinatorics.")
    word_problem_per_step: int = Field(9, description="Per estimated reasoning step beyond the first in a maths word problem.")
    hard_domain: int = Field(10, description="First hard-domain term (concurrency, distributed systems, security, systems, algorithms, ML, sciences, law).")
    per_extra_hard_term: int = Field(5, description="Per further distinct hard-domain term.")
    hard_domain_cap: int = Field(25, description="Most points hard-domain terms can add.")
    heavy_task_in_hard_domain: int = Field(8, description="Extra when a complex/expert task meets a hard domain (e.g. design + distributed).")
    technical_term: int = Field(2, description="Per distinct general technical term, up to technical_terms_cap.")
    technical_terms_cap: int = Field(10, description="Most points general technical terms can add.")
    code_present: int = Field(6, description="The request carries code.")
    code_large: int = Field(6, description="More than 60 lines of code (twice above 300 lines).")
    error_trace: int = Field(8, description="A stack trace, compiler error or error log is pasted.")
    per_extra_part: int = Field(4, description="Per request part beyond the first (numbered items, several questions).")
    parts_cap: int = Field(16, description="Most points multi-part requests can add.")
    per_constraint: int = Field(3, description="Per distinct constraint (must, without, at most, O(n), thread-safe, ...).")
    constraints_cap: int = Field(12, description="Most points constraints can add.")
    long_output: int = Field(8, description="The ask wants a long or thorough answer (detailed, comprehensive, complete implementation, essay).")
    short_output: int = Field(-8, description="The ask wants a short answer (one word, briefly, yes or no).")
    long_ask: int = Field(5, description="The instruction itself is long (over 60 words; twice above 150).")
    short_ask: int = Field(-6, description="A bare ask of ten words or fewer with nothing pasted and no hard vocabulary.")
    conversation_depth: int = Field(4, description="Four or more user turns (twice from ten turns).")
    agentic: int = Field(10, description="The conversation is an agent's tool loop (tool_use/tool_result history).")
    context_size: int = Field(3, description="Per context-size band (2K, 8K, 32K estimated tokens), at most three bands.")

    @model_validator(mode="after")
    def _bases_ordered(self) -> "ComplexityWeights":
        if not (self.light_task_base <= self.moderate_task_base <= self.complex_task_base <= self.expert_task_base):
            raise ValueError(
                "routing.weights: task bases must rise light <= moderate <= complex <= expert; "
                f"got {self.light_task_base}, {self.moderate_task_base}, {self.complex_task_base}, {self.expert_task_base}"
            )
        return self


def _default_tiers() -> dict[str, str]:
    return {"simple": HAIKU, "moderate": SONNET, "complex": SONNET, "expert": OPUS}


def _default_fallbacks() -> dict[str, list[str]]:
    # On persistent overload, an answer from a neighbouring tier beats no answer.
    return {OPUS: [SONNET], SONNET: [HAIKU], HAIKU: [SONNET]}


class RoutingSettings(BaseModel):
    """Model routing: score thresholds, level -> model, session and budget rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Route by complexity; when false every unpinned call uses default_model.")
    moderate_threshold: int = Field(25, ge=1, le=100, description="Scores from here up are 'moderate'; below is 'simple'.")
    complex_threshold: int = Field(50, ge=1, le=100, description="Scores from here up are 'complex'.")
    expert_threshold: int = Field(75, ge=1, le=100, description="Scores from here up are 'expert'.")
    tier_models: dict[str, str] = Field(default_factory=_default_tiers, description="Model for each level: simple, moderate, complex, expert.")
    default_model: str = Field(SONNET, exclude=True, description="Model of unpinned calls when routing is disabled. Not a knob of its own: the configuration sets it from the top-level default_model (the baseline).")
    sticky_sessions: bool = Field(True, description="Within a session_id keep the session's model unless the level rises (a model switch throws away the prompt cache).")
    continuation_max_words: int = Field(12, ge=0, description="A user turn this short that only says 'continue', 'yes', 'try again', ... keeps the task of the turn before it.")
    budget_downgrade_share: float | None = Field(0.8, ge=0, le=1, description="When this share of the budget is used, route one tier down (null disables).")
    expert_floor_model: str = Field(SONNET, description="Budget downgrades never take expert work below this model.")
    overload_fallback_chain: dict[str, list[str]] = Field(default_factory=_default_fallbacks, description="Models to try, in order, when a model keeps answering 529 overloaded.")
    weights: ComplexityWeights = Field(default_factory=ComplexityWeights, description="Points each complexity signal adds.")

    @model_validator(mode="after")
    def _check(self) -> "RoutingSettings":
        if not (self.moderate_threshold < self.complex_threshold < self.expert_threshold):
            raise ValueError(
                "routing: thresholds must rise moderate < complex < expert; got "
                f"{self.moderate_threshold}, {self.complex_threshold}, {self.expert_threshold}"
            )
        if set(self.tier_models) != set(LEVELS):
            raise ValueError(f"routing.tier_models needs exactly the keys {list(LEVELS)}; got {sorted(self.tier_models)}")
        for model, chain in self.overload_fallback_chain.items():
            if model in chain:
                raise ValueError(f"routing.overload_fallback_chain: {model!r} lists itself as its own fallback")
        return self

    def model_ladder(self) -> list[str]:
        """Distinct tier models from cheapest to strongest (the steps a downgrade walks)."""
        ladder: list[str] = []
        for level in LEVELS:
            model = self.tier_models[level]
            if model not in ladder:
                ladder.append(model)
        return ladder


# --------------------------------------------------------------------------- prompt cache


def _default_minimums() -> dict[str, int]:
    # Minimum cacheable prefix per model (prefix match, longest wins). Shorter
    # prefixes are silently not cached. Documented values (anthropic-api.md):
    # 512 Opus 5 / Fable 5, 5.1; 1,024 Opus 4.8, Sonnet 5, Sonnet 4.5; 2,048
    # Opus 4.7, Sonnet 4.6 (observed); 4,096 Opus 4.5/4.6, Haiku 4.5.
    # Not documented for the 5.5 models: we assume 1,024 for Sonnet/Opus 5.5
    # (like Sonnet 5 and Opus 4.8) and 2,048 for Haiku 5.5 (the Haiku line has
    # always had a higher minimum); the simulator uses the same guesses.
    return {
        "claude-haiku-5-5": 2048,
        "claude-sonnet-5-5": 1024,
        "claude-opus-5-5": 1024,
        "claude-opus-5": 512,
        "claude-fable-5": 512,
        "claude-mythos-5": 1024,
        "claude-sonnet-5": 1024,
        "claude-opus-4-8": 1024,
        "claude-opus-4-7": 2048,
        "claude-opus-4-6": 4096,
        "claude-opus-4-5": 4096,
        "claude-sonnet-4-6": 2048,
        "claude-sonnet-4-5": 1024,
        "claude-haiku-4-5": 4096,
    }


class PromptCacheSettings(BaseModel):
    """Prompt caching: where breakpoints go and which TTL they get."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Add cache breakpoints to requests whose prefix is long enough to cache.")
    strategy: Literal["explicit", "auto", "auto_5m"] = Field(
        "explicit",
        description=(
            "How breakpoints are set. 'explicit' (ours): the moving breakpoint on the last block of the last user "
            "message, plus the stable-prefix and previous-turn anchors, with the TTL chosen per call. 'auto': the same, "
            "but the moving breakpoint is the top-level automatic cache_control. 'auto_5m': plain 5-minute automatic "
            "caching only (one top-level cache_control with ttl 5m, no anchors, no TTL choice), the way a client "
            "without mcp-tars would do it; kept as a baseline for benchmarks."
        ),
    )
    min_cacheable_tokens: dict[str, int] = Field(
        default_factory=_default_minimums,
        description="Minimum cacheable prefix in tokens, by model id prefix (longest match wins). 5.5 values are assumptions: the API does not document them.",
    )
    default_min_cacheable_tokens: int = Field(1024, ge=1, description="Minimum for a model no prefix matches.")
    min_length_margin: float = Field(
        0.1, ge=0, lt=1,
        description="Offline token counts are estimates: mark a prefix once its estimate reaches (1 - margin) x the minimum. A marker below the real minimum is harmless (silently not cached).",
    )
    adopt_caller_markers_without_ttl: bool = Field(
        True,
        description=(
            "A cache_control the caller set without a ttl (the API's default, 5 minutes) is read as 'cache here', not "
            "'cache here for 5 minutes': it gets the TTL chosen for the request, like our own breakpoints (same "
            "economics, same session timing), kept consistent with any caller markers that carry an explicit ttl "
            "(a 1h breakpoint may not follow a 5m one). A marker with an explicit ttl ('5m' or '1h') is never changed. "
            "false: TTL-less caller markers stay 5-minute, which forces 5m on every breakpoint after them."
        ),
    )
    add_to_marked_requests: bool = Field(True, description="Also add breakpoints (in free slots) to a request that already carries the caller's own cache_control markers; false: such a request only has its TTL-less markers adopted (the gateway's setting, so an agent that places its own breakpoints keeps exactly those).")
    anchor_previous_turn: bool = Field(True, description="Also mark where the previous turn's moving breakpoint sat, so a turn that adds more than the API's ~20-block lookback still reads its cache.")
    ttl_1h_min_gap_seconds: float = Field(
        285, gt=0,
        description="A gap between two calls of a session longer than this counts as one a 5-minute entry does not survive (300 s TTL, less a margin for clock skew and request latency).",
    )
    ttl_1h_max_gap_seconds: float = Field(3540, gt=0, description="Gaps longer than this outlive even the 1-hour TTL (3,600 s, less the same margin): 1h does not help there.")
    long_gap_prior_agent: float = Field(
        0.25, ge=0, le=1,
        description="Expected share of gaps between 5 minutes and 1 hour for an agent session (tools in the request) before any gap is observed: agents wait on people, builds and heartbeats.",
    )
    long_gap_prior_chat: float = Field(0.1, ge=0, le=1, description="The same expectation for a session without tools.")
    prior_weight_calls: float = Field(3, ge=0, description="How many observed gaps the prior is worth; observations outweigh it as they accumulate.")
    write_5m_multiplier: float = Field(1.25, gt=0, description="5-minute cache write price / input price (API pricing).")
    write_1h_multiplier: float = Field(2.0, gt=0, description="1-hour cache write price / input price (API pricing).")
    read_multiplier: float = Field(0.1, ge=0, description="Cache read price / input price; 0.1 is the usual ratio (Sonnet 5.5 is 0.05: using 0.1 keeps the 1h choice conservative).")

    @model_validator(mode="after")
    def _check(self) -> "PromptCacheSettings":
        if self.ttl_1h_max_gap_seconds <= self.ttl_1h_min_gap_seconds:
            raise ValueError("prompt_cache: ttl_1h_max_gap_seconds must be larger than ttl_1h_min_gap_seconds")
        if not self.write_1h_multiplier > self.write_5m_multiplier > self.read_multiplier:
            raise ValueError("prompt_cache: multipliers must satisfy write_1h > write_5m > read (as in the API's pricing)")
        for model, minimum in self.min_cacheable_tokens.items():
            if minimum < 1:
                raise ValueError(f"prompt_cache.min_cacheable_tokens[{model!r}] must be a positive token count; got {minimum}")
        return self

    def minimum_for(self, model: str) -> int:
        best = ""
        for prefix in self.min_cacheable_tokens:
            if model.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.min_cacheable_tokens[best] if best else self.default_min_cacheable_tokens


# --------------------------------------------------------------------------- pruning

LEVEL_NAMES = ("light", "medium", "aggressive")


class PruningLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_last_messages: int = Field(10, ge=1, le=10_000, description="Most recent messages kept verbatim (apart from waste removal); older ones are dropped. Rounded up by one when needed to start the kept part on a valid turn.")
    summarize: bool = Field(True, description="Replace dropped messages by a summary of their facts; false leaves only a one-line marker saying how much was dropped.")
    summary_max_tokens: int = Field(2000, ge=0, le=100_000, description="Largest summary, in tokens.")
    summary_max_share: float = Field(0.3, gt=0, le=1, description="Largest summary as a share of the tokens it replaces, so that pruning a short history still saves.")
    summary_min_tokens: int = Field(400, ge=0, le=100_000, description="The summary may always use this many tokens, whatever summary_max_share allows (a short history can be dense in facts).")


class PruningLevels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    light: PruningLevel = Field(default_factory=lambda: PruningLevel(keep_last_messages=20, summary_max_tokens=3000, summary_max_share=0.2), description="Interactive sessions: keep the last 20 messages.")
    medium: PruningLevel = Field(default_factory=lambda: PruningLevel(keep_last_messages=10, summary_max_tokens=5000, summary_max_share=0.2), description="Long-running tasks: keep the last 10 messages plus a summary.")
    aggressive: PruningLevel = Field(default_factory=lambda: PruningLevel(keep_last_messages=3, summary_max_tokens=2000, summary_max_share=0.15), description="Batch work: a summary plus the last 3 messages.")

    def get(self, name: str) -> PruningLevel:
        return getattr(self, name)


class PruningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Prune automatically inside optimized_complete when a request passes auto_threshold_tokens.")
    auto_threshold_tokens: int = Field(30_000, ge=1, description="optimized_complete prunes a request whose estimated input (system + messages) is above this many tokens.")
    auto_target_tokens: int = Field(12_000, ge=1, description="Target size of automatic pruning. Well below the threshold on purpose: the following turns then grow for a while without pruning again, so the pruned prefix stays byte-stable and cacheable.")
    levels: PruningLevels = Field(default_factory=PruningLevels, description="What each level keeps.")
    auto_summary_target_share: float = Field(0.4, ge=0, le=0.9, description="level=auto: the summary may grow beyond its level's summary_max_tokens up to this share of the target, when the target leaves that room.")
    light_max_ratio: float = Field(1.5, ge=1, description="level=auto: context/target ratio up to which the light level is tried first.")
    medium_max_ratio: float = Field(3.0, ge=1, description="level=auto: ratio up to which medium is tried first; above it, aggressive.")
    budget_escalate_share: float = Field(0.8, gt=0, le=1, description="level=auto: with this share of the budget used, start one level more aggressive.")
    budget_aggressive_share: float = Field(0.95, gt=0, le=1, description="level=auto: with this share of the budget used, start at aggressive.")
    oversized_tool_result_tokens: int = Field(2000, ge=50, description="A kept tool result (or tool input string) above this many tokens keeps only its head and tail.")
    oversized_text_tokens: int = Field(6000, ge=50, description="A kept text block of an older user or assistant message above this many tokens keeps only its head and tail.")
    head_tokens: int = Field(500, ge=10, description="Tokens kept from the start of an oversized block.")
    tail_tokens: int = Field(300, ge=0, description="Tokens kept from the end of an oversized block.")
    duplicate_min_tokens: int = Field(40, ge=1, description="Tool outputs and file contents at least this long are replaced by a marker when the same text appears again later.")
    superseded_min_tokens: int = Field(40, ge=1, description="An older full version of a file at least this long is replaced by a marker when a newer full version appears later.")
    keep_images_last_messages: int = Field(4, ge=0, description="Images and documents in the last N messages stay; older ones become a text marker (the last user turn always keeps its own).")
    drop_old_thinking: bool = Field(True, description="Remove thinking blocks except those of the final assistant turn (the API requires only those; older ones cost tokens for nothing).")
    redact_credentials: bool = Field(True, description="Replace credential values (API keys, tokens, passwords) by [REDACTED] in every message pruning keeps or rewrites, the last user turn and the cached prefix excepted. Summaries never contain credential values regardless.")
    abstractive: bool = Field(False, description="Summarise dropped history with the cheapest configured model (its cost is recorded in the ledger; the same history is summarised once). Off: an offline extractive summary.")
    summarizer_model: str | None = Field(None, description="Model of abstractive summaries; null picks the cheapest model of the price table.")
    summary_max_output_tokens: int = Field(
        1500, ge=100, le=16_000,
        description="max_tokens of the abstractive summary call (abstractive: true). Output is the priciest token class, and pruning trims the summary to its level's budget anyway (completing a short one with extracted facts). Raise it when the levels allow summaries longer than this and you want the summarizer model to write them; lower it to cap what a summary can cost.",
    )
    request_keep_chars: int = Field(
        4000, ge=200, le=200_000,
        description="When pruning drops the message holding the user's current request (a long tool loop is still answering it), the summary quotes that request verbatim up to this many characters (a longer one keeps its first and last halves). Raise it for agents whose tasks come with long specifications that must survive pruning; lower it to save tokens when requests are long pastes.",
    )
    final_turn_max_tokens: int = Field(
        150_000, ge=1000,
        description="The final user turn (what the model answers now) is kept verbatim, unless it alone is larger than this: then automatic pruning shortens its tool results (never the user's own words) so that one giant tool output does not push the request past the model's context window. A note says so.",
    )
    allow_cache_breakpoint_move: bool = Field(True, description="Prune inside the cached prefix when that is cheaper even after writing the cache again (the reason is recorded).")
    cache_read_price_ratio: float = Field(0.1, gt=0, le=1, description="Cache-read price as a share of the input price, for the breakpoint decision.")
    cache_write_price_ratio: float = Field(1.25, ge=1, le=3, description="Cache-write price as a share of the input price, for the breakpoint decision.")
    exact_count_max_chars: int = Field(600_000, ge=1000, description="The most recent messages up to this many characters are counted exactly; older ones (which pruning drops) are counted on a sample, so that counting never dominates the time of pruning a huge history.")


# --------------------------------------------------------------------------- batches, budget, server, monitoring


class BatchSettings(_Section):
    batch_size: int = Field(20, ge=1, le=100_000, description="A category's queued tasks are submitted as one batch once this many are waiting.")
    batch_timeout_seconds: int = Field(300, ge=0, description="A queued task is submitted at the latest this long after it was queued.")
    off_peak_start_hour_utc: int = Field(0, ge=0, le=23, description="Start of the off-peak window (UTC hour) in which low-priority work goes out.")
    off_peak_end_hour_utc: int = Field(6, ge=0, le=24, description="End of the off-peak window (UTC hour, exclusive).")
    low_priority_waits_for_off_peak: bool = Field(True, description="Hold low-priority tasks for the off-peak window when their deadline allows.")
    expected_batch_seconds: int = Field(3600, ge=1, description="How long a batch is expected to take; a task whose deadline is nearer than this runs immediately.")
    max_attempts: int = Field(3, ge=1, le=20, description="Tries per task (errored and expired results are retried) before it is marked failed.")
    poll_interval_seconds: float = Field(30.0, gt=0, description="How often the background worker polls submitted batches.")
    worker_enabled: bool = Field(True, description="Run the background batch worker inside the server.")
    prefix_cache_ttl: Literal["5m", "1h"] = Field("1h", description="Prompt-cache TTL on the prefix shared by tasks of one batch.")
    immediate_concurrency: int = Field(4, ge=1, le=64, description="Queued tasks whose deadline is nearer than a batch takes run at once, at the standard rate, this many at a time. Raise it to drain a large overdue backlog faster; lower it when the API's rate limits (429s) are tight.")


class BudgetSettings(_Section):
    daily_usd: float | None = Field(None, gt=0, description="Daily spending limit in USD (UTC days); null for none.")
    monthly_usd: float | None = Field(None, gt=0, description="Monthly spending limit in USD (calendar month, UTC); null for none.")
    warn_share: float = Field(0.8, gt=0, le=1, description="Share of a budget at which results and reports carry a warning.")
    policy: Literal["block", "downgrade", "defer"] = Field("downgrade", description="What happens to a call that would exceed a budget: block it with an error, route it one tier down (expert work never below routing.expert_floor_model), or queue it for the Batches API.")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Bind address of the HTTP transport.")
    port: int = Field(8765, ge=0, le=65535, description="Port of the HTTP transport.")
    bearer_token_env: str = Field("MCP_TARS_TOKEN", description="Environment variable holding the bearer token the HTTP transport requires when bound to a non-loopback address.")
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted.")
    max_prompt_chars: int = Field(12_000_000, ge=1000, description="Largest prompt (all text of a request) accepted, in characters.")
    max_messages: int = Field(20_000, ge=1, description="Most messages accepted in one request.")


class GatewaySettings(_Section):
    upstream_base_url: str | None = Field(None, description="Where the gateway sends requests; null: $ANTHROPIC_BASE_URL, else https://api.anthropic.com.")
    host: str = Field("127.0.0.1", description="Bind address of `mcp-tars gateway` (loopback only: the gateway forwards its clients' credentials).")
    port: int = Field(8765, ge=0, le=65535, description="Port of `mcp-tars gateway` (point ANTHROPIC_BASE_URL at http://127.0.0.1:PORT).")
    on_http_server: bool = Field(True, description="Also serve the gateway's routes (/v1/messages...) on `mcp-tars serve --transport http` when it is bound to loopback.")
    response_cache: bool = Field(True, description="Answer an exact repeat of an earlier request (same body, same betas, same tenant) from the response cache; a streamed request gets the answer replayed as an event stream. Only complete text answers are cached (never tool calls).")
    semantic_cache: bool = Field(False, description="Also answer paraphrases from the response cache (off: a client asked for a fresh answer to different words).")
    prompt_cache: bool = Field(True, description="Prompt caching: cache_control markers the client set without a ttl get the TTL chosen for the session (prompt_cache section); requests without any marker get our breakpoints. Markers the client set are never moved or removed.")
    routing: bool = Field(False, description="Route requests to the model the routing section picks instead of the one the client asked for (off: changing a client's model is not transparent).")
    pruning: bool = Field(False, description="Prune long conversations as the pruning section says (off: the client sent the context it wants; Claude Code compacts its own).")
    session_headers: list[str] = Field(default_factory=lambda: ["x-claude-code-session-id", "x-session-id"], description="Request headers whose value becomes the ledger's session_id (first present wins); reports then group Claude Code's spend by session.")
    agent_headers: list[str] = Field(default_factory=lambda: ["x-claude-code-agent-id", "x-claude-code-parent-agent-id"], description="Request headers recorded with each ledger row's decisions (which sub-agent of a session made the call).")


class MonitoringSettings(_Section):
    metrics_log: str | None = Field("monitoring_logs/optimization-metrics.log", description="JSON-lines metrics log, one line per call (relative paths are under the data directory); null to disable.")
    retention_days: int | None = Field(None, ge=1, description="Delete cached prompts and answers older than this many days; null keeps them until their TTL.")
    store_prompts_in_cache: bool = Field(True, description="Keep prompts and answers in the response cache; false disables the response cache entirely.")


# --------------------------------------------------------------------------- reports and heartbeat


class ReportSettings(BaseModel):
    """Knobs of the reports (the ``reports`` section of performance-config.json)."""

    model_config = ConfigDict(extra="forbid")

    top_sessions: int = Field(50, ge=1, le=10_000, description="Sessions listed one by one in a report grouped by session; the rest are gathered in one '(other sessions)' row so the groups still add up to the totals.")
    daily_tree_days: int = Field(7, ge=1, le=366, description="Most days drawn as before/after trees in a Markdown report grouped by day (the newest).")
    target_savings_share: float = Field(0.30, ge=0, le=1, description="Savings target shown on the dashboard, as a share of the baseline (the original brief aims at 30-40%).")


class HeartbeatSettings(BaseModel):
    """Targets the heartbeat checks (the ``heartbeat`` section of performance-config.json)."""

    model_config = ConfigDict(extra="forbid")

    window: Literal["today", "yesterday", "7d", "30d", "month", "all"] = Field("7d", description="Period the rate checks look at (UTC days).")
    min_calls: int = Field(20, ge=0, description="Below this many calls in the window, rate checks pass with 'not enough calls to judge'.")
    min_cache_hit_rate: float = Field(0.20, ge=0, le=1, description="Share of calls answered by the response cache (the original brief targets 20-25%).")
    min_routed_share: float = Field(0.30, ge=0, le=1, description="Share of calls that model routing made cheaper than the default model (the brief targets 45-50% on the cheap tier).")
    min_savings_share: float = Field(0.30, ge=0, le=1, description="Total saved as a share of the baseline (the brief targets 30-40%).")
    max_queued_tasks: int = Field(1000, ge=0, description="Most deferred tasks waiting in the queue before the backlog counts as too large.")
    max_batch_hours: float = Field(24.0, gt=0, description="A submitted Message Batch still open after this many hours counts as stuck (the API finishes within 24 h).")
    record_alerts: bool = Field(True, description="Record a missed target as an alert (once per check and UTC day).")


# --------------------------------------------------------------------------- the whole file


class Config(_Section):
    default_model: str = Field("claude-sonnet-5-5", description="The model every call would use without mcp-tars: the baseline of every saving, and the model of unrouted calls.")
    tenant_namespace: str | None = Field(None, description="Cache and report namespace; null derives it from a hash of the API key.")
    api: ApiSettings = Field(default_factory=ApiSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    prompt_cache: PromptCacheSettings = Field(default_factory=PromptCacheSettings)
    pruning: PruningSettings = Field(default_factory=PruningSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    price_overrides: dict[str, dict[str, float]] = Field(default_factory=dict, description="Per-model price fields (USD per million tokens) that win over the packaged price table.")

    @model_validator(mode="after")
    def _one_default_model(self) -> "Config":
        # routing falls back to the same model that baselines are measured against
        if "default_model" in self.routing.model_fields_set and self.routing.default_model != self.default_model:
            raise ValueError("routing.default_model is set from the top-level default_model; remove it from the "
                             "routing section and set default_model instead")
        self.routing.default_model = self.default_model
        return self

    @model_validator(mode="after")
    def _check_price_overrides(self) -> "Config":
        for model, fields in self.price_overrides.items():
            negative = [k for k, v in fields.items() if v < 0]
            if negative:
                raise ValueError(f"price_overrides.{model}: prices cannot be negative ({negative})")
        from .pricing import PriceTable  # pricing is itself a leaf; imported here so this module stays one

        PriceTable(overrides=self.price_overrides)  # unknown fields, or a new model without every price
        return self

