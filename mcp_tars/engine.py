"""The optimizer pipeline. The MCP server and the CLI are thin edges over it.

    request -> validate -> response cache -> routing -> budget -> pruning
            -> prompt-cache shaping -> Anthropic API (retries, fallback chain)
            -> ledger -> response cache store -> result with cost and savings

Every decision is recorded with the ledger row so reports can say, per lever,
what was saved. Bills come from the API's ``usage``; token estimates are only
used to decide and to estimate baselines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

import anthropic

from . import clock, prompt_cache, pruning, routing, tokens
from .budget import BudgetGuard
from .cache import ResponseCache
from .config import Config
from .metrics import MetricsLog
from .pricing import LEVERS, Attribution, PriceTable, Usage, attribute_cache_hit, attribute_call
from .store import Store, StoreError
from .store import ledger
from .store import tasks as task_store

log = logging.getLogger("mcp_tars.engine")

SUMMARY_SYSTEM_PROMPT = (
    "You summarise the earlier part of a conversation between a user and an AI agent so the agent can "
    "continue without it. Keep every fact it may need later: names, numbers with units, identifiers, file "
    "paths, URLs, versions, hosts and ports, decisions taken and why, open questions and next steps. "
    "Never include secret values. Write terse bullet points, no preamble."
)
MAX_PRUNED_SESSIONS = 512  # sessions whose pruned prefix is remembered (in memory, per process)
# A new answer enters the response cache just after it is returned (or before
# the next lookup, whichever comes first): storing it is a third of a miss's
# own work, and nobody waits for it. A crash in between loses a cache entry,
# never a ledger row (the row is written before the answer is returned).
ANSWER_STORE_DELAY_SECONDS = 0.002


class InputError(ValueError):
    """The caller's request is wrong; the message says what to fix."""


class UpstreamError(RuntimeError):
    """The API could not answer after every retry and fallback."""


class BudgetExceeded(RuntimeError):
    """A call was blocked by the budget policy."""


class BudgetDeferred(BudgetExceeded):
    """The budget policy is "defer": the call belongs in the batch queue."""


# -- the request -------------------------------------------------------------


@dataclass
class CompletionRequest:
    prompt: str | None = None
    messages: list[dict] | None = None
    system: str | list[dict] | None = None
    max_tokens: int = 1024
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict] | None = None
    tool_choice: dict | None = None
    use_cache: bool = True
    session_id: str | None = None
    stream: bool = False


@dataclass
class CompletionResult:
    text: str
    content: list[dict]
    model: str
    source: str  # "api" | "cache"
    stop_reason: str | None
    usage: dict
    cost_usd: float | None
    baseline_cost_usd: float | None
    saved_usd: float | None
    savings_by_lever: dict
    pricing_source: str
    cache: dict
    routing: dict
    pruning: dict | None
    prompt_cache: dict | None
    request_id: str | None
    response_id: str
    session_id: str | None
    latency_ms: float
    attempts: int
    warnings: list[str] = field(default_factory=list)


def _problem(path: str, what: str) -> InputError:
    return InputError(f"{path}: {what}")


_VALID_ROLES = ("user", "assistant")


def build_messages(req: CompletionRequest, cfg: Config) -> list[dict]:
    """Validate the caller's prompt/messages and return API messages."""
    if (req.prompt is None) == (req.messages is None):
        raise InputError("give exactly one of `prompt` (a string) or `messages` (a list of {role, content}); "
                         + ("both were given" if req.prompt is not None else "neither was given"))
    if req.prompt is not None:
        if not isinstance(req.prompt, str) or not req.prompt.strip():
            raise InputError("`prompt` must be a non-empty string")
        messages = [{"role": "user", "content": req.prompt}]
    else:
        messages = req.messages
        if not isinstance(messages, list) or not messages:
            raise InputError("`messages` must be a non-empty list of {role, content} objects")
        if len(messages) > cfg.server.max_messages:
            raise InputError(f"`messages` has {len(messages)} entries; at most {cfg.server.max_messages} are accepted "
                             "(prune or summarise the conversation first, e.g. with prune_context)")
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise _problem(f"messages[{i}]", "must be an object with `role` and `content`")
            if m.get("role") not in _VALID_ROLES:
                raise _problem(f"messages[{i}].role", f"must be 'user' or 'assistant' (got {str(m.get('role'))[:40]!r}); "
                               "put system instructions in `system`")
            extra = set(m) - {"role", "content"}
            if extra:
                raise _problem(f"messages[{i}]", f"unknown keys {sorted(extra)}; a message has only `role` and `content`")
            content = m.get("content")
            if isinstance(content, str):
                if not content:
                    raise _problem(f"messages[{i}].content", "is empty")
            elif isinstance(content, list):
                if not content:
                    raise _problem(f"messages[{i}].content", "is an empty list")
                for j, block in enumerate(content):
                    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                        raise _problem(f"messages[{i}].content[{j}]", "must be a content block object with a `type` (text, image, tool_use, tool_result...)")
                    if block["type"] == "text" and not isinstance(block.get("text"), str):
                        raise _problem(f"messages[{i}].content[{j}].text", "must be a string")
            else:
                raise _problem(f"messages[{i}].content", "must be a string or a list of content blocks")
        problems = pruning.validate_conversation(messages)
        if problems:
            raise InputError("`messages` is not a valid conversation: " + "; ".join(problems[:5]))
    size = sum(len(tokens.content_text(m["content"])) for m in messages) + len(tokens.content_text(req.system or ""))
    if size > cfg.server.max_prompt_chars:
        raise InputError(f"the request holds {size:,} characters of text; at most {cfg.server.max_prompt_chars:,} are accepted")
    return messages


