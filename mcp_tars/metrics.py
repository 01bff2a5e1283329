"""The JSON-lines metrics log (``monitoring_logs/optimization-metrics.log``).

One line per call, for tools that tail logs. The ledger stays the record of
truth; this file never holds prompts, answers or keys.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from . import clock


class MetricsLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))

    def write(self, result: Any) -> None:
        line = {
            "ts": round(clock.now(), 3),
            "source": result.source,
            "model": result.model,
            "session_id": result.session_id,
            "cache_kind": result.cache.get("kind"),
            "routing_level": result.routing.get("level"),
            "usage": result.usage,
            "cost_usd": result.cost_usd,
            "baseline_cost_usd": result.baseline_cost_usd,
            "saved_usd": result.saved_usd,
            "pruned": bool(result.pruning),
            "latency_ms": round(result.latency_ms, 2),
            "attempts": result.attempts,
        }
        text = json.dumps(line, sort_keys=True) + "\n"
        with self._lock:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(text)
            except OSError:
                pass  # a full disk must not fail the call; the ledger is the record of truth
