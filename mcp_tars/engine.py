"""The optimizer pipeline. The MCP server, the CLI and the gateway are thin edges over it.

    request -> validate -> response cache -> plan (route, budget, prune, shape)
            -> upstream (retries, fallback chain) -> accounting (ledger)
            -> response cache store -> result with cost and savings

Every decision is recorded with the ledger row so reports can say, per lever,
what was saved. Bills come from the API's ``usage``; token estimates are only
used to decide and to estimate baselines.

Who pays: a ``Caller`` (tenant and credential) per call. The server's own API
key is the default caller; an edge that forwards its clients' credentials
(the gateway) passes one per request, so caches, budgets, sessions and ledger
rows stay per tenant.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import clock, tokens
from .accounting import Accounting, WireMessage, usage_dict
from .budget import BudgetDeferred, BudgetExceeded, BudgetGuard
from .cache import ResponseCache, canonical_request
from .metrics import MetricsLog
from .plan import CallPlan, Planner, classify_request
from .routing import Complexity
from .pricing import LEVERS, Attribution, PriceTable, Usage, attribute_cache_hit
from .request import (
    CompletionRequest,
    CompletionResult,
    InputError,
    build_messages,
    check_scalars,
    request_params,
    response_cache_params,
    response_text,
)
from .routing import model_ladder
from .settings import Config, GatewaySettings
from .store import Store, StoreError
from .store import ledger
from .upstream import Credential, Upstream, UpstreamError

__all__ = [  # the engine's public names; edges import them from here
    "BudgetDeferred", "BudgetExceeded", "Caller", "CompletionRequest", "CompletionResult", "Engine", "Forward",
    "InputError", "UpstreamError", "build_messages", "check_scalars", "request_params", "response_cache_params",
    "response_text", "tenant_of",
]

log = logging.getLogger("mcp_tars.engine")

SUMMARY_SYSTEM_PROMPT = (
    "You summarise the earlier part of a conversation between a user and an AI agent so the agent can "
    "continue without it. Keep every fact it may need later: names, numbers with units, identifiers, file "
    "paths, URLs, versions, hosts and ports, decisions taken and why, open questions and next steps. "
    "Never include secret values. Write terse bullet points, no preamble."
)
# A new answer enters the response cache just after it is returned (or before
# the next lookup, whichever comes first): storing it is a third of a miss's
# own work, and nobody waits for it. A crash in between loses a cache entry,
# never a ledger row (the row is written before the answer is returned).
ANSWER_STORE_DELAY_SECONDS = 0.002
SESSION_MEMO_SIZE = 4096  # sessions remembered per process (see Engine._sessions)

Progress = Callable[[float, str], Awaitable[None]]
# defer(request, priority=..., max_wait_seconds=..., critical=...) -> {"task_id": ...}: the batch queue's entry
Defer = Callable[..., Awaitable[dict]]


def tenant_of(api_key: str | None, namespace: str | None) -> str:
    """A stable, non-reversible tenant id: the configured namespace, or a hash of the API key."""
    if namespace:
        return "ns:" + namespace
    digest = hashlib.sha256(("mcp-tars-tenant\0" + (api_key or "")).encode()).hexdigest()
    return "key:" + digest[:16]


@dataclass(frozen=True)
class Caller:
    """Who a call is for: the tenant its rows, cache and budget belong to, and
    the credential it is sent with (None: the server's own)."""

    tenant: str
    credential: Credential | None = None


@dataclass
class Forward:
    """A client's own Messages API body on its way through the engine (the
    gateway's calls): what to send, and what was decided, for its ledger row.

    The body is an open schema: fields the engine does not know are sent as
    the client wrote them; only what an enabled lever changes differs.
    ``changed`` False means the client's bytes can go out as they came."""

    body: dict
    changed: bool
    caller: Caller
    session_id: str | None
    requested_model: str | None
    started: float  # perf_counter
    started_ts: float  # clock time (session gaps)
    plan: CallPlan | None = None  # None: no lever looked at it (not a Messages body, or a lever failed)
    cache_params: dict | None = None  # what the response cache is keyed on; None: not cacheable
    cache_canon: dict | None = None  # its canonical form, computed once for the lookup and the store
    hit: CompletionResult | None = None  # answered from the response cache (already in the ledger)
    decisions: dict = field(default_factory=dict)  # recorded with the row (e.g. agent ids)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_model(self) -> bool:
        """Routing sent it to another model than the client asked for."""
        return self.plan is not None and self.plan.params.get("model") != self.requested_model


def forward_config(config: Config, levers: GatewaySettings) -> Config:
    """The configuration a forwarded body is planned with: the gateway's lever
    switches over the user's settings (budgets, prompt-cache economics, tiers)."""
    return config.model_copy(update={
        "routing": config.routing.model_copy(update={"enabled": config.routing.enabled and levers.routing}),
        "pruning": config.pruning.model_copy(update={"enabled": config.pruning.enabled and levers.pruning}),
        "prompt_cache": config.prompt_cache.model_copy(update={
            "enabled": config.prompt_cache.enabled and levers.prompt_cache, "add_to_marked_requests": False}),
    })


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        client=None,
        api_key: str | None = None,
        prices: PriceTable | None = None,
        metrics: MetricsLog | None = None,
        defer: Defer | None = None,
    ):
        self.config = config
        self.store = store
        self.prices = prices or PriceTable(overrides=config.price_overrides)
        if not self.prices.is_known(config.default_model):
            raise ValueError(f"default_model {config.default_model!r} has no price; add it under price_overrides")
        self.upstream = Upstream(config.api, config.routing, api_key=api_key, client=client, prices=self.prices)
        self.tenant = tenant_of(self.upstream.default_credential.secret or None, config.tenant_namespace)
        self.default_caller = Caller(self.tenant)
        cache_on = config.cache.enabled and config.monitoring.store_prompts_in_cache
        self.cache = ResponseCache(store, config.cache) if cache_on else None
        self.metrics = metrics
        self.budget = BudgetGuard(store, config.budget)
        self.planner = Planner(config, self.prices, self.budget, store)
        self.accounting = Accounting(store, self.prices, config.default_model)
        self.defer = defer  # set by the composition root (app.py) to the batch queue's defer
        self.forward_planner = Planner(forward_config(config, config.gateway), self.prices, self.budget, store,
                                       judge_limits=False)
        self._pending: list[Callable[[], None]] = []  # see ANSWER_STORE_DELAY_SECONDS and finish_pending
        # Sessions as this process last wrote or read them: a session's calls
        # come through one server, so its next call needs no read (Claude Code
        # sends one per call). Another process touching the same session makes
        # an entry stale until this one touches it again; sessions feed
        # decisions (sticky tier, cache TTLs), never a bill.
        self._sessions: dict[tuple[str, str], dict] = {}

    def caller_for(self, credential: Credential) -> Caller:
        """The caller a forwarded credential stands for (the configured
        namespace, when set, still groups every caller in one tenant)."""
        return Caller(tenant_of(credential.secret, self.config.tenant_namespace), credential)

    @property
    def client(self):
        """The API client of the server's own credential (batches use it for their endpoints)."""
        return self.upstream.client

    async def aclose(self) -> None:
        self.finish_pending()
        self.accounting.close()
        if self.cache is not None:
            try:
                self.cache.flush()  # buffered hit counts
            except Exception as e:  # noqa: BLE001 - closing must not fail on a full or locked disk
                log.warning("response cache hit counts not saved: %s", e)
        try:
            await self.upstream.aclose()
        finally:
            if self.metrics is not None:
                self.metrics.close()  # writes the lines still pending, whatever happened above

    # -- the pipeline --------------------------------------------------------

    async def complete(self, req: CompletionRequest, *, progress: Progress | None = None,
                       caller: Caller | None = None) -> CompletionResult:
        started = time.perf_counter()
        started_ts = clock.now()  # session gaps are measured start to start (prompt-cache TTL choice)
        caller = caller or self.default_caller
        tenant = caller.tenant
        cfg = self.config
        check_scalars(req, self.prices)
        messages = build_messages(req, cfg)

        complexity = classify_request(req, messages, cfg.routing)

        # 1. response cache: keyed on the pinned model, or on the routing tier
        cache_params = response_cache_params(req, messages, complexity.level)
        if self.cache is not None and req.use_cache:
            hit = self.cached_answer(cache_params, tenant)
            if hit is not None:
                return self.record_cache_hit(hit, req, complexity, started, tenant=tenant)

        # 2. the plan: routing, budget, pruning, prompt caching
        session = self._session(tenant, req.session_id) if req.session_id else None
        try:
            plan = await self.planner.plan(req, messages, complexity, tenant=tenant, session=session,
                                           started_ts=started_ts, summarizer=self._summarizer(caller))
        except BudgetDeferred as e:
            if self.defer is None:
                raise BudgetExceeded(f"{e} (no batch queue runs in this process to defer it to)") from None
            queued = await self.defer(req, priority="normal", max_wait_seconds=7 * 86400, critical=False)
            raise BudgetDeferred(f"{e} Queued as deferred task {queued['task_id']} (task_status returns "
                                 "its answer once the budget allows it).") from None
        decision, warnings = plan.decision, plan.warnings

        # 3. the API, with retries and the fallback chain
        stream = req.stream or req.max_tokens > cfg.api.stream_threshold_max_tokens
        answer = await self.upstream.call(plan.params, stream=stream, progress=progress, credential=caller.credential)
        message = answer.message

        # 4. ledger
        billed_model = message.model or answer.model
        usage, attribution, content = self.accounting.account(message, model=answer.model, prune_info=plan.prune_info)
        if attribution.pricing_source == "unknown":
            warnings.append(f"no price for model {billed_model!r}: its cost is not counted (add it under price_overrides)")
        latency_ms = (time.perf_counter() - started) * 1000
        row = self.accounting.row(
            tenant=tenant, response_id=message.id, request_id=answer.request_id, ts=clock.now(),
            session_id=req.session_id, source="api", model=billed_model, requested_model=req.model, usage=usage,
            attribution=attribution, routing_decision=decision, prompt_cache=plan.prompt_cache,
            prune_info=plan.prune_info, stop_reason=message.stop_reason, latency_ms=latency_ms,
            attempts=answer.attempts,
        )
        self.accounting.record(row, warnings)
        if req.session_id:
            try:
                self._remember_session(tenant, req.session_id, ledger.touch_session(
                    self.store, tenant, req.session_id, ts=started_ts, level=None if decision.pinned else decision.level,
                    model=None if decision.pinned else answer.model))
            except StoreError as e:
                warnings.append(f"the session's routing state was not saved: {e}")

        # 5. response cache store, just after the answer is returned
        if req.use_cache:
            self._store_answer_soon(functools.partial(self.cache_answer, cache_params, message, usage, content,
                                                      attribution, tenant))

        result = CompletionResult(
            text=response_text(content), content=content, model=billed_model, source="api",
            stop_reason=message.stop_reason, usage=usage_dict(usage),
            cost_usd=attribution.cost_usd, baseline_cost_usd=attribution.baseline_cost_usd,
            saved_usd=attribution.saved_usd, savings_by_lever=attribution.savings,
            pricing_source=attribution.pricing_source, cache={"kind": None, "similarity": None},
            routing={"level": decision.level, "score": decision.score, "reason": decision.reason,
                     "pinned": decision.pinned, "sticky": decision.sticky, "downgraded": decision.downgraded},
            pruning=plan.prune_info, prompt_cache=plan.prompt_cache, request_id=answer.request_id,
            response_id=message.id, session_id=req.session_id, latency_ms=latency_ms, attempts=answer.attempts,
            warnings=warnings,
        )
        self._log_metrics(result)
        return result

    # -- a client's own body (the gateway) --------------------------------------

    async def plan_forward(self, body: dict, *, caller: Caller, session_id: str | None = None,
                           cache_key_extra: dict | None = None, decisions: dict | None = None,
                           markers: bool = True) -> Forward:
        """The same pipeline as ``complete`` for a body the caller wrote in
        full: response cache, budget, and the levers ``gateway`` turns on
        (prompt-cache TTLs by default; routing and pruning only when enabled).
        The upstream call is the edge's (it relays the bytes); the answer comes
        back through ``record_forward``. ``cache_key_extra``: request headers
        that change the answer (betas), part of the response cache's key.
        ``markers`` False: no ``cache_control`` anywhere in the body (a cheaper cache key).

        Raises ``BudgetExceeded`` when a budget blocks the call (a client
        waiting on an answer cannot be deferred)."""
        levers = self.config.gateway
        self.finish_pending()  # budgets and the cache see every answer already given
        fwd = Forward(body, False, caller, session_id, body.get("model") if isinstance(body.get("model"), str) else None,
                      time.perf_counter(), clock.now(), decisions=dict(decisions or {}))
        messages = body.get("messages")
        if not (isinstance(messages, list) and messages and fwd.requested_model and "max_tokens" in body):
            return fwd  # not a Messages body: the API says what is wrong with it
        tenant = caller.tenant
        if self.cache is not None and levers.response_cache and not body.get("max_tokens") == 0:
            fwd.cache_params = {**body, **(cache_key_extra or {})}
            fwd.cache_canon = canonical_request(fwd.cache_params, markers=markers)
            hit = self.cached_answer(fwd.cache_params, tenant, semantic=levers.semantic_cache, canon=fwd.cache_canon)
            if hit is not None:
                req = CompletionRequest(messages=messages, model=hit.model, session_id=session_id)
                fwd.hit = self.record_cache_hit(hit, req, Complexity(0, "simple", "answered from the response cache"),
                                                fwd.started, tenant=tenant)
                return fwd
        req = CompletionRequest(
            messages=messages, system=body.get("system"), max_tokens=body.get("max_tokens", 1024),
            model=None if levers.routing else fwd.requested_model, temperature=body.get("temperature"),
            top_p=body.get("top_p"), stop_sequences=body.get("stop_sequences"), tools=body.get("tools"),
            tool_choice=body.get("tool_choice"), session_id=session_id)
        try:
            complexity = (classify_request(req, messages, self.config.routing) if levers.routing
                          else Complexity(0, "simple", "not classified: the gateway keeps the client's model"))
            session = self._session(tenant, session_id) if session_id else None
            plan = await self.forward_planner.plan(req, messages, complexity, tenant=tenant, session=session,
                                                   started_ts=fwd.started_ts, summarizer=self._summarizer(caller),
                                                   markers=markers)
        except BudgetDeferred as e:  # the client waits for its answer: a deferral is a block here
            raise BudgetExceeded(str(e)) from None
        except BudgetExceeded:
            raise
        except Exception as e:  # noqa: BLE001 - a lever must never break a call the API would take
            log.warning("gateway: levers skipped for this request (%s: %s); it goes out as the client sent it",
                        type(e).__name__, e)
            fwd.warnings.append(f"levers skipped: {type(e).__name__}: {e}")
            return fwd
        fwd.plan = plan
        fwd.warnings += plan.warnings
        changed = {k: v for k, v in plan.params.items() if body.get(k) is not v and body.get(k) != v}
        if changed:
            fwd.body, fwd.changed = {**body, **changed}, True
        return fwd

    def record_forward(self, fwd: Forward, message: dict, *, request_id: str | None,
                       complete: bool = True, note: str | None = None) -> dict:
        """The ledger row of a forwarded call's answer (``message``: the API's
        JSON, or what a stream delivered of it: message_start plus the last
        usage), then the session's timing and the response cache. ``note``
        says why an answer is incomplete (a client that went away mid-stream).
        The row is journaled at once and inserted, with the rest, at the next
        ``finish_pending`` (the gateway calls it once the answer is out).
        Returns the row."""
        wire = WireMessage.from_json(message)
        prune_info = fwd.plan.prune_info if fwd.plan else None
        usage, attribution, content = self.accounting.account(wire, model=wire.model or fwd.body.get("model"),
                                                              prune_info=prune_info)
        billed_model = wire.model or fwd.body.get("model")
        warnings = list(fwd.warnings)
        if attribution.pricing_source == "unknown":
            log.warning("gateway: no price for model %r: its calls are recorded unpriced (add it under price_overrides)",
                        billed_model)
        decision = fwd.plan.decision if fwd.plan else None
        tenant = fwd.caller.tenant
        row = self.accounting.row(
            tenant=tenant, response_id=wire.id or "fwd_" + uuid.uuid4().hex, request_id=request_id, ts=clock.now(),
            session_id=fwd.session_id, source="api", model=billed_model, requested_model=fwd.requested_model,
            usage=usage, attribution=attribution, routing_decision=decision,
            prompt_cache=fwd.plan.prompt_cache if fwd.plan else None, prune_info=prune_info,
            stop_reason=wire.stop_reason if complete else None,
            latency_ms=(time.perf_counter() - fwd.started) * 1000, attempts=1,
        )
        gateway = {**fwd.decisions, **({"incomplete": note} if note else {})}
        if gateway or warnings:
            row["decisions"] = {**(row["decisions"] or {}), "gateway": {**gateway, **({"warnings": warnings} if warnings else {})}}
        self.accounting.record_later(row)  # the client is waiting: the insert comes after the reply
        if fwd.session_id:
            self._pending.append(functools.partial(self._touch_session, tenant, fwd.session_id, fwd.started_ts,
                                                   None if (decision is None or decision.pinned) else decision.level,
                                                   None if (decision is None or decision.pinned) else billed_model))
        # Only a whole, plain answer is cached (never a tool call, a cut or a stop sequence:
        # a replay says end_turn), and only when it was asked for as sent.
        if complete and fwd.cache_params is not None and wire.stop_reason == "end_turn" and not fwd.changed_model:
            self._pending.append(functools.partial(self.cache_answer, fwd.cache_params, wire, usage, content,
                                                   attribution, tenant, semantic=self.config.gateway.semantic_cache,
                                                   canon=fwd.cache_canon))
        try:
            asyncio.get_running_loop().call_soon(self.finish_pending)  # in case the edge does not call it
        except RuntimeError:  # no event loop (a synchronous caller): finish now
            self.finish_pending()
        return row

    def _touch_session(self, tenant: str, session_id: str, ts: float, level, model) -> None:
        try:
            self._remember_session(tenant, session_id,
                                   ledger.touch_session(self.store, tenant, session_id, ts=ts, level=level, model=model))
        except StoreError as e:
            log.warning("gateway: the session's timing was not saved: %s", e)

    def _session(self, tenant: str, session_id: str) -> dict | None:
        """The session's routing and timing state (see ``_sessions``)."""
        session = self._sessions.get((tenant, session_id))
        if session is None:
            session = ledger.get_session(self.store, tenant, session_id)
            if session is not None:
                self._remember_session(tenant, session_id, session)
        return session

    def _remember_session(self, tenant: str, session_id: str, session: dict) -> None:
        if len(self._sessions) >= SESSION_MEMO_SIZE:
            self._sessions.clear()  # bounded; a forgotten session costs one read
        self._sessions[(tenant, session_id)] = session

    def record_batch_result(self, message: dict, *, caller: Caller, session_id: str | None = None,
                            batch_id: str | None = None, custom_id: str | None = None) -> dict:
        """The ledger row of one succeeded result of a client's own Message
        Batch, read through the gateway: billed at the batch rate, entered
        once (the ledger keeps one row per response id, so reading the results
        again adds nothing). Returns the row."""
        wire = WireMessage.from_json(message)
        usage, attribution, _ = self.accounting.account(wire, model=wire.model, prune_info=None, batch=True)
        if attribution.pricing_source == "unknown":
            log.warning("gateway: no price for model %r: its batch results are recorded unpriced", wire.model)
        row = self.accounting.row(
            tenant=caller.tenant, response_id=wire.id, request_id=None, ts=clock.now(), session_id=session_id,
            source="batch", model=wire.model, requested_model=wire.model, usage=usage, attribution=attribution,
            stop_reason=wire.stop_reason, attempts=1, batch=True,
        )
        row["decisions"] = {"gateway": {"batch_id": batch_id, "custom_id": custom_id}}
        self.accounting.record(row, [])
        return row

    # -- pieces of the pipeline ---------------------------------------------

    def record_cache_hit(self, hit, req: CompletionRequest, complexity, started: float, *,
                         tenant: str | None = None) -> CompletionResult:
        tenant = tenant or self.tenant
        attribution: Attribution = attribute_cache_hit(hit.cost_usd, hit.baseline_cost_usd)
        response_id = "hit_" + uuid.uuid4().hex
        latency_ms = (time.perf_counter() - started) * 1000
        usage = Usage()
        routing_info = {"level": complexity.level, "score": complexity.score, "reason": complexity.reason,
                        "pinned": req.model is not None, "sticky": False, "downgraded": False}
        row = self.accounting.row(
            tenant=tenant, response_id=response_id, request_id=None, ts=clock.now(), session_id=req.session_id,
            source="cache", model=hit.model, requested_model=req.model, usage=usage, attribution=attribution,
            routing_decision=None, routing_info=routing_info, prompt_cache=None, prune_info=None,
            stop_reason="end_turn", latency_ms=latency_ms, attempts=0, cache_kind=hit.kind,
            cache_similarity=hit.similarity,
        )
        replaced = Usage.from_api(hit.usage) if hit.usage else Usage()
        row["decisions"] = {"cache": {"entry_id": hit.entry_id, "replaced_tokens": replaced.total_input_tokens + replaced.output_tokens}}
        hit_warnings: list[str] = []
        self.accounting.record(row, hit_warnings)
        result = CompletionResult(
            text=hit.text, content=hit.content, model=hit.model, source="cache", stop_reason="end_turn",
            usage=usage_dict(usage), cost_usd=0.0, baseline_cost_usd=attribution.baseline_cost_usd,
            saved_usd=attribution.saved_usd, savings_by_lever=attribution.savings,
            pricing_source=attribution.pricing_source,
            cache={"kind": hit.kind, "similarity": round(hit.similarity, 4)},
            routing=routing_info, pruning=None, prompt_cache=None, request_id=None, response_id=response_id,
            session_id=req.session_id, latency_ms=latency_ms, attempts=0, warnings=hit_warnings,
        )
        self._log_metrics(result)
        return result

    def _log_metrics(self, result: CompletionResult) -> None:
        if self.metrics is not None:
            self.metrics.write(result)

    # -- the response cache ----------------------------------------------------

    def cache_answer(self, cache_params: dict, message: Any, usage: Usage, content: list[dict],
                     attribution: Attribution, tenant: str | None = None, *, semantic: bool = True,
                     canon: dict | None = None) -> None:
        """Offer an answer to the response cache, with what it cost and saved
        (a later hit saves that call); the cache decides whether to keep it.
        ``semantic`` False: only an exact repeat will find it."""
        if self.cache is None or attribution.cost_usd is None:
            return
        self.cache.put(cache_params, tenant or self.tenant,
                       {"content": content, "model": message.model, "stop_reason": message.stop_reason,
                        "usage": usage.as_api_dict()},
                       cost_usd=attribution.cost_usd, baseline_cost_usd=attribution.baseline_cost_usd or 0.0,
                       savings={k: (v or 0.0) for k, v in attribution.savings.items()}, semantic=semantic, canon=canon)

    def _store_answer_soon(self, store: Callable[[], None]) -> None:
        self._pending.append(store)
        try:
            asyncio.get_running_loop().call_later(ANSWER_STORE_DELAY_SECONDS, self.finish_pending)
        except RuntimeError:  # no event loop (a synchronous caller): store now
            self.finish_pending()

    def cached_answer(self, cache_params: dict, tenant: str | None = None, *, semantic: bool = True,
                      canon: dict | None = None):
        """The response cache's answer to this request, or None; an answer
        returned a moment ago (still waiting to be stored) counts."""
        self.finish_pending()
        return self.cache.lookup(cache_params, tenant or self.tenant, semantic=semantic, canon=canon)

    def finish_pending(self) -> int:
        """The work left for after a reply: the journaled ledger rows into
        the ledger, then the sessions' timing and the answers returned since
        the last call into the response cache; returns how many answers and
        sessions. A storage fault costs only the cache entry or the timing
        (a ledger row that cannot be written goes to the recovery spool)."""
        self.accounting.record_journaled()
        pending, self._pending = self._pending, []
        for store in pending:
            try:
                store()
            except StoreError as e:
                log.warning("an answer was not added to the response cache: %s", e)
            except Exception:  # noqa: BLE001 - runs in the next caller's lookup or as a loop callback: fail neither
                log.exception("an answer was not added to the response cache")
        return len(pending)

    # -- budget ---------------------------------------------------------------

    def budget_status(self, tenant: str | None = None) -> dict:
        """Spend against the configured daily and monthly limits (UTC)."""
        return self.budget.status(tenant or self.tenant)

    def estimate_cost(self, params: dict, model: str) -> float:
        """Estimated cost of a call before it is made (input estimate + max output), standard rate."""
        return self.planner.estimate_cost(params, model)

    # -- abstractive summaries for pruning --------------------------------------

    def summarizer_model(self) -> str:
        """The model of abstractive summaries: the configured one, or the
        cheapest model among the routing tiers."""
        chosen = self.config.pruning.summarizer_model
        if chosen:
            return chosen
        tiers = set(model_ladder(self.config.routing))
        return min(tiers, key=lambda m: self.prices.price(m)[0].input if self.prices.is_known(m) else float("inf"))

    def _summarizer(self, caller: Caller) -> Callable[[list[dict]], str] | None:
        """The blocking summarizer pruning calls from its worker thread: it runs
        ``summarize_history`` on this event loop (one client, one retry policy)."""
        if not self.config.pruning.abstractive:
            return None
        loop = asyncio.get_running_loop()

        def summarize(messages: list[dict]) -> str:
            return asyncio.run_coroutine_threadsafe(self.summarize_history(messages, caller=caller), loop).result()

        return summarize

    async def summarize_history(self, messages: list[dict], *, caller: Caller | None = None) -> str:
        """An abstractive summary of dropped history (credentials already
        removed by pruning). The call is billed like any other and recorded in
        the ledger; the response cache makes sure the same history is
        summarised once."""
        caller = caller or self.default_caller
        transcript = "\n\n".join(f"{m['role'].upper()}: {tokens.content_text(m.get('content'))}" for m in messages)
        model = self.summarizer_model()
        params = {
            "model": model, "max_tokens": self.config.pruning.summary_max_output_tokens,
            "system": SUMMARY_SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": transcript[:400_000]}],
        }
        if self.cache is not None:
            hit = self.cache.lookup(params, caller.tenant, semantic=False)  # only this exact history
            if hit is not None:
                return hit.text
        started = time.perf_counter()
        answer = await self.upstream.call(params, credential=caller.credential)
        message = answer.message
        usage = Usage.from_api(message.usage)
        # A summary exists only because of pruning: no baseline call would have
        # made it, so its whole cost is booked against the pruning lever.
        cost = self.prices.cost(usage, message.model or answer.model, when=clock.utc_now())
        attribution = Attribution(cost.usd, 0.0 if cost.known else None,
                                  {lever: (0.0 if cost.known else None) for lever in LEVERS},
                                  cost.pricing_source, True)
        if cost.known:
            attribution.savings["pruning"] = -cost.usd
        row = self.accounting.row(
            tenant=caller.tenant, response_id=message.id, request_id=answer.request_id, ts=clock.now(),
            session_id=None, source="api", model=message.model or answer.model, requested_model=model, usage=usage,
            attribution=attribution, stop_reason=message.stop_reason, attempts=answer.attempts,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        row["decisions"] = {"purpose": "pruning_summary", "messages_summarised": len(messages)}
        self.accounting.record(row, [])
        content = [b.model_dump(mode="json", exclude_none=True) for b in message.content]
        if message.stop_reason == "end_turn":
            self.cache_answer(params, message, usage, content, attribution, caller.tenant)
        return response_text(content)
