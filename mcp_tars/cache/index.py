"""Nearest-neighbour search over the cached questions' vectors, one index per
context (tenant + everything but the last user message), so a search never
sees a question it may not answer.

The vectors live in the store (``response_cache.query_vector``, float16);
this module keeps an in-process copy per context, filled lazily and brought
up to date on every search with the rows added since (one indexed range
query on ``(context_key, id)``), so answers stored by another process are
found too. Small contexts are a numpy matrix searched exactly; above
``EXACT_MAX`` entries a context moves to an HNSW graph (``voyager``), whose
search cost grows with log(n): flat from thousands to a million entries.
Deleted or expired entries may linger in the copy: every candidate is read
back from the store with its expiry checked, and contexts are dropped from
memory least-recently-used first (``MAX_CONTEXTS``) and rebuilt on demand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..store import cache as sql
from .embedding import DIMENSIONS, from_blob

EXACT_MAX = 256  # entries a context searches exactly before it gets an HNSW graph
MAX_CONTEXTS = 512  # contexts kept in memory
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64


class _ContextVectors:
    def __init__(self) -> None:
        self.last_id = 0
        self.ids: list[int] = []
        self.matrix = np.zeros((0, DIMENSIONS), np.float32)
        self.graph = None  # voyager.Index once the context outgrows EXACT_MAX

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        if not ids:
            return
        self.last_id = max(self.last_id, max(ids))
        if self.graph is None and len(self.ids) + len(ids) <= EXACT_MAX:
            self.ids.extend(ids)
            self.matrix = np.vstack([self.matrix, vectors]) if len(self.matrix) else vectors
            return
        if self.graph is None:
            self.graph = _new_graph()
            if self.ids:
                self.graph.add_items(self.matrix, ids=self.ids)
            self.ids, self.matrix = [], np.zeros((0, DIMENSIONS), np.float32)
        self.graph.add_items(vectors, ids=ids)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.graph is not None:
            n = self.graph.num_elements
            if n == 0:
                return []
            ids, distances = self.graph.query(vector, k=min(k, n), query_ef=max(HNSW_EF_SEARCH, k))
            return [(int(i), 1.0 - float(d)) for i, d in zip(ids, distances)]  # inner-product distance = 1 - dot
        if not self.ids:
            return []
        sims = np.einsum("ij,j->i", self.matrix, vector)  # no BLAS call: its threads cost more than this
        top = np.argsort(-sims)[:k]
        return [(self.ids[i], float(sims[i])) for i in top]


def _new_graph():
    import voyager

    return voyager.Index(voyager.Space.InnerProduct, num_dimensions=DIMENSIONS, M=HNSW_M,
                         ef_construction=HNSW_EF_CONSTRUCTION, storage_data_type=voyager.StorageDataType.Float8)


class VectorIndex:
    """Per-context nearest-neighbour search over the store's vectors. Thread-safe."""

    def __init__(self) -> None:
        self._contexts: OrderedDict[str, _ContextVectors] = OrderedDict()
        self._lock = threading.Lock()

    def search(self, conn, context_key: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (entry id, cosine) of this context, nearest first."""
        with self._lock:
            ctx = self._contexts.get(context_key)
            if ctx is None:
                ctx = self._contexts[context_key] = _ContextVectors()
                while len(self._contexts) > MAX_CONTEXTS:
                    self._contexts.popitem(last=False)
            else:
                self._contexts.move_to_end(context_key)
            rows = sql.vectors_after(conn, context_key, ctx.last_id)
            if rows:
                ctx.add([r[0] for r in rows], np.stack([from_blob(r[1]) for r in rows]))
            return ctx.search(vector, k)

    def forget(self) -> None:
        """Drop every in-memory copy (after a clear or purge: rebuilt on demand)."""
        with self._lock:
            self._contexts.clear()
