"""Response cache: exact answers by canonical request key, semantic answers
for reworded questions, behind guards and a calibrated decision.

    keys.py       canonical request, exact key, context / question split
    lexicon.py    word lists of the analyser (data)
    analysis.py   what a question means: terms, numbers, negations, entities, order
    embedding.py  WordLlama static sentence vectors (shipped in its wheel, offline)
    index.py      nearest questions of the same context (exact, then HNSW)
    guards.py     vetoes, and the features of a pair
    decision.py   the fitted logistic decision (mcp_tars/data/cache_decision.json)
    policy.py     what may be cached, TTL by query type
    core.py       ResponseCache on top of the store (SQL in mcp_tars/store/cache.py)
"""

from ..settings import CacheSettings
from .analysis import QueryAnalysis, analyse, signature
from .core import CacheHit, PreparedEntry, ResponseCache, prepare_entry
from .decision import DecisionModel, Verdict, decide, packaged_model
from .embedding import StaticEmbedder, shared_embedder
from .guards import deictic, guard_veto, pair_features
from .keys import (KEY_VERSION, SemanticSplit, canonical_request, context_key, hash64, request_key,
                   split_for_semantic)
from .lexicon import stem
from .policy import detect_query_type, request_not_cacheable, request_text, response_not_cacheable, response_text

__all__ = [
    "CacheHit", "CacheSettings", "DecisionModel", "KEY_VERSION", "PreparedEntry", "QueryAnalysis", "ResponseCache",
    "SemanticSplit", "StaticEmbedder", "Verdict", "analyse", "canonical_request", "context_key", "decide", "deictic",
    "detect_query_type", "guard_veto", "hash64", "packaged_model", "pair_features", "prepare_entry", "request_key",
    "request_not_cacheable", "request_text", "response_not_cacheable", "response_text", "shared_embedder",
    "signature", "split_for_semantic", "stem",
]
