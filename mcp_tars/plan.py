"""The plan of one call: route, budget, prune, shape. Shared by immediate and deferred work.

    plan = await planner.plan(req, messages, complexity, tenant=..., session=...)

gives the Messages API params to send (routed model, pruned history, prompt
cache breakpoints) and every decision taken on the way, for the ledger. An
immediate call is shaped for the prompt cache here; a deferred one is not:
its batch places a breakpoint on the prefix its tasks share when it goes out.

The budget: an immediate call whose estimated cost would pass a limit is
blocked (``BudgetExceeded``), routed one tier down, or handed to the batch
queue (``BudgetDeferred``), per ``budget.policy``. Deferred work is held back
by the queue instead, when it is due; here it is only routed down under
budget pressure like immediate work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from . import catalog, prompt_cache, pruning, routing, tokens
from .budget import BudgetDeferred, BudgetExceeded, BudgetGuard
from .pricing import PriceTable, Usage
from .request import CompletionRequest, InputError, request_params
from .settings import Config
from .store import Store
from .store import tasks as task_store

MAX_PRUNED_SESSIONS = 512  # sessions whose pruned prefix is remembered (in memory, per process)
# The previous turn's prefix is probably still in the prompt cache this long after it (1h TTL):
# pruning inside it would throw the cache away.
PREFIX_PROTECTION_SECONDS = 3600
# A request above its model's context window is pruned to this share of it:
# our token count is an estimate, the API's is not.
WINDOW_FILL_SHARE = 0.9

Summarizer = Callable[[list[dict]], str]


@dataclass
class CallPlan:
    params: dict  # what to send: routed, pruned and (immediate calls) shaped for the prompt cache
    decision: routing.RoutingDecision
    prune_info: dict | None
    prompt_cache: dict | None  # the shaping decision (immediate calls)
    estimate: Callable[[], float] = field(repr=False)  # see estimated_cost_usd
    warnings: list[str] = field(default_factory=list)

    @functools.cached_property
    def estimated_cost_usd(self) -> float:
        """Standard rate, input estimate + max_tokens of output. Counted when
        asked (deferred work prices its batches with it; an immediate call
        never needs it, and counting a long request is not free)."""
        return self.estimate()


# -- classification, remembered for repeated short prompts ---------------------

_CLASSIFY_MEMO_MAX_CHARS = 4000
_CLASSIFY_MEMO_ENTRIES = 4096
# values hold the settings object itself, so its id() in the key cannot be reused while remembered
_classify_memo: dict[tuple, tuple[Any, routing.Complexity]] = {}


def classify_request(req: CompletionRequest, messages: list[dict], settings) -> routing.Complexity:
    """routing.classify, remembered for short plain prompts: a question asked
    again (the usual cache hit) skips the feature work. classify is pure, so the
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


# -- the planner ------------------------------------------------------------------


