"""The response cache on top of the store: exact answers by canonical request
key, semantic answers for reworded questions.

* **Exact.** ``request_key`` (see ``keys.py``): every answer-determining
  field of the request, plus the tenant.
* **Semantic.** Only for requests whose whole context except the text of the
  last user message is byte-identical (same tenant or namespace, system,
  tools, model or routing tier, earlier turns, max_tokens and sampling) and
  whose last message is plain text. The question is embedded
  (``embedding.py``, ~0.1 ms), its nearest cached questions of the same
  context are found (``index.py``), and each candidate goes through the
  guards (a veto is final) and the calibrated decision (``decision.py``):
  the best candidate whose probability of having the same answer reaches the
  fitted threshold is served.

Precision is the requirement, recall the bonus: when in doubt, no match.
TTLs by query type and the temperature rule are in ``policy.py``; the SQL
lives in ``mcp_tars/store/cache.py``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Literal

from .. import clock
from ..settings import CacheSettings
from ..store import cache as sql
from .analysis import analyse, analysis_json, stored_analysis
from .decision import DecisionModel, Verdict, decide, packaged_model
from .embedding import from_blob, shared_embedder, to_blob
from .index import VectorIndex
from .keys import _canonical_json, _exact_key, _split, canonical_request, check_tenant, context_key
from .policy import detect_query_type, request_not_cacheable, request_text, response_not_cacheable, response_text

@dataclass(frozen=True)
class CacheHit:
    """A cached answer. ``cost_usd`` and ``baseline_cost_usd`` are those of the
    original call (what this hit replaces); the hit itself costs $0.
    ``savings`` is the lever breakdown of that original call."""

    entry_id: int
    kind: Literal["exact", "semantic"]
    similarity: float
    text: str
    content: list[dict]
    model: str
    usage: dict
    cost_usd: float
    baseline_cost_usd: float
    savings: dict[str, float]
    query_type: str
    created_at: float
    hits: int


@dataclass
class _PendingHits:
    exact: int = 0
    semantic: int = 0
    saved_usd: float = 0.0
    last_used_at: float = 0.0


@dataclass(frozen=True)
class PreparedEntry:
    """Everything the store needs to insert one answer (see ``prepare_entry``)."""

    row: dict


def prepare_entry(
    params: dict,
    tenant: str,
    response: dict,
    settings: CacheSettings,
    *,
    cost_usd: float,
    baseline_cost_usd: float,
    savings: dict[str, float],
    now: float,
    embedder=None,
    semantic: bool = True,
    canon: dict | None = None,
) -> PreparedEntry:
    """Build the row for one cacheable answer (pure but for the embedding; policy already checked).
    ``semantic`` False: exact repeats only (no paraphrase will find it, nothing is embedded).
    ``canon``: ``canonical_request(params)`` when the caller has it already."""
    canon = canonical_request(params) if canon is None else canon
    key = _exact_key(canon, tenant)
    content = list(response.get("content") or [])
    query_type = detect_query_type(request_text(params))
    split = _split(canon) if (settings.semantic and semantic) else None
    ctx = query = vector = analysis = None
    if split is not None and len(split.query) <= settings.semantic_max_chars:
        ctx = context_key(split, tenant)
        query = split.query
        vector = to_blob((embedder or shared_embedder()).embed(query))
        analysis = analysis_json(analyse(query))
    content_json = _canonical_json(content)
    text = response_text(content)
    usage_json = _canonical_json(response.get("usage") or {})
    savings_json = _canonical_json({k: float(v or 0.0) for k, v in (savings or {}).items()})
    size = (len(content_json.encode()) + len(usage_json) + len(savings_json) + len((query or "").encode())
            + len(vector or b"") + len((analysis or "").encode()) + 256)
    ttl = settings.ttl_for(query_type)
    row = {
        "tenant": tenant,
        "request_key": key,
        "context_key": ctx,
        "query_text": query,
        "query_vector": vector,
        "query_analysis": analysis,
        "query_type": query_type,
        "model": str(response.get("model") or params.get("model") or ""),
        "requested_model": params.get("model"),
        "content": content_json,
        "text": text,
        "stop_reason": response.get("stop_reason"),
        "usage": usage_json,
        "cost_usd": float(cost_usd or 0.0),
        "baseline_cost_usd": float(baseline_cost_usd or 0.0),
        "savings": savings_json,
        "size_bytes": size,
        "created_at": now,
        "expires_at": now + ttl,
        "last_used_at": now,
    }
    return PreparedEntry(row)


class ResponseCache:
    """The response cache on top of the store. Thread-safe."""

    CANDIDATES = 4  # nearest cached questions the decision looks at per lookup
    # A cheap pre-filter: of the 21,207 labelled pairs of the fit and the benchmarks, the decision
    # accepts 2 this far apart (the same words in capitals: "WHAT IS MACHINE LEARNING?").
    MIN_CANDIDATE_COSINE = 0.6
    MAX_PENDING_HITS = 1000

    def __init__(self, store, settings: CacheSettings, *, decision: DecisionModel | None = None, embedder=None):
        self.store = store
        self.settings = settings
        self._decision = decision
        self._embedder = embedder
        self.index = VectorIndex()
        self._lock = threading.Lock()
        self._pending: dict[int, _PendingHits] = {}
        self._last_flush = clock.now()

    @property
    def decision(self) -> DecisionModel:
        if self._decision is None:
            self._decision = packaged_model()
        return self._decision

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = shared_embedder()  # 16 MB of weights, loaded on first semantic use
        return self._embedder

    @property
    def threshold(self) -> float:
        t = self.settings.decision_threshold
        return self.decision.threshold if t is None else t

    def _tenant(self, tenant: str) -> str:
        if self.settings.namespace:
            return "ns:" + self.settings.namespace
        return check_tenant(tenant)

    # -- lookup --------------------------------------------------------------

    def lookup(self, params: dict, tenant: str, *, now: float | None = None, semantic: bool = True,
               canon: dict | None = None) -> CacheHit | None:
        """The cached answer for this request, or None. Exact first, then
        semantic (unless ``semantic`` is false: e.g. summaries of a history).
        ``canon``: ``canonical_request(params)`` when the caller has it already
        (the gateway keeps it for the answer's ``put``)."""
        if request_not_cacheable(params, self.settings):
            return None
        now = clock.now() if now is None else now
        tenant = self._tenant(tenant)
        canon = canonical_request(params) if canon is None else canon
        with self.store.read() as conn:
            row = sql.find_exact(conn, _exact_key(canon, tenant), now)
        if row is not None:
            return self._hit(row, "exact", 1.0, now)
        if not (self.settings.semantic and semantic):
            return None
        split = _split(canon)
        if split is None or len(split.query) > self.settings.semantic_max_chars:
            return None
        best = self.semantic_match(split, tenant, has_history=len(canon["messages"]) > 1, now=now)
        return None if best is None else self._hit(best[1], "semantic", best[0].similarity, now)

    def semantic_match(self, split, tenant: str, *, has_history: bool, now: float) -> tuple[Verdict, dict] | None:
        """The best cached question of the same context the decision accepts, with its verdict."""
        emb = self.embedder
        vector = emb.embed(split.query)
        ctx = context_key(split, tenant)
        with self.store.read() as conn:
            near = [(i, c) for i, c in self.index.search(conn, ctx, vector, self.CANDIDATES)
                    if c >= self.MIN_CANDIDATE_COSINE]
            rows = sql.find_by_ids(conn, [i for i, _ in near], now) if near else []
        if not rows:
            return None  # nothing near: the question need not be analysed
        query = analyse(split.query)
        best: tuple[Verdict, dict] | None = None
        order = {i: rank for rank, (i, _) in enumerate(near)}
        for row in sorted(rows, key=lambda r: order[r["id"]]):  # nearest first: a sure match ends the search
            if row["context_key"] != ctx or not row["query_text"] or row["query_vector"] is None:
                continue  # never trust an id alone
            verdict = decide(query, stored_analysis(row["query_text"], row["query_analysis"]), vector, from_blob(row["query_vector"]), emb,
                             self.decision, threshold=self.threshold, has_history=has_history)
            if verdict.matched and (best is None or verdict.similarity > best[0].similarity):
                best = (verdict, row)
                if verdict.similarity >= 1.0:
                    break
        return best

    def _hit(self, row: dict, kind: str, similarity: float, now: float) -> CacheHit:
        with self._lock:
            p = self._pending.setdefault(row["id"], _PendingHits())
            if kind == "exact":
                p.exact += 1
            else:
                p.semantic += 1
            p.saved_usd += row["baseline_cost_usd"]
            p.last_used_at = now
            hits = row["exact_hits"] + row["semantic_hits"] + p.exact + p.semantic
        self._maybe_flush()
        return CacheHit(
            entry_id=row["id"],
            kind=kind,  # type: ignore[arg-type]
            similarity=float(similarity),
            text=row["text"],
            content=json.loads(row["content"]),
            model=row["model"],
            usage=json.loads(row["usage"]),
            cost_usd=row["cost_usd"],
            baseline_cost_usd=row["baseline_cost_usd"],
            savings=json.loads(row["savings"]),
            query_type=row["query_type"],
            created_at=row["created_at"],
            hits=hits,
        )

    def _maybe_flush(self) -> None:
        # wall-clock batching of writes, independent of the request's `now`
        due = (len(self._pending) >= self.MAX_PENDING_HITS
               or clock.now() - self._last_flush >= self.settings.hit_flush_seconds)
        if due:
            self.flush()

    def flush(self) -> int:
        """Write buffered hit counts and recency; returns the entries updated."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = clock.now()
        if not pending:
            return 0
        updates = [(p.exact, p.semantic, p.saved_usd, p.last_used_at, entry_id) for entry_id, p in pending.items()]
        with self.store.write() as conn:
            sql.record_hits(conn, updates)
        return len(updates)

    # -- store ---------------------------------------------------------------

    def should_store(self, params: dict, response: dict) -> str | None:
        """None when this answer may be cached, else the reason it may not."""
        return request_not_cacheable(params, self.settings) or response_not_cacheable(response)

    def put(
        self,
        params: dict,
        tenant: str,
        response: dict,
        *,
        cost_usd: float,
        baseline_cost_usd: float,
        savings: dict[str, float],
        now: float | None = None,
        semantic: bool = True,
        canon: dict | None = None,
    ) -> int | None:
        """Store an answer; returns its entry id, or None when policy says no
        (see ``should_store``). ``semantic`` False: indexed for exact repeats only.
        ``canon``: ``canonical_request(params)`` when the caller has it already."""
        if self.should_store(params, response) is not None:
            return None
        now = clock.now() if now is None else now
        entry = prepare_entry(params, self._tenant(tenant), response, self.settings, cost_usd=cost_usd,
                              baseline_cost_usd=baseline_cost_usd, savings=savings, now=now,
                              embedder=self.embedder if (self.settings.semantic and semantic) else None,
                              semantic=semantic, canon=canon)
        with self.store.write() as conn:
            entry_id = sql.insert_entry(conn, entry.row)
            entries, size = sql.totals(conn)
            if entries > self.settings.max_entries or size > self.settings.max_bytes:
                keep = 1.0 - self.settings.evict_fraction
                sql.evict(conn, target_entries=int(self.settings.max_entries * keep),
                          target_bytes=int(self.settings.max_bytes * keep), now=now,
                          half_life=self.settings.eviction_recency_half_life_seconds)
        return entry_id

    # -- maintenance ---------------------------------------------------------

    def clear(self, tenant: str | None = None) -> int:
        """Delete every cached answer (of one tenant when given); returns how many."""
        self.flush()
        with self.store.write() as conn:
            n = sql.clear(conn, self._tenant(tenant) if tenant is not None else None)
        self.index.forget()
        return n

    def purge_expired(self, now: float | None = None, retention_days: int | None = None) -> int:
        """Delete expired answers, and answers older than ``retention_days``."""
        self.flush()
        now = clock.now() if now is None else now
        created_before = now - retention_days * 86400 if retention_days else None
        with self.store.write() as conn:
            n = sql.delete_expired(conn, now, created_before)
        self.index.forget()
        return n

    def stats(self, tenant: str | None = None) -> dict:
        """Entries, bytes, hits by kind, money saved and entries by query type."""
        self.flush()
        with self.store.read() as conn:
            out = sql.stats(conn, self._tenant(tenant) if tenant is not None else None, clock.now())
        out["limits"] = {"max_entries": self.settings.max_entries, "max_bytes": self.settings.max_bytes}
        out["semantic"] = self.settings.semantic
        out["embedding_model"] = self.decision.embedding_model if self.settings.semantic else None
        out["decision_threshold"] = self.threshold
        return out

