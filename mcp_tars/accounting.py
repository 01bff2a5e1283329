"""From an API message to a ledger row, and the row into the ledger.

Bills come from the message's ``usage`` (never from estimates); the split of
the saving by lever comes from ``pricing.attribute_call``. A row that the
database cannot take goes to the recovery spool beside it and enters the
ledger on the next successful write (at the latest on the next start): an
answer already paid for is never lost from the books.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import clock, tokens
from .pricing import Attribution, PriceTable, Usage, attribute_call
from .store import Store, StoreError
from .store import ledger

log = logging.getLogger("mcp_tars.accounting")


def usage_dict(u: Usage) -> dict:
    """Usage in the API's field names, plus the 5m/1h split of cache writes."""
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_write_5m_tokens": u.cache_write_5m_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
    }


def content_blocks(message: Any) -> list[dict]:
    return [b if isinstance(b, dict) else b.model_dump(mode="json", exclude_none=True) for b in message.content]


@dataclass
class WireMessage:
    """An API answer as the JSON it came in (what the gateway relays), read
    like the SDK's ``Message``: ``id``, ``model``, ``usage``, ``content``, ``stop_reason``."""

    id: str | None
    model: str | None
    usage: dict
    content: list
    stop_reason: str | None = None
    stop_sequence: str | None = None

    @classmethod
    def from_json(cls, message: dict) -> "WireMessage":
        return cls(message.get("id"), message.get("model"), message.get("usage") or {}, message.get("content") or [],
                   message.get("stop_reason"), message.get("stop_sequence"))


class Accounting:
    """Prices answers and writes their ledger rows (one per call, idempotent on ``response_id``)."""

    def __init__(self, store: Store, prices: PriceTable, default_model: str):
        self.store = store
        self.prices = prices
        self.default_model = default_model
        self._spooled = False
        self._journal = ledger.Journal(store)
        self._journaled: list[dict] = []

    def account(self, message: Any, *, model: str, prune_info: dict | None, batch: bool = False,
                when: datetime | None = None) -> tuple[Usage, Attribution, list[dict]]:
        """Usage, cost and savings by lever, and the content blocks of one API
        message (an immediate answer or a batch result)."""
        usage = Usage.from_api(message.usage)
        billed = message.model or model
        pruned_away = 0
        if prune_info:  # estimated on the default model's tokenizer
            pruned_away = round((prune_info["tokens_before"] - prune_info["tokens_after"])
                                * tokens.family_factor(self.default_model) / tokens.family_factor(billed))
        attribution = attribute_call(self.prices, usage=usage, model=billed, default_model=self.default_model,
                                     batch=batch, pruned_away_tokens=pruned_away, when=when or clock.utc_now())
        return usage, attribution, content_blocks(message)

    @staticmethod
    def row(*, tenant: str, response_id, request_id, ts, session_id, source, model, requested_model, usage: Usage,
            attribution: Attribution, routing_decision=None, routing_info=None, prompt_cache=None,
            prune_info=None, stop_reason=None, latency_ms=None, attempts=1, cache_kind=None,
            cache_similarity=None, task_id=None, batch=False) -> dict:
        s = attribution.savings
        r = routing_decision
        return {
            "response_id": response_id, "request_id": request_id, "ts": ts, "tenant": tenant,
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

    def record_later(self, row: dict) -> None:
        """Journal one ledger row now (cheap: one line appended to a file) and
        write it into the ledger at the next ``record_journaled``: a client can
        get its answer in between, and a crash in between loses nothing (see
        ``ledger.Journal``). A journal that cannot be written: the row goes in now."""
        try:
            self._journal.write(row)
        except OSError as e:
            log.warning("ledger journal not written (%s): the row goes into the ledger now", e)
            self.record(row, [])
            return
        self._journaled.append(row)

    def record_journaled(self) -> int:
        """Write the journaled rows into the ledger (or the recovery spool),
        then empty the journal; returns how many rows."""
        rows, self._journaled = self._journaled, []
        for row in rows:
            self.record(row, [])
        if rows:
            try:
                self._journal.clear()
            except OSError as e:  # its rows are in: a replay would add nothing
                log.warning("ledger journal not emptied: %s", e)
        return len(rows)

    def close(self) -> None:
        """Write what is journaled, then remove the journal."""
        self.record_journaled()
        try:
            self._journal.close()
        except OSError as e:
            log.warning("ledger journal not removed: %s", e)

    def record(self, row: dict, warnings: list[str]) -> None:
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
        if self._spooled:  # the database works again: bring the spooled rows in
            try:
                ledger.replay_spool(self.store)
                self._spooled = False
            except (StoreError, OSError) as e:
                log.warning("ledger recovery spool not replayed yet: %s", e)
