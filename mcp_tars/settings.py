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
        "reworded), found with local static embeddings (WordLlama, shipped in its wheel). Off: exact repeats only.",
    )
    decision_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="A semantic match needs the calibrated probability that both questions have the same answer "
        ">= this value. HIGHER is STRICTER. Null: the fitted operating point shipped in "
        "mcp_tars/data/cache_decision.json (chosen for at most 0.15% wrong answers on non-duplicate Quora pairs, "
        "cross-validated). Guards (numbers, negation, entities, order, deixis...) veto before any threshold.",
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


def _default_tiers() -> dict[str, str | None]:
    # null: the default model. Only the cheap tier is named: by default routing
    # only ever picks the default model or a cheaper one.
    return {"simple": HAIKU, "moderate": None, "complex": None, "expert": None}


def _default_fallbacks() -> dict[str, list[str]]:
    # On persistent overload, an answer from a neighbouring tier beats no answer
    # (never one dearer than the default model unless allow_upgrade).
    return {OPUS: [SONNET], SONNET: [HAIKU], HAIKU: [SONNET]}


# knobs of the hand-tuned scorer that the fitted router replaced
_REMOVED_ROUTING_KEYS = {
    "weights": "the router's weights are fitted to data and shipped in mcp_tars/data/router.json "
               "(python -m bench.fit_router); use routing.strong_threshold to trade cost for quality",
    "moderate_threshold": "the cheap/strong cut is routing.strong_threshold (a probability, 0-1)",
}