def check_scalars(req: CompletionRequest, prices: PriceTable) -> None:
    if not isinstance(req.max_tokens, int) or isinstance(req.max_tokens, bool) or req.max_tokens < 1:
        raise InputError(f"`max_tokens` must be a positive integer (got {req.max_tokens!r})")
    if req.max_tokens > 128_000:
        raise InputError(f"`max_tokens` {req.max_tokens} is above the largest output any model allows (128000)")
    if req.temperature is not None and not (0 <= req.temperature <= 1):
        raise InputError(f"`temperature` must be between 0 and 1 (got {req.temperature})")
    if req.top_p is not None and not (0 < req.top_p <= 1):
        raise InputError(f"`top_p` must be in (0, 1] (got {req.top_p})")
    if req.model is not None and not prices.is_known(req.model):
        raise InputError(f"unknown model {req.model!r}; known models: {', '.join(prices.models)} "
                         "(or add its prices under price_overrides in performance-config.json)")
    if req.system is not None and not isinstance(req.system, (str, list)):
        raise InputError("`system` must be a string or a list of text blocks")
    if isinstance(req.system, list) and not all(isinstance(b, dict) and b.get("type") == "text" for b in req.system):
        raise InputError("`system` blocks must be objects of type 'text'")


def request_params(req: CompletionRequest, messages: list[dict]) -> dict[str, Any]:
    """The Messages API params of a request, other than the model."""
    params: dict[str, Any] = {"messages": messages, "max_tokens": req.max_tokens}
    if req.system is not None:
        params["system"] = req.system
    for key in ("temperature", "top_p", "stop_sequences", "tools", "tool_choice"):
        value = getattr(req, key)
        if value is not None:
            params[key] = value
    return params


def response_cache_params(req: CompletionRequest, messages: list[dict], tier: str) -> dict[str, Any]:
    """What the response cache is keyed on: the caller's request (before
    pruning) on the pinned model, or on the routing tier when routed."""
    return {**request_params(req, messages), "model": req.model or f"tier:{tier}"}


def tenant_of(api_key: str | None, namespace: str | None) -> str:
    """A stable, non-reversible tenant id: the configured namespace, or a hash of the API key."""
    if namespace:
        return "ns:" + namespace
    digest = hashlib.sha256(("mcp-tars-tenant\0" + (api_key or "")).encode()).hexdigest()
    return "key:" + digest[:16]


_CLASSIFY_MEMO_MAX_CHARS = 4000
_CLASSIFY_MEMO_ENTRIES = 4096
# values hold the settings object itself, so its id() in the key cannot be reused while remembered
_classify_memo: dict[tuple, tuple[Any, routing.Complexity]] = {}


def _classify(req: CompletionRequest, messages: list[dict], settings) -> routing.Complexity:
    """routing.classify, remembered for short plain prompts: a question asked
    again (the usual cache hit) skips the regex work. classify is pure, so the
    memo is keyed on everything it reads (prompt, string system, settings)."""
    if (req.prompt is None or req.tools is not None or len(req.prompt) > _CLASSIFY_MEMO_MAX_CHARS
            or not (req.system is None or (isinstance(req.system, str) and len(req.system) <= _CLASSIFY_MEMO_MAX_CHARS))):
        return routing.classify(messages, req.system, req.tools, settings=settings)
    key = (req.prompt, req.system, id(settings))
    found = _classify_memo.get(key)
    if found is None:
        found = (settings, routing.classify(messages, req.system, None, settings=settings))
        if len(_classify_memo) >= _CLASSIFY_MEMO_ENTRIES:
            _classify_memo.clear()  # bounded; refilling costs one classify per question
        _classify_memo[key] = found
    return found[1]


