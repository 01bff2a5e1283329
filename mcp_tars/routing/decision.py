"""The routing decision: classify a request, then pick its model.

``classify(messages, system, tools, settings=...)`` reads the request
(features.py), scores it with the fitted model (model.py) and returns a
:class:`Complexity`: ``score`` is the probability, in percent, that the cheap
model fails where the strong one succeeds; ``level`` places it against the
dial (``routing.strong_threshold``: below it, "simple", the cheap tier; above
it "moderate", "complex" or "expert" by ``complex_threshold`` and
``expert_threshold``); ``reason`` names the features that decided.

Agent tool loops are the exception to the score: no outcome data covers them,
and a downgraded loop loses its prompt cache and risks a broken run, so an
agent turn (tools offered, or tool calls in the conversation) is "simple" only
when the score is below ``routing.agent_strong_threshold``.

``choose_model(complexity, settings, ...)`` maps the level to a model and
applies the session and budget rules. Invariant: without
``routing.allow_upgrade`` no unpinned call goes to a model dearer than the
default model (tier map, sticky sessions, budget steps and the overload chain
included); a pinned model is the caller's explicit choice.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mcp_tars import catalog
from mcp_tars.pricing import PriceTable
from mcp_tars.settings import LEVELS, RoutingSettings

from .features import FAMILIES, Features, extract
from .model import RouterModel, load_model, sigmoid

_LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Complexity:
    score: int  # P(cheap fails where strong succeeds), percent
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


# --------------------------------------------------------------------------- classify


def model_for(settings: RoutingSettings) -> RouterModel:
    return load_model(settings.model_path)


def level_for(probability: float, settings: RoutingSettings, *, agent: bool = False) -> str:
    cheap_below = settings.agent_strong_threshold if agent else settings.strong_threshold
    if probability < cheap_below:
        return "simple"
    if probability >= settings.expert_threshold:
        return "expert"
    if probability >= settings.complex_threshold:
        return "complex"
    return "moderate"


def classify(
    messages: list[dict],
    system: Any = None,
    tools: list[dict] | None = None,
    *,
    settings: RoutingSettings | None = None,
) -> Complexity:
    """How likely the cheap model is to fail this request, its level, and why."""
    s = settings or _DEFAULT_SETTINGS
    features = extract(messages, system, tools, continuation_max_words=s.continuation_max_words)
    model = model_for(s)
    contributions = model.contributions(features)
    p = sigmoid(model.bias + sum(c for _, c in contributions))
    level = level_for(p, s, agent=features.agent)
    signals = {
        "p": round(p, 4), "lead": features.lead, "agent": features.agent,
        "context_tokens_estimate": features.context_tokens,
        "families": sorted(k for k in FAMILIES if features.values.get("has_" + k)),
    }
    if features.tool_loop:
        signals["tool_loop"] = True
    if features.continuation:
        signals["continuation"] = True
    return Complexity(round(100 * p), level, _reason(level, p, s, features, contributions), signals)


def _reason(level: str, p: float, s: RoutingSettings, features: Features, contributions: list[tuple[str, float]]) -> str:
    cut = s.agent_strong_threshold if features.agent else s.strong_threshold
    head = f"{level} (p={p:.2f} {'>=' if p >= cut else '<'} {cut:.2f}"
    head += ", agent turn)" if features.agent else ")"
    notes: list[str] = []
    if features.tool_loop:
        notes.append("tool-loop turn: scored on the task that started it")
    elif features.continuation:
        notes.append("continues the earlier task")
    up = _strongest(contributions, features, +1)
    down = _strongest(contributions, features, -1)
    if up:
        notes.append("for the strong tier: " + ", ".join(up))
    if down:
        notes.append("against: " + ", ".join(down))
    return head + (": " + "; ".join(notes) if notes else "")


def _strongest(contributions: list[tuple[str, float]], features: Features, sign: int, n: int = 3) -> list[str]:
    """The n features that moved the score most in one direction, named (ties by name)."""
    moved = [(sign * c, name) for name, c in contributions if sign * c > 0.05]
    top = heapq.nsmallest(n, moved, key=lambda t: (-t[0], t[1]))
    return [f"{_label(name, features)} {sign * c:+.2f}" for c, name in top]


_LABELS = {
    "ask_words": "length of the ask", "short_ask": "short ask", "long_ask": "long ask", "questions": "questions",
    "sentences": "sentences", "numbers": "numbers in the ask", "word_problem": "word problem",
    "multiple_choice": "multiple-choice options", "list_items": "list items", "clauses": "clauses",
    "tech_tokens": "technical names", "maths_symbols": "maths notation", "material_words": "pasted text",
    "has_code": "code", "code_lines": "lines of code", "error_trace": "error trace/log",
}


def _label(name: str, features: Features) -> str:
    if name in _LABELS:
        return _LABELS[name]
    if name.startswith("has_"):
        family = name[4:]
        words = list(dict.fromkeys(features.matched.get(family, [])))[:2]
        return f"{family.replace('_', ' ')} words ({', '.join(repr(w) for w in words)})" if words else family
    if name.startswith("lead_"):
        return f"leads with {name[5:]} word {features.lead!r}"
    kind, _, text = name.partition(":")
    text = text.replace("#", "<number>")
    return f"lead word {text!r}" if kind == "lead" else repr(text)


# --------------------------------------------------------------------------- choose


@lru_cache(maxsize=1)
def _packaged_prices() -> PriceTable:
    return PriceTable()


def is_dearer(model: str, than: str, prices: PriceTable | None = None) -> bool:
    """Whether ``model`` costs more per input or output token than ``than``.
    An unpriced model counts as dearer than a priced one (we cannot show it is not)."""
    prices = prices or _packaged_prices()
    if model == than:
        return False
    a, _ = prices.price(model)
    b, _ = prices.price(than)
    if b is None:
        return False
    if a is None:
        return True
    return a.input > b.input or a.output > b.output


def tier_model(level: str, settings: RoutingSettings) -> str:
    """The model of a level: the upgrade model for expert work when allowed,
    else the tier map (null there means the default model)."""
    if level == "expert" and settings.allow_upgrade and settings.upgrade_model:
        return settings.upgrade_model
    return settings.tier_models.get(level) or settings.default_model


def model_ladder(settings: RoutingSettings) -> list[str]:
    """Distinct tier models from the cheapest level to the strongest (the steps a downgrade walks)."""
    ladder: list[str] = []
    for level in LEVELS:
        model = tier_model(level, settings)
        if model not in ladder:
            ladder.append(model)
    return ladder


def choose_model(
    complexity: Complexity,
    settings: RoutingSettings,
    *,
    pinned_model: str | None = None,
    session: SessionRoute | None = None,
    budget_used_share: float | None = None,
    prices: PriceTable | None = None,
) -> RoutingDecision:
    """The model for this call, and why."""
    level = complexity.level
    if pinned_model:
        return RoutingDecision(pinned_model, level, complexity.score, f"pinned to {pinned_model}; {complexity.reason}", True, False, False)
    if not settings.enabled:
        return RoutingDecision(settings.default_model, level, complexity.score,
                               f"routing disabled: default model; {complexity.reason}", False, False, False)

    notes: list[str] = []
    model = tier_model(level, settings)
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
                model = tier_model(level, settings)  # an earlier budget downgrade no longer applies
                notes.append(f"budget pressure over: back to {model}")
            else:
                sticky = model != session.model or level != complexity.level
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
        elif lower is None and model in model_ladder(settings):
            notes.append(f"budget {budget_used_share:.0%} used, but {model} is already the floor")

    if not settings.allow_upgrade and is_dearer(model, settings.default_model, prices):
        # a tier model dearer than the default, or a session that started under a
        # configuration that allowed the upgrade tier
        notes.append(f"{model} costs more than the default model: {settings.default_model} "
                     "(routing.allow_upgrade is off)")
        model = settings.default_model

    reason = complexity.reason + ("; " + "; ".join(notes) if notes else "")
    return RoutingDecision(model, level, complexity.score, reason, False, sticky, downgraded)


def _is_below_tier(model: str, level: str, settings: RoutingSettings) -> bool:
    ladder = model_ladder(settings)
    tier = tier_model(level, settings)
    return model in ladder and ladder.index(model) < ladder.index(tier)


def _one_tier_down(model: str, level: str, settings: RoutingSettings) -> str | None:
    ladder = model_ladder(settings)
    if model not in ladder:
        return None  # a model outside the tiers (a sticky pin): leave it alone
    if _is_below_tier(model, level, settings):
        return None  # already downgraded earlier in the session: one step is all
    i = ladder.index(model)
    if i == 0:
        return None
    lower = ladder[i - 1]
    floor = settings.expert_floor_model or settings.default_model
    if level == "expert" and floor in ladder and ladder.index(lower) < ladder.index(floor):
        return None
    return lower


def fallback_models(model: str, settings: RoutingSettings, prices: PriceTable | None = None) -> list[str]:
    """Models to try next, in order, when ``model`` keeps answering 529. Without
    ``allow_upgrade`` the chain never climbs above the default model."""
    chain = settings.overload_fallback_chain.get(model)
    if chain is None:
        chain = settings.overload_fallback_chain.get(catalog.undated(model), [])
    seen: list[str] = []
    for candidate in chain:
        if candidate == model or candidate in seen:
            continue
        if not settings.allow_upgrade and is_dearer(candidate, settings.default_model, prices):
            continue
        seen.append(candidate)
    return seen


_DEFAULT_SETTINGS = RoutingSettings()