class RoutingSettings(BaseModel):
    """Model routing: the fitted router's dial, level -> model, session and budget rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Route by the fitted router; when false every unpinned call uses default_model.")
    strong_threshold: float = Field(0.33, gt=0, le=1, description="The dial between money and quality: a call goes to the strong tier (the default model) when the router's probability that the cheap model fails where the strong one succeeds is at least this; below it, to the cheap tier. Lower sends more to the strong tier (better answers, higher bill); `python -m bench.routing` prints the share, accuracy and cost for each value.")
    agent_strong_threshold: float = Field(0.05, ge=0, le=1, description="The same cut for agent turns (tools offered or tool calls in the conversation): they stay on the default model unless the probability is below this (strong evidence the turn is simple). 0 keeps every agent turn on the default model.")
    complex_threshold: float = Field(0.6, gt=0, le=1, description="Above the dial, a probability from here up is level 'complex' (else 'moderate').")
    expert_threshold: float = Field(0.9, gt=0, le=1, description="A probability from here up is level 'expert' (the upgrade tier, when allowed).")
    tier_models: dict[str, str | None] = Field(default_factory=_default_tiers, description="Model for each level: simple, moderate, complex, expert; null means the default model.")
    allow_upgrade: bool = Field(False, description="Allow models dearer than default_model: expert-level calls go to upgrade_model, and the tier map and overload chain may name dearer models. Off: routing only ever picks the default model or a cheaper one. On with the defaults, expert calls cost about twice the default (Opus 5.5 vs Sonnet 5.5 prices).")
    upgrade_model: str | None = Field(OPUS, description="Model of expert-level calls when allow_upgrade is on (null: the tier map's expert model).")
    model_path: str | None = Field(None, description="A router model file written by `python -m bench.fit_router` (null: the packaged mcp_tars/data/router.json).")
    default_model: str = Field(SONNET, exclude=True, description="Model of unpinned calls when routing is disabled. Not a knob of its own: the configuration sets it from the top-level default_model (the baseline).")
    sticky_sessions: bool = Field(True, description="Within a session_id keep the session's model unless the level rises (a model switch throws away the prompt cache).")
    continuation_max_words: int = Field(12, ge=0, description="A user turn this short that only says 'continue', 'yes', 'try again', ... is scored on the task of the turn before it.")
    budget_downgrade_share: float | None = Field(0.8, ge=0, le=1, description="When this share of the budget is used, route one tier down (null disables).")
    expert_floor_model: str | None = Field(None, description="Budget downgrades never take expert work below this model (null: the default model).")
    overload_fallback_chain: dict[str, list[str]] = Field(default_factory=_default_fallbacks, description="Models to try, in order, when a model keeps answering 529 overloaded (models dearer than default_model are skipped unless allow_upgrade).")

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data):
        if isinstance(data, dict):
            for key, why in _REMOVED_ROUTING_KEYS.items():
                if key in data:
                    raise ValueError(f"routing.{key} no longer exists: {why}; remove it from the routing section")
        return data

    @model_validator(mode="after")
    def _check(self) -> "RoutingSettings":
        if not (self.complex_threshold <= self.expert_threshold):
            raise ValueError(
                "routing: thresholds must rise complex_threshold <= expert_threshold; got "
                f"{self.complex_threshold}, {self.expert_threshold}"
            )
        if set(self.tier_models) != set(LEVELS):
            raise ValueError(f"routing.tier_models needs exactly the keys {list(LEVELS)}; got {sorted(self.tier_models)}")
        for model, chain in self.overload_fallback_chain.items():
            if model in chain:
                raise ValueError(f"routing.overload_fallback_chain: {model!r} lists itself as its own fallback")
        return self


# --------------------------------------------------------------------------- prompt cache


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
        default_factory=dict,
        description="Overrides of the minimum cacheable prefix in tokens, by model id prefix (longest match wins). Empty: the model catalogue's values (data/models.json; those the API does not document, such as the 5.5 models', are marked as assumptions there).",
    )
    default_min_cacheable_tokens: int = Field(1024, ge=1, description="Minimum for a model neither the overrides nor the model catalogue know.")
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
        if best:
            return self.min_cacheable_tokens[best]
        from .catalog import info  # a leaf of data, like this module

        known = info(model)
        return known.cache_minimum_tokens if known.listed else self.default_min_cacheable_tokens


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
    facts_floor_tokens: int = Field(
        800, ge=0, le=100_000,
        description="level=auto: when the target leaves less room than this for the facts of the dropped history (a system prompt or a final turn that fills most of the target) and the final user turn asks for information, the summary still keeps facts up to this many tokens: those the question refers to first, then other stated facts (names, numbers with units, hosts, paths, decisions...). The target is then missed by that much and the result says so (target_met false, a note). A final turn that asks nothing (\"continue\") gets nothing past the target. 0 keeps to the target strictly and drops facts instead.",
    )
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
    def _check_prices_and_models(self) -> "Config":
        for model, fields in self.price_overrides.items():
            negative = [k for k, v in fields.items() if v < 0]
            if negative:
                raise ValueError(f"price_overrides.{model}: prices cannot be negative ({negative})")
        from .pricing import PriceTable  # pricing is itself a leaf; imported here so this module stays one

        prices = PriceTable(overrides=self.price_overrides)  # unknown fields, or a new model without every price
        # Every model the configuration names must have a price: a typo would
        # otherwise surface only when the first call fails (or is never priced).
        named = [("default_model", self.default_model), ("routing.expert_floor_model", self.routing.expert_floor_model),
                 ("routing.upgrade_model", self.routing.upgrade_model)]
        named += [(f"routing.tier_models.{level}", m) for level, m in self.routing.tier_models.items()]
        for model, chain in self.routing.overload_fallback_chain.items():
            named.append(("routing.overload_fallback_chain (a key)", model))
            named += [(f"routing.overload_fallback_chain.{model}", m) for m in chain]
        if self.pruning.summarizer_model is not None:
            named.append(("pruning.summarizer_model", self.pruning.summarizer_model))
        unknown = [(where, m) for where, m in named if m is not None and not prices.is_known(m)]
        if unknown:
            raise ValueError("; ".join(f"{where}: {unknown_model_message(m, prices.models, list_known=False)}"
                                       for where, m in unknown) + f". Known models: {', '.join(prices.models)} "
                             "(a model of your own needs its prices under price_overrides)")
        return self


def unknown_model_message(model: str, known: list[str], *, list_known: bool = True) -> str:
    """Why ``model`` is refused, with the name that was probably meant."""
    import difflib

    close = difflib.get_close_matches(model, known, n=1, cutoff=0.6)
    message = f"unknown model {model!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if list_known:
        message += (f"; known models: {', '.join(known)} (a model of your own needs its prices under "
                    "price_overrides in performance-config.json)")
    return message
