"""The JSON-lines metrics log (``monitoring_logs/optimization-metrics.log``).

One line per call, for tools that tail logs. The ledger stays the record of
truth; this file never holds prompts, answers or keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

from . import clock


# Lines are written in one go shortly after the call returns (or when the log
# closes): the caller does not wait for the encoding and the write.
FLUSH_DELAY_SECONDS = 0.002


class MetricsLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None  # kept open: opening per call cost a fifth of a cache hit
        self._pending: list[dict] = []
        # the loop that will call flush(): a loop that stops or closes first
        # never does, so the next write takes over instead of waiting for it
        self._flush_loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        return self._fd

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

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
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: write now
            loop = None
        with self._lock:
            self._pending.append(line)
            if self._flush_loop is not None and self._flush_loop.is_running():
                return  # a flush is coming
            self._flush_loop = loop
        if loop is None:
            self.flush()
        else:
            loop.call_later(FLUSH_DELAY_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the pending lines (one O_APPEND write: lines never interleave)."""
        with self._lock:
            lines, self._pending = self._pending, []
            self._flush_loop = None
            if not lines:
                return
            data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
            try:
                os.write(self._open(), data)
            except OSError:
                # a full disk must not fail the call (the ledger is the record of truth);
                # reopen next time in case the file was rotated away
                if self._fd is not None:
                    try:
                        os.close(self._fd)
                    except OSError:
                        pass
                    self._fd = None
