"""The composition root: configuration, store, engine and batch queue, wired once per process.

The engine knows nothing of the queue; the queue builds on the engine. This is
the one place that connects them (the engine's ``defer`` is the queue's), so
every edge (MCP server, CLI, gateway) runs the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .batches import DeferredQueue
from .config import load_config
from .engine import Engine
from .metrics import MetricsLog
from .settings import Config
from .store import Store, open_store


@dataclass
class AppState:
    config: Config
    store: Store
    engine: Engine
    queue: DeferredQueue


def connect_queue(engine: Engine) -> DeferredQueue:
    """The batch queue of ``engine``, and the engine's budget deferrals sent to it."""
    queue = DeferredQueue(engine)
    engine.defer = queue.defer
    return queue


def open_state(config: Config | None = None, db_path: str | None = None, **engine_options) -> AppState:
    config = config or load_config()
    store = open_store(db_path)
    metrics = None
    if config.monitoring.metrics_log:
        path = Path(config.monitoring.metrics_log)
        if not path.is_absolute():
            path = store.data_dir / path
        metrics = MetricsLog(path)
    engine = Engine(config, store, metrics=metrics, **engine_options)
    return AppState(config, store, engine, connect_queue(engine))