class Planner:
    def __init__(self, config: Config, prices: PriceTable, budget: BudgetGuard, store: Store, *,
                 judge_limits: bool = True):
        self.config = config
        # False (a client's own body through the gateway): the API judges the
        # limits of the model the client chose, so a pass-through (its own
        # model, pruning off) skips counting its tokens. A routed model is
        # still checked: the client did not choose it.
        self.judge_limits = judge_limits
        self.prices = prices
        self.budget = budget
        self.store = store
        self._pruned_sessions: dict[tuple[str, str], pruning.PruneResult] = {}  # insertion-ordered, bounded

    async def plan(self, req: CompletionRequest, messages: list[dict], complexity: routing.Complexity, *,
                   tenant: str, session: dict | None = None, started_ts: float | None = None,
                   deferred: bool = False, summarizer: Summarizer | None = None, markers: bool = True) -> CallPlan:
        """Route (sticky per session, one tier down under budget pressure), check
        the budget, prune a long context after the part already in the prompt
        cache, and (immediate calls) shape the request for the prompt cache.
        ``markers`` False: the request carries no ``cache_control`` anywhere
        (the gateway looks at its bytes), so there are none to look for."""
        cfg = self.config
        warnings: list[str] = []
        params = request_params(req, messages)
        budget_share, budget_warning = self.budget_share(tenant)
        session_route = (routing.SessionRoute(session["level"], session["model"])
                         if session and session.get("level") and session.get("model") else None)

        def route(share: float | None) -> routing.RoutingDecision:
            return routing.choose_model(complexity, cfg.routing, pinned_model=req.model or None,
                                        session=session_route, budget_used_share=share, prices=self.prices)

        decision = route(budget_share)
        if deferred:
            if budget_warning:
                warnings.append(budget_warning)
        else:
            decision = self._apply_budget(decision, params, route, tenant, warnings)
        model = decision.model
        params = {"model": model, **params}

        unpruned = params["messages"]
        found = prompt_cache.caller_markers(params) if markers else []
        protected = prompt_cache.cache_prefix_end(params, found)
        if session and cfg.prompt_cache.enabled and session.get("last_ts") is not None and started_ts is not None \
                and started_ts - session["last_ts"] < PREFIX_PROTECTION_SECONDS:
            protected = max(protected, prompt_cache.conversation_prefix_end(messages))
        prune = functools.partial(
            self.auto_prune, params, model, protected_prefix=protected, budget_share=budget_share,
            session_key=(tenant, req.session_id) if (req.session_id and not deferred) else None,
            summarizer=summarizer if cfg.pruning.abstractive else None)
        # an abstractive summary is a blocking API call: keep it off the event loop
        prune_info = await asyncio.to_thread(prune) if (cfg.pruning.abstractive and summarizer) else prune()
        if self.judge_limits or cfg.pruning.enabled or not req.model:
            input_tokens, prune_info = self.fit_model(params, model, prune_info, warnings)
        else:
            input_tokens = None  # counted only if the estimate is asked for

        pc_decision = None
        if not deferred:
            timing = None
            if session:
                since = started_ts - session["last_ts"] if (session.get("last_ts") is not None and started_ts is not None) else None
                timing = prompt_cache.SessionTiming(session["gaps"], seconds_since_previous_call=since,
                                                    previous_model=session.get("model"))
            if params["messages"] is not unpruned and markers:
                found = None  # pruned (a new list): read the markers again
            shaped, shaping = prompt_cache.shape_request(params, model, cfg.prompt_cache, timing, found)
            params = shaped
            pc_decision = shaping.__dict__ if hasattr(shaping, "__dict__") else dict(shaping)
        return CallPlan(params, decision, prune_info, pc_decision,
                        functools.partial(self.estimate_cost, params, model, input_tokens=input_tokens), warnings)

    # -- the model's limits -------------------------------------------------------

    def fit_model(self, params: dict, model: str, prune_info: dict | None,
                  warnings: list[str]) -> tuple[int, dict | None]:
        """Make the request fit ``model``: its output limit, and its context
        window. A request above the window is pruned to fit when pruning is on
        and can bring it under, else refused before anything is sent (the API
        would refuse it too). Returns the estimated input tokens and what
        pruning did (``params["messages"]`` is updated in place)."""
        limits = catalog.info(model)
        if params["max_tokens"] > limits.max_output_tokens:
            raise InputError(f"`max_tokens` {params['max_tokens']:,} is above the {limits.max_output_tokens:,} output "
                             f"tokens {model} allows: lower it, or pin a model that allows more")
        estimate = tokens.estimate_request_tokens(params["messages"], params.get("system"), params.get("tools"), model)
        window = limits.context_window_tokens
        if estimate <= window:
            return estimate, prune_info
        over = (f"the request is about {estimate:,} tokens (estimated), more than the {window:,}-token context "
                f"window of {model}")
        if not self.config.pruning.enabled:
            raise InputError(f"{over}; nothing was sent. Shorten it, or turn pruning on (pruning.enabled) so that "
                             "mcp-tars prunes it to fit.")
        result = pruning.prune_messages(params["messages"], system=params.get("system"),
                                        max_tokens=int(window * WINDOW_FILL_SHARE), level="auto",
                                        settings=self.config.pruning, model=model)
        if result.tokens_after > window:
            reach = (f"pruning brings it down to about {result.tokens_after:,} tokens only" if result.tokens_after < estimate
                     else "pruning cannot shorten it")
            raise InputError(f"{over}, and {reach} (the user's own words in the final turn and the system prompt are "
                             "kept whole); nothing was sent. Shorten the final turn or the system prompt.")
        params["messages"] = result.messages
        note = f"{over}: pruned to about {result.tokens_after:,} tokens to fit"
        warnings.append(note)
        before = prune_info["tokens_before"] if prune_info else estimate
        return result.tokens_after, {
            "tokens_before": before, "tokens_after": result.tokens_after, "level": result.level,
            "reduction_pct": round(100 * (1 - result.tokens_after / max(before, 1)), 1),
            "notes": [note, *result.notes], "removed": result.removed[:20],
        }

    # -- budget ---------------------------------------------------------------

    def budget_share(self, tenant: str) -> tuple[float | None, str | None]:
        """The largest share of a budget spent so far, and its warning if any."""
        if not self.budget.enabled:
            return None, None
        status = self.budget.status(tenant)
        share = max(status["shares"].values()) if status["shares"] else None
        return share, (status["warnings"][0] if status["warnings"] else None)

    def _apply_budget(self, decision, params: dict, route, tenant: str, warnings: list[str]):
        """Check the call's estimated cost against the budgets and apply the
        policy: warn, block, route one tier down, or defer to the batch queue."""
        if not self.budget.enabled:
            return decision
        # batch work already sent but not billed yet counts as spent
        committed = task_store.committed_cost(self.store, tenant)
        verdict = self.budget.verdict(tenant, self.estimate_cost(params, decision.model), committed_usd=committed)
        if verdict.action == "warn":
            warnings.append(verdict.message)
        elif verdict.action == "block":
            raise BudgetExceeded(verdict.message)
        elif verdict.action == "defer":
            raise BudgetDeferred(verdict.message)
        elif verdict.action == "downgrade":
            if not decision.downgraded:
                decision = route(1.0)
            again = self.budget.verdict(tenant, self.estimate_cost(params, decision.model),
                                        committed_usd=committed, policy="block", record=False)
            if again.action == "block":
                raise BudgetExceeded(again.message + " (even one tier down)")
            warnings.append(verdict.message)
        return decision

    def estimate_cost(self, params: dict, model: str, *, input_tokens: int | None = None) -> float:
        """Estimated cost of a call before it is made (input estimate + max output), standard rate."""
        est_in = input_tokens if input_tokens is not None else tokens.estimate_request_tokens(
            params["messages"], params.get("system"), params.get("tools"), model)
        cost = self.prices.cost(Usage(input_tokens=est_in, output_tokens=params.get("max_tokens", 1024)), model, batch=False)
        return cost.usd or 0.0

    # -- pruning ----------------------------------------------------------------

    def auto_prune(self, params: dict, model: str, *, protected_prefix: int, budget_share: float | None,
                   session_key: tuple[str, str] | None = None, summarizer: Summarizer | None = None) -> dict | None:
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
            protected_prefix=protected, budget_used_share=budget_share, summarizer=summarizer,
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