def response_text(content: list[dict]) -> str:
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def _usage_dict(u: Usage) -> dict:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_write_5m_tokens": u.cache_write_5m_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
    }


def _sdk_call_params(params: dict) -> dict:
    """Send request fields this SDK's ``messages.create`` has no argument for
    (``temperature`` and ``top_p`` in anthropic 2.x) in ``extra_body``, where the
    API still reads them, instead of failing with a TypeError."""
    import inspect

    global _SDK_CREATE_ARGS
    if _SDK_CREATE_ARGS is None:
        _SDK_CREATE_ARGS = frozenset(inspect.signature(anthropic.resources.messages.AsyncMessages.create).parameters)
    extra = {k: v for k, v in params.items() if k not in _SDK_CREATE_ARGS}
    if not extra:
        return params
    kept = {k: v for k, v in params.items() if k in _SDK_CREATE_ARGS}
    return {**kept, "extra_body": {**params.get("extra_body", {}), **extra}}


_SDK_CREATE_ARGS: frozenset[str] | None = None


def _retryable(e: Exception) -> bool:
    if isinstance(e, (anthropic.APIConnectionError, anthropic.APITimeoutError, anthropic.RateLimitError,
                      anthropic.InternalServerError)):
        return True
    if isinstance(e, anthropic.APIStatusError):
        # an `error` event inside a 200 stream: the SDK raises APIStatusError(200, type=overloaded_error)
        return e.status_code in (408, 409) or getattr(e, "type", None) in ("overloaded_error", "api_error", "rate_limit_error")
    return False


def _is_overload(e: Exception) -> bool:
    return isinstance(e, anthropic.InternalServerError) or getattr(e, "type", None) == "overloaded_error"


