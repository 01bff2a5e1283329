"""Message Batches: the record of one batch and its wire format.

A batch is ``in_progress`` until it has been retrieved ``ready_after_polls``
times (0: it ends as soon as it is created), then every request is processed
at once, in order, through the same code as ``POST /v1/messages`` (so prompt
caching works inside a batch) and billed at the batch multiplier. Cancel
moves it to ``canceling``; the next retrieve ends it: the share of requests
already "done" (polls / ready_after_polls) succeed and the rest are canceled.
A batch still running past ``expires_at`` (24 h, on the shared clock) ends
with its requests expired.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import invalid_request

BATCH_LIFETIME_SECONDS = 24 * 3600
MAX_BATCH_REQUESTS = 100_000
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclass
class SimBatch:
    id: str
    requests: list[dict[str, Any]]  # [{"custom_id": ..., "params": {...}}] as received
    created_at: float
    sequence: int  # creation order, for listing newest first
    processing_status: str = "in_progress"  # in_progress | canceling | ended
    polls: int = 0
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> result
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def status(self) -> str:
        return self.processing_status

    @property
    def expires_at(self) -> float:
        return self.created_at + BATCH_LIFETIME_SECONDS

    def request_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(RESULT_TYPES, 0)
        if self.processing_status != "ended":
            return {**counts, "processing": len(self.requests)}
        for result in self.results.values():
            counts[result["type"]] += 1
        return {**counts, "processing": 0}

    def to_wire(self, base_url: str) -> dict[str, Any]:
        ended = self.processing_status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": self.request_counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "cancel_initiated_at": (
                rfc3339(self.cancel_initiated_at) if self.cancel_initiated_at is not None else None
            ),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


def validate_batch_requests(body: Any) -> list[dict[str, Any]]:
    """Check the envelope only; each request's params are validated while processing."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise invalid_request("requests: Field required")
    if not requests:
        raise invalid_request("requests: at least one request is required")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise invalid_request(f"requests: at most {MAX_BATCH_REQUESTS} requests are allowed per batch")
    seen: set[str] = set()
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid_request(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise invalid_request(f"{where}.custom_id: custom_id values must be unique, {custom_id!r} repeats")
        seen.add(custom_id)
        if not isinstance(request.get("params"), dict):
            raise invalid_request(f"{where}.params: Field required")
    return requests


def list_page(batches: list[SimBatch], query: dict[str, str]) -> tuple[list[SimBatch], bool]:
    """One page of ``batches`` (newest first), with the real API's cursors. Returns (page, has_more)."""
    try:
        limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
    except ValueError:
        raise invalid_request("limit: Input should be a valid integer") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid_request(f"limit: Input should be between 1 and {MAX_LIST_LIMIT}")
    ordered = sorted(batches, key=lambda batch: batch.sequence, reverse=True)
    ids = [batch.id for batch in ordered]
    if query.get("before_id"):
        end = _cursor_position(ids, query["before_id"], "before_id")
        start = max(0, end - limit)
        return ordered[start:end], start > 0
    start = _cursor_position(ids, query["after_id"], "after_id") + 1 if query.get("after_id") else 0
    page = ordered[start : start + limit]
    return page, start + limit < len(ordered)


def _cursor_position(ids: list[str], batch_id: str, name: str) -> int:
    try:
        return ids.index(batch_id)
    except ValueError:
        raise invalid_request(f"{name}: no message batch with id {batch_id!r}") from None


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")
