"""Model routing: send each request to the cheapest model likely to do it well.

Three parts, each pure:

* ``features``: what the router reads from a request (named signals and the
  words of the ask, set apart from pasted material);
* ``model``: the fitted logistic model, shipped as data in
  ``mcp_tars/data/router.json`` (written by ``python -m bench.fit_router``);
* ``decision``: ``classify`` (probability the cheap model fails where the
  strong one succeeds, the level against the dial, the reason) and
  ``choose_model`` (tiers, sessions, budget, never above the default model
  unless ``routing.allow_upgrade``), plus ``fallback_models`` for overload.
"""

from mcp_tars.settings import LEVELS, RoutingSettings

from .decision import (
    Complexity,
    RoutingDecision,
    SessionRoute,
    choose_model,
    classify,
    fallback_models,
    is_dearer,
    level_for,
    model_ladder,
    tier_model,
)
from .model import RouterModel, load_model

__all__ = [
    "LEVELS", "Complexity", "RouterModel", "RoutingDecision", "RoutingSettings", "SessionRoute", "choose_model",
    "classify", "fallback_models", "is_dearer", "level_for", "load_model", "model_ladder", "tier_model",
]