def _retry_after(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


# -- the engine --------------------------------------------------------------


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        api_key: str | None = None,
        prices: PriceTable | None = None,
        metrics: MetricsLog | None = None,
    ):
        self.config = config
        self.store = store
        self.prices = prices or PriceTable(overrides=config.price_overrides)
        if not self.prices.is_known(config.default_model):
            raise ValueError(f"default_model {config.default_model!r} has no price; add it under price_overrides")
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self._client = client
        self.tenant = tenant_of(self._api_key, config.tenant_namespace)
        cache_on = config.cache.enabled and config.monitoring.store_prompts_in_cache
        self.cache = ResponseCache(store, config.cache) if cache_on else None
        self.metrics = metrics
        self.budget = BudgetGuard(store, config.budget)
        self._pruned_sessions: dict[tuple[str, str], pruning.PruneResult] = {}  # insertion-ordered, bounded
        self._sync_client: anthropic.Anthropic | None = None  # abstractive summaries only
        self._unstored_answers: list[Callable[[], None]] = []  # see ANSWER_STORE_DELAY_SECONDS
        from .batches import DeferredQueue  # batches builds on the engine; import here to avoid a cycle

        self.queue = DeferredQueue(self)

    # -- API client ----------------------------------------------------------

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            if not self._api_key:
                raise UpstreamError("ANTHROPIC_API_KEY is not set: give the server an API key in its environment "
                                    "(for Claude Desktop, under \"env\" in claude_desktop_config.json)")
            strict = os.environ.get("MCP_TARS_STRICT_RESPONSES") == "1"
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                max_retries=0,  # retries, backoff and fallback are ours: every attempt is accounted
                timeout=self.config.api.timeout_seconds,
                _strict_response_validation=strict,
            )
        return self._client

    async def aclose(self) -> None:
        self.store_pending_answers()
        if self.cache is not None:
            try:
                self.cache.flush()  # buffered hit counts
            except Exception as e:  # noqa: BLE001 - closing must not fail on a full or locked disk
                log.warning("response cache hit counts not saved: %s", e)
        try:
            if self._client is not None:
                await self._client.close()
            if self._sync_client is not None:
                self._sync_client.close()
        finally:
            if self.metrics is not None:
                self.metrics.close()  # writes the lines still pending, whatever happened above

    # -- the pipeline --------------------------------------------------------

    async def complete(self, req: CompletionRequest, *, progress: Callable[[float, str], Awaitable[None]] | None = None) -> CompletionResult:
        started = time.perf_counter()
        started_ts = clock.now()  # session gaps are measured start to start (prompt-cache TTL choice)
        cfg = self.config
        check_scalars(req, self.prices)
        messages = build_messages(req, cfg)
        warnings: list[str] = []

        complexity = _classify(req, messages, cfg.routing)
        params = request_params(req, messages)

        # 1. response cache: keyed on the pinned model, or on the routing tier
        cache_params = response_cache_params(req, messages, complexity.level)
        if self.cache is not None and req.use_cache:
            hit = self.cached_answer(cache_params)
            if hit is not None:
                return self.record_cache_hit(hit, req, complexity, started)

        # 2. routing (sticky per session; one tier down under budget pressure), 3. budget
        session = ledger.get_session(self.store, self.tenant, req.session_id) if req.session_id else None
        budget_share, _ = self.budget_share()
        session_route = (routing.SessionRoute(session["level"], session["model"])
                         if session and session.get("level") and session.get("model") else None)

        def route(share: float | None) -> routing.RoutingDecision:
            return routing.choose_model(complexity, cfg.routing, pinned_model=req.model or None,
                                        session=session_route, budget_used_share=share)

        decision = route(budget_share)
        try:
            decision = self._apply_budget(decision, params, route, warnings)
        except BudgetDeferred as e:
            queued = await self.queue.defer(req, priority="normal", max_wait_seconds=7 * 86400, critical=False)
            raise BudgetDeferred(f"{e} Queued as deferred task {queued['task_id']} (task_status returns "
                                 "its answer once the budget allows it).") from None
        model = decision.model

        # 4. pruning of long contexts, after the part already in the prompt cache
        protected = prompt_cache.cache_prefix_end(params)
        if session and cfg.prompt_cache.enabled and session.get("last_ts") is not None \
                and started_ts - session["last_ts"] < 3600:
            # the previous turn's prefix is probably still in the prompt cache:
            # pruning inside it would throw the cache away
            protected = max(protected, prompt_cache.conversation_prefix_end(messages))
        prune = functools.partial(self.auto_prune, params, model, protected_prefix=protected, budget_share=budget_share,
                                  session_key=(self.tenant, req.session_id) if req.session_id else None)
        # an abstractive summary is a blocking API call: keep it off the event loop
        prune_info = await asyncio.to_thread(prune) if cfg.pruning.abstractive else prune()

        # 5. prompt caching
        timing = None
        if session:
            since = started_ts - session["last_ts"] if session.get("last_ts") is not None else None
            timing = prompt_cache.SessionTiming(session["gaps"], seconds_since_previous_call=since,
                                                previous_model=session.get("model"))
        params["model"] = model
        shaped, pc_decision = prompt_cache.shape_request(params, model, cfg.prompt_cache, timing)

        # 6. the API, with retries and the fallback chain
        message, attempts, model_used, request_id = await self._call_api(shaped, stream=req.stream or req.max_tokens > cfg.api.stream_threshold_max_tokens, progress=progress)

        # 7. ledger
        billed_model = message.model or model_used
        usage, attribution, content = self.account(message, model=model_used, prune_info=prune_info)
        if attribution.pricing_source == "unknown":
            warnings.append(f"no price for model {billed_model!r}: its cost is not counted (add it under price_overrides)")
        now = clock.now()
        latency_ms = (time.perf_counter() - started) * 1000
        pc_dict = pc_decision.__dict__ if hasattr(pc_decision, "__dict__") else dict(pc_decision)
        row = self.ledger_row(
            response_id=message.id, request_id=request_id, ts=now, session_id=req.session_id, source="api",
            model=billed_model, requested_model=req.model, usage=usage, attribution=attribution,
            routing_decision=decision, prompt_cache=pc_dict, prune_info=prune_info,
            stop_reason=message.stop_reason, latency_ms=latency_ms, attempts=attempts,
        )
        self._record_row(row, warnings)
        if req.session_id:
            try:
                ledger.touch_session(self.store, self.tenant, req.session_id, ts=started_ts,
                                     level=None if decision.pinned else decision.level,
                                     model=None if decision.pinned else model_used)
            except StoreError as e:
                warnings.append(f"the session's routing state was not saved: {e}")

        # 8. response cache store, just after the answer is returned
        if req.use_cache:
            self._store_answer_soon(functools.partial(self.cache_answer, cache_params, message, usage, content,
                                                      attribution))

        result = CompletionResult(
            text=response_text(content), content=content, model=billed_model, source="api",
            stop_reason=message.stop_reason, usage=_usage_dict(usage),
            cost_usd=attribution.cost_usd, baseline_cost_usd=attribution.baseline_cost_usd,
            saved_usd=attribution.saved_usd, savings_by_lever=attribution.savings,
            pricing_source=attribution.pricing_source, cache={"kind": None, "similarity": None},
            routing={"level": decision.level, "score": decision.score, "reason": decision.reason,
                     "pinned": decision.pinned, "sticky": decision.sticky, "downgraded": decision.downgraded},
            pruning=prune_info, prompt_cache=pc_dict, request_id=request_id, response_id=message.id,
            session_id=req.session_id, latency_ms=latency_ms, attempts=attempts, warnings=warnings,
        )
        self._log_metrics(result)
        return result

    # -- pieces of the pipeline ---------------------------------------------

    def record_cache_hit(self, hit, req: CompletionRequest, complexity, started: float) -> CompletionResult:
        attribution: Attribution = attribute_cache_hit(hit.cost_usd, hit.baseline_cost_usd, hit.savings)
        response_id = "hit_" + uuid.uuid4().hex
        latency_ms = (time.perf_counter() - started) * 1000
        usage = Usage()
        routing_info = {"level": complexity.level, "score": complexity.score, "reason": complexity.reason,
                        "pinned": req.model is not None, "sticky": False, "downgraded": False}
        row = self.ledger_row(
            response_id=response_id, request_id=None, ts=clock.now(), session_id=req.session_id, source="cache",
            model=hit.model, requested_model=req.model, usage=usage, attribution=attribution,
            routing_decision=None, routing_info=routing_info, prompt_cache=None, prune_info=None,
            stop_reason="end_turn", latency_ms=latency_ms, attempts=0, cache_kind=hit.kind,
            cache_similarity=hit.similarity,
        )
        replaced = Usage.from_api(hit.usage) if hit.usage else Usage()
        row["decisions"] = {"cache": {"entry_id": hit.entry_id, "replaced_tokens": replaced.total_input_tokens + replaced.output_tokens}}
        hit_warnings: list[str] = []
        self._record_row(row, hit_warnings)
        result = CompletionResult(
            text=hit.text, content=hit.content, model=hit.model, source="cache", stop_reason="end_turn",
            usage=_usage_dict(usage), cost_usd=0.0, baseline_cost_usd=attribution.baseline_cost_usd,
            saved_usd=attribution.saved_usd, savings_by_lever=attribution.savings,
            pricing_source=attribution.pricing_source,
            cache={"kind": hit.kind, "similarity": round(hit.similarity, 4)},
            routing=routing_info, pruning=None, prompt_cache=None, request_id=None, response_id=response_id,
            session_id=req.session_id, latency_ms=latency_ms, attempts=0, warnings=hit_warnings,
        )
        self._log_metrics(result)
        return result

    def _record_row(self, row: dict, warnings: list[str]) -> None:
        """Write one ledger row. The answer is already paid for, so a database
        failure loses neither: the row goes to the recovery spool beside the
        database (added to the ledger on the next start) and the caller is told."""
        try:
            ledger.insert(self.store, row)
        except StoreError as e:
            try:
                path = ledger.spool(self.store, row)
            except OSError as spool_error:
                log.error("ledger row NOT recorded (database: %s; recovery file: %s): %s",
                          e, spool_error, json.dumps(row, sort_keys=True, default=str))
                warnings.append(f"this call is NOT in the ledger: {e} Saving it to the recovery file failed too "
                                f"({spool_error}); its row is in the server log.")
                return
            self._spooled = True
            log.error("ledger write failed; row %s saved to %s: %s", row.get("response_id"), path, e)
            warnings.append(f"the ledger could not be written: {e} This call's row was saved to {path} "
                            "and is added to the ledger when the database works again (at the latest on the next start).")
            return
        if getattr(self, "_spooled", False):  # the database works again: bring the spooled rows in
            try:
                ledger.replay_spool(self.store)
                self._spooled = False
            except (StoreError, OSError) as e:
                log.warning("ledger recovery spool not replayed yet: %s", e)

    def ledger_row(self, *, response_id, request_id, ts, session_id, source, model, requested_model, usage: Usage,
                    attribution: Attribution, routing_decision=None, routing_info=None, prompt_cache=None,
                    prune_info=None, stop_reason=None, latency_ms=None, attempts=1, cache_kind=None,
                    cache_similarity=None, task_id=None, batch=False) -> dict:
        s = attribution.savings
        r = routing_decision
        return {
            "response_id": response_id, "request_id": request_id, "ts": ts, "tenant": self.tenant,
            "session_id": session_id, "source": source, "model": model, "requested_model": requested_model,
            "service_tier": usage.service_tier or ("batch" if batch else None),
            "input_tokens": usage.input_tokens, "cache_write_5m_tokens": usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "output_tokens": usage.output_tokens, "cost_usd": attribution.cost_usd,
            "baseline_cost_usd": attribution.baseline_cost_usd, "saved_usd": attribution.saved_usd,
            "saved_cache_usd": s.get("cache"), "saved_pruning_usd": s.get("pruning"),
            "saved_routing_usd": s.get("routing"), "saved_prompt_cache_usd": s.get("prompt_cache"),
            "saved_batch_usd": s.get("batch"), "baseline_estimated": int(attribution.baseline_estimated),
            "pricing_source": attribution.pricing_source, "cache_kind": cache_kind,
            "cache_similarity": cache_similarity,
            "routing_level": r.level if r else (routing_info or {}).get("level"),
            "routing_score": r.score if r else (routing_info or {}).get("score"),
            "routing_reason": r.reason if r else (routing_info or {}).get("reason"),
            "prompt_cache": prompt_cache,
            "tokens_before_pruning": prune_info["tokens_before"] if prune_info else None,
            "tokens_after_pruning": prune_info["tokens_after"] if prune_info else None,
            "pruning": prune_info, "stop_reason": stop_reason, "latency_ms": latency_ms,
            "attempts": attempts, "task_id": task_id,
            "decisions": {"routing": {"pinned": r.pinned, "sticky": r.sticky, "downgraded": r.downgraded}} if r else None,
        }

    def _log_metrics(self, result: CompletionResult) -> None:
        if self.metrics is not None:
            self.metrics.write(result)

    def auto_prune(self, params: dict, model: str, *, protected_prefix: int, budget_share: float | None,
                   session_key: tuple[str, str] | None = None) -> dict | None:
        """Prune ``params["messages"]`` in place when the context passes the
        configured threshold; returns what was done, or None.

        Agents resend their whole history every turn. Pruning it afresh each
        turn would move the cut and rewrite the summary, so the prompt cache
        would never hit. Within a session the previous pruned conversation is
        kept and extended with the new turns while it stays under the
        threshold; when it outgrows it, only the part after that stable,
        cached prefix is pruned."""
        cfg = self.config.pruning
        if not cfg.enabled:
            return None
        raw = params["messages"]
        system, tools = params.get("system"), params.get("tools")
        raw_tokens = tokens.estimate_request_tokens(raw, system, tools, model)
        base, protected, continued = raw, protected_prefix, False
        previous = self._pruned_sessions.get(session_key) if session_key else None
        if previous is not None:
            extended = pruning.extend_pruned(previous, raw)
            if extended is not None:
                base, protected, continued = extended, len(previous.messages), True
        base_tokens = tokens.estimate_request_tokens(base, system, tools, model) if continued else raw_tokens
        if base_tokens <= cfg.auto_threshold_tokens:
            if not continued:
                return None
            params["messages"] = base
            return {"tokens_before": raw_tokens, "tokens_after": base_tokens, "level": previous.level,
                    "reduction_pct": round(100 * (1 - base_tokens / max(raw_tokens, 1)), 1),
                    "notes": ["continued this session's earlier pruning: the pruned prefix stays byte-stable "
                              "for the prompt cache"], "removed": []}
        result = pruning.prune_messages(
            base, system=system, max_tokens=cfg.auto_target_tokens, level="auto", settings=cfg, model=model,
            protected_prefix=protected, budget_used_share=budget_share,
            summarizer=self.summarize_history if cfg.abstractive else None,
        )
        if result.tokens_after >= raw_tokens:
            return None
        if session_key:
            # remember it against the caller's raw history, which is what the next turn extends
            self._pruned_sessions[session_key] = dataclasses.replace(
                result, input_messages=len(raw), input_fingerprint=pruning.conversation_fingerprint(raw))
            while len(self._pruned_sessions) > MAX_PRUNED_SESSIONS:
                self._pruned_sessions.pop(next(iter(self._pruned_sessions)))
        params["messages"] = result.messages
        return {
            "tokens_before": raw_tokens, "tokens_after": result.tokens_after,
            "level": result.level, "reduction_pct": round(100 * (1 - result.tokens_after / max(raw_tokens, 1)), 1),
            "notes": result.notes + (["pruned after this session's earlier pruned prefix"] if continued else []),
            "removed": result.removed[:20],
        }

    # -- abstractive summaries for pruning --------------------------------------

    def summarizer_model(self) -> str:
        """The model of abstractive summaries: the configured one, or the
        cheapest model among the routing tiers."""
        chosen = self.config.pruning.summarizer_model
        if chosen:
            return chosen
        tiers = set(self.config.routing.tier_models.values())
        return min(tiers, key=lambda m: self.prices.price(m)[0].input if self.prices.is_known(m) else float("inf"))

    def summarize_history(self, messages: list[dict]) -> str:
        """An abstractive summary of dropped history (credentials already
        removed by pruning). The call is billed like any other and recorded in
        the ledger; the response cache makes sure the same history is
        summarised once. Synchronous: pruning is, and this is opt-in."""
        transcript = "\n\n".join(f"{m['role'].upper()}: {tokens.content_text(m.get('content'))}" for m in messages)
        model = self.summarizer_model()
        params = {
            "model": model, "max_tokens": self.config.pruning.summary_max_output_tokens,
            "system": SUMMARY_SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": transcript[:400_000]}],
        }
        if self.cache is not None:
            hit = self.cache.lookup(params, self.tenant, semantic=False)  # only this exact history
            if hit is not None:
                return hit.text
        if self._sync_client is None:
            self._sync_client = anthropic.Anthropic(
                api_key=self._api_key, max_retries=self.config.api.max_retries,
                timeout=self.config.api.timeout_seconds,
                _strict_response_validation=os.environ.get("MCP_TARS_STRICT_RESPONSES") == "1")
        started = time.perf_counter()
        raw = self._sync_client.messages.with_raw_response.create(**params)
        message = raw.parse()
        usage = Usage.from_api(message.usage)
        # A summary exists only because of pruning: no baseline call would have
        # made it, so its whole cost is booked against the pruning lever.
        cost = self.prices.cost(usage, message.model or model, when=clock.utc_now())
        attribution = Attribution(cost.usd, 0.0 if cost.known else None,
                                  {lever: (0.0 if cost.known else None) for lever in LEVERS},
                                  cost.pricing_source, True)
        if cost.known:
            attribution.savings["pruning"] = -cost.usd
        row = self.ledger_row(
            response_id=message.id, request_id=raw.headers.get("request-id"), ts=clock.now(), session_id=None,
            source="api", model=message.model or model, requested_model=model, usage=usage,
            attribution=attribution, stop_reason=message.stop_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        row["decisions"] = {"purpose": "pruning_summary", "messages_summarised": len(messages)}
        self._record_row(row, [])
        content = [b.model_dump(mode="json", exclude_none=True) for b in message.content]
        text = response_text(content)
        if message.stop_reason == "end_turn":
            self.cache_answer(params, message, usage, content, attribution)
        return text

    # -- accounting of one answer ----------------------------------------------

    def account(self, message: Any, *, model: str, prune_info: dict | None, batch: bool = False,
                when: datetime | None = None) -> tuple[Usage, Attribution, list[dict]]:
        """Usage, cost and savings by lever, and the content blocks of one API
        message (an immediate answer or a batch result)."""
        cfg = self.config
        usage = Usage.from_api(message.usage)
        billed = message.model or model
        pruned_away = 0
        if prune_info:  # estimated on the default model's tokenizer
            pruned_away = round((prune_info["tokens_before"] - prune_info["tokens_after"])
                                * tokens.family_factor(cfg.default_model) / tokens.family_factor(billed))
        attribution = attribute_call(self.prices, usage=usage, model=billed, default_model=cfg.default_model,
                                     batch=batch, pruned_away_tokens=pruned_away, when=when or clock.utc_now())
        content = [b.model_dump(mode="json", exclude_none=True) for b in message.content]
        return usage, attribution, content

    def cache_answer(self, cache_params: dict, message: Any, usage: Usage, content: list[dict],
                     attribution: Attribution) -> None:
        """Offer an answer to the response cache, with what it cost and saved
        (a later hit saves that call); the cache decides whether to keep it."""
        if self.cache is None or attribution.cost_usd is None:
            return
        self.cache.put(cache_params, self.tenant,
                       {"content": content, "model": message.model, "stop_reason": message.stop_reason,
                        "usage": usage.as_api_dict()},
                       cost_usd=attribution.cost_usd, baseline_cost_usd=attribution.baseline_cost_usd or 0.0,
                       savings={k: (v or 0.0) for k, v in attribution.savings.items()})

    def _store_answer_soon(self, store: Callable[[], None]) -> None:
        self._unstored_answers.append(store)
        try:
            asyncio.get_running_loop().call_later(ANSWER_STORE_DELAY_SECONDS, self.store_pending_answers)
        except RuntimeError:  # no event loop (a synchronous caller): store now
            self.store_pending_answers()

    def cached_answer(self, cache_params: dict):
        """The response cache's answer to this request, or None; an answer
        returned a moment ago (still waiting to be stored) counts."""
        if self._unstored_answers:
            self.store_pending_answers()
        return self.cache.lookup(cache_params, self.tenant)

    def store_pending_answers(self) -> int:
        """Add the answers returned since the last call to the response cache;
        returns how many were offered. A storage fault costs only the entry."""
        pending, self._unstored_answers = self._unstored_answers, []
        for store in pending:
            try:
                store()
            except StoreError as e:
                log.warning("an answer was not added to the response cache: %s", e)
            except Exception:  # noqa: BLE001 - runs in the next caller's lookup or as a loop callback: fail neither
                log.exception("an answer was not added to the response cache")
        return len(pending)

    # -- budget ---------------------------------------------------------------

    def budget_status(self) -> dict:
        """Spend against the configured daily and monthly limits (UTC)."""
        return self.budget.status(self.tenant)

    def budget_share(self) -> tuple[float | None, str | None]:
        """The largest share of a budget spent so far, and its warning if any."""
        if not self.budget.enabled:
            return None, None
        status = self.budget_status()
        share = max(status["shares"].values()) if status["shares"] else None
        return share, (status["warnings"][0] if status["warnings"] else None)

    def _apply_budget(self, decision, params: dict, route, warnings: list[str]):
        """Check the call's estimated cost against the budgets and apply the
        policy: warn, block, route one tier down, or defer to the batch queue."""
        if not self.budget.enabled:
            return decision
        # batch work already sent but not billed yet counts as spent
        committed = task_store.committed_cost(self.store, self.tenant)
        verdict = self.budget.verdict(self.tenant, self.estimate_cost(params, decision.model), committed_usd=committed)
        if verdict.action == "warn":
            warnings.append(verdict.message)
        elif verdict.action == "block":
            raise BudgetExceeded(verdict.message)
        elif verdict.action == "defer":
            raise BudgetDeferred(verdict.message)
        elif verdict.action == "downgrade":
            if not decision.downgraded:
                decision = route(1.0)
            again = self.budget.verdict(self.tenant, self.estimate_cost(params, decision.model),
                                        committed_usd=committed, policy="block", record=False)
            if again.action == "block":
                raise BudgetExceeded(again.message + " (even one tier down)")
            warnings.append(verdict.message)
        return decision

    def estimate_cost(self, params: dict, model: str) -> float:
        """Estimated cost of a call before it is made (input estimate + max output)."""
        est_in = tokens.estimate_request_tokens(params["messages"], params.get("system"), params.get("tools"), model)
        cost = self.prices.cost(Usage(input_tokens=est_in, output_tokens=params.get("max_tokens", 1024)), model, batch=False)
        return cost.usd or 0.0

    # -- the API call --------------------------------------------------------

    async def _call_api(self, params: dict, *, stream: bool, progress=None) -> tuple[Any, int, str, str | None]:
        """Call the API with bounded retries (exponential backoff, full jitter,
        retry-after obeyed up to a limit), then along the fallback chain on
        persistent overload. Returns (message, attempts, model, request_id)."""
        api = self.config.api
        chain = [params["model"]] + routing.fallback_models(params["model"], self.config.routing)
        attempts = 0
        errors: list[str] = []
        last_error: Exception | None = None
        for model in chain:
            call_params = _sdk_call_params(params if model == params["model"] else {**params, "model": model})
            for attempt in range(api.max_retries + 1):
                attempts += 1
                try:
                    if stream:
                        async with self.client.messages.stream(**call_params) as s:
                            if progress is not None:
                                chunks = 0
                                async for event in s:
                                    if event.type == "content_block_delta":
                                        chunks += 1
                                        if chunks % 20 == 0:
                                            await progress(chunks, "streaming")
                            message = await s.get_final_message()
                            request_id = s.response.headers.get("request-id")
                    else:
                        raw = await self.client.messages.with_raw_response.create(**call_params)
                        message = await raw.parse()
                        request_id = raw.headers.get("request-id")
                    return message, attempts, model, request_id
                except Exception as e:  # noqa: BLE001 - sorted below
                    if not _retryable(e):
                        if isinstance(e, anthropic.APIStatusError):
                            raise UpstreamError(f"the API refused the request ({e.status_code} {getattr(e, 'type', '')}): {e.message}") from e
                        if isinstance(e, anthropic.APIError):
                            raise UpstreamError(f"the API's answer could not be used ({type(e).__name__}): {e}") from e
                        raise
                    last_error = e
                    errors.append(f"{model}: {type(e).__name__} {getattr(e, 'status_code', '')}".strip())
                    if attempt == api.max_retries:
                        break
                    delay = _retry_after(e)
                    if delay is not None and delay > api.max_retry_after_seconds:
                        break  # the API asks for a long pause: try the next model instead
                    if delay is None:
                        delay = random.uniform(0, min(api.backoff_max_seconds, api.backoff_initial_seconds * 2 ** attempt))
                    log.info("retrying %s after %s (attempt %d), sleeping %.2fs", model, type(e).__name__, attempts, delay)
                    await asyncio.sleep(delay)
            if last_error is not None and not _is_overload(last_error):
                break  # fallback models help with overload, not with rate limits or network faults
        raise UpstreamError(f"the Anthropic API did not answer after {attempts} attempts "
                            f"({'; '.join(errors[-4:])}). Try again later, or set a fallback chain in performance-config.json.")

