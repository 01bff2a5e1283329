"""``mcp-tars db copy SRC DST``: bring one database's history into another
(typically a single user's SQLite file into the team's PostgreSQL database).

What is copied: the ledger (every row as stored, money in picodollars, so
the copy is exact), the alerts and the sessions (routing stays sticky). Not
copied: the response cache (answers are cheap to get again and may be
private) and deferred work (a task must be sent from one queue only: let
SRC's finish first, then copy again).

Idempotent: ledger rows are keyed by response_id, alerts by (tenant, kind,
scope, period) and sessions by (tenant, session_id); what DST already holds
is kept, so a copy run twice (or broken off and run again) adds each row once.
Ledger rows go in chunks, each one transaction, in SRC's insertion order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import Store, alerts, ledger, tasks

CHUNK_ROWS = 5000


@dataclass
class CopyReport:
    ledger_rows: int = 0  # rows read from SRC
    ledger_added: int = 0  # rows DST did not have
    alerts_added: int = 0
    sessions_added: int = 0
    open_tasks_left: int = 0  # deferred tasks SRC still has to finish


def copy_history(src: Store, dst: Store, *, progress: Callable[[int], None] | None = None) -> CopyReport:
    report = CopyReport()
    after = 0
    while True:
        rows = ledger.stored_rows(src, after_id=after, limit=CHUNK_ROWS)
        if not rows:
            break
        report.ledger_rows += len(rows)
        report.ledger_added += ledger.insert_stored(dst, rows)
        after = rows[-1]["id"]
        if progress:
            progress(report.ledger_rows)
    report.alerts_added = alerts.insert_stored(dst, alerts.stored_alerts(src))
    report.sessions_added = ledger.insert_sessions(dst, ledger.stored_sessions(src))
    report.open_tasks_left = tasks.open_task_count(src)
    return report
