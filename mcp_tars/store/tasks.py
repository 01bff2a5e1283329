"""Deferred tasks and Message Batches: every query of the crash-safe queue.

The lifecycle lives in ``mcp_tars/batches.py``; this module only makes each
transition one transaction, conditional on the state it leaves, so that two
workers (or a restarted one) can never move a task twice:

    queued ──claim──► claimed ──record_submission──► submitted ──ingest_success──► succeeded
      ▲                  │  (the API's batch id and its tasks: one transaction)  │
      ├──release_claim───┘  (create refused; or, after a crash, not in the list) │
      └──settle_unanswered (errored / expired / missing, attempts left) ◄────────┴──► failed
    queued | submitted ──cancel_task──► canceled   (a submitted task's late answer is still billed)
    running (run at once through the engine) ──finish_running──► succeeded | failed

A ``claimed`` task belongs to one ``claim_token`` (one batch about to be
created). Its owner and lease are recorded so a restarted worker can tell an
orphaned claim from one a live process is still sending. Queued tasks are
claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (the whole SQLite file
is locked by a write transaction), and every read-then-change locks the row
it reads (``store.for_update``): on both backends a task moves once, however
many workers on however many machines try.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from . import Store, ledger, rows_as_dicts
from .schema import to_picousd, usd

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
FINISHED_STATUSES = ("succeeded", "failed", "canceled", "expired")

# Columns cheap enough to read for every queued task on every pass (no request bodies).
_LIGHT = ("id, tenant, status, priority, priority_rank, category, model, prefix_key, created_at, deadline_at, "
          "estimated_ready_at, attempts, request_bytes, claim_token, claim_owner, claimed_at, lease_until, batch_id, "
          "submitted_at, finished_at, cancel_requested, error, estimated_cost_picousd")
_CHUNK = 500  # ids per IN (...) list


def _rows(cur) -> list[dict]:
    """Rows as dicts, money in USD (``cost_usd``, ``estimated_cost_usd``)."""
    out = rows_as_dicts(cur)
    for row in out:
        for column in ("cost_picousd", "estimated_cost_picousd"):
            if column in row:
                row[column.replace("_picousd", "_usd")] = usd(row.pop(column))
    return out


def _marks(values: list) -> str:
    return ", ".join("?" for _ in values)


def _loads(value: str | None) -> Any:
    return json.loads(value) if value else None


# -- creating tasks -------------------------------------------------------------


def insert_task(store: Store, task: Mapping[str, Any]) -> None:
    """Write a new task (queued or running) before anything is sent for it."""
    values = dict(task)
    for key in ("request", "params", "decisions"):
        if values.get(key) is not None and not isinstance(values[key], str):
            values[key] = json.dumps(values[key], sort_keys=True)
    values["priority_rank"] = PRIORITY_RANK[values["priority"]]
    values.setdefault("request_bytes", len(values.get("params") or ""))
    decisions = _loads(task["decisions"]) if isinstance(task.get("decisions"), str) else task.get("decisions")
    values["estimated_cost_picousd"] = to_picousd((decisions or {}).get("estimated_cost_usd"))
    columns = ", ".join(values)
    with store.write() as c:
        c.execute(f"INSERT INTO tasks ({columns}) VALUES ({', '.join('?' for _ in values)})", tuple(values.values()))


def get_task(store: Store, tenant: str, task_id: str, *, with_request: bool = False) -> dict | None:
    extra = ", request, params, decisions, text, content, result_model, stop_reason, cost_picousd, response_id, result_type"
    with store.read() as c:
        rows = _rows(c.execute(
            f"SELECT {_LIGHT}{extra} FROM tasks WHERE id = ? AND tenant = ?", (task_id, tenant)))
    if not rows:
        return None
    row = rows[0]
    for key in ("request", "params", "decisions", "content"):
        row[key] = _loads(row[key]) if with_request or key == "decisions" else None
    return row


def tasks_by_status(store: Store, tenant: str | None, statuses: Iterable[str]) -> list[dict]:
    """Light rows (no request bodies), highest priority and oldest first
    (``tenant`` None: every tenant's)."""
    statuses = tuple(statuses)
    scope, params = ("tenant = ? AND ", [tenant]) if tenant is not None else ("", [])
    with store.read() as c:
        return _rows(c.execute(
            f"SELECT {_LIGHT} FROM tasks WHERE {scope}status IN ({', '.join('?' for _ in statuses)}) "
            "ORDER BY priority_rank, created_at, id", (*params, *statuses)))


def task_payloads(store: Store, task_ids: list[str], *, tenant: str | None = None) -> dict[str, dict]:
    """The stored request, API params and decisions of each task (of ``tenant``, when given)."""
    out: dict[str, dict] = {}
    with store.read() as c:
        for start in range(0, len(task_ids), _CHUNK):
            chunk = task_ids[start:start + _CHUNK]
            tenant_clause, tenant_args = (" AND tenant = ?", (tenant,)) if tenant is not None else ("", ())
            for row in c.execute(
                f"SELECT id, request, params, decisions, attempts FROM tasks WHERE id IN ({_marks(chunk)}){tenant_clause}",
                (*chunk, *tenant_args),
            ):
                out[row[0]] = {"request": _loads(row[1]), "params": _loads(row[2]), "decisions": _loads(row[3]),
                               "attempts": row[4]}
    return out


def counts(store: Store, tenant: str) -> dict[str, int]:
    with store.read() as c:
        by_status = dict(c.execute("SELECT status, COUNT(*) FROM tasks WHERE tenant = ? GROUP BY status", (tenant,)).fetchall())
        open_batches = c.execute(
            "SELECT COUNT(*) FROM batches WHERE tenant = ? AND status IN ('in_progress', 'canceling', 'ended')", (tenant,)
        ).fetchone()[0]
    return {**by_status, "open_batches": open_batches}


def committed_cost(store: Store, tenant: str) -> float:
    """Estimated cost of work sent (or being sent) and not answered yet: spent,
    as far as the budget is concerned."""
    with store.read() as c:
        return usd(c.execute(
            "SELECT COALESCE(SUM(estimated_cost_picousd), 0) FROM tasks "
            "WHERE tenant = ? AND status IN ('claimed', 'submitted')", (tenant,)).fetchone()[0])


def has_open_work(store: Store, tenant: str) -> bool:
    with store.read() as c:
        return bool(c.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE tenant = ? AND status IN ('queued', 'claimed', 'submitted', 'running')) "
            "OR EXISTS (SELECT 1 FROM batches WHERE tenant = ? AND status IN ('in_progress', 'canceling', 'ended'))",
            (tenant, tenant),
        ).fetchone()[0])


def note_waiting(store: Store, task_ids: list[str], message: str | None) -> None:
    """Say on queued tasks why they wait (a budget hold), or clear it."""
    with store.write() as c:
        c.executemany("UPDATE tasks SET error = ? WHERE id = ? AND status = 'queued'", [(message, t) for t in task_ids])


# -- submitting -----------------------------------------------------------------


def claim(store: Store, tenant: str, task_ids: list[str], *, token: str, owner: str, now: float,
          lease_until: float) -> list[str]:
    """Take queued tasks for one batch about to be created, until ``lease_until``;
    returns the ids actually taken (a task another worker claimed first, or
    holds right now, is skipped)."""
    taken: list[str] = []
    with store.write() as c:
        for start in range(0, len(task_ids), _CHUNK):
            chunk = task_ids[start:start + _CHUNK]
            taken += [r[0] for r in c.execute(
                "UPDATE tasks SET status = 'claimed', claim_token = ?, claim_owner = ?, claimed_at = ?, lease_until = ? "
                f"WHERE id IN (SELECT id FROM tasks WHERE tenant = ? AND status = 'queued' AND id IN ({_marks(chunk)}) "
                f"{store.skip_locked}) AND status = 'queued' RETURNING id",
                (token, owner, now, lease_until, tenant, *chunk)).fetchall()]
    order = {task_id: i for i, task_id in enumerate(task_ids)}
    return sorted(taken, key=order.__getitem__)


def record_submission(store: Store, tenant: str, *, token: str, batch_id: str, priority: str | None, now: float,
                      adopted: bool = False, prompt_cache: Mapping[str, Any] | None = None) -> int:
    """The batch exists at the API: record it and mark its tasks submitted, in
    one transaction. ``prompt_cache`` (task id -> decision) is kept with each
    task's decisions for its ledger row. Returns the number of tasks moved."""
    with store.write() as c:
        claimed = c.execute(
            "SELECT id, attempts, decisions FROM tasks WHERE claim_token = ? AND status = 'claimed' "
            f"ORDER BY priority_rank, created_at, id {store.for_update}", (token,)).fetchall()
        task_ids = [r[0] for r in claimed]
        c.execute(
            "INSERT INTO batches (id, tenant, status, priority, request_count, created_at, adopted) "
            "VALUES (?, ?, 'in_progress', ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (batch_id, tenant, priority, len(task_ids), now, int(adopted)),
        )
        for task_id, attempts, decisions_json in claimed:
            c.execute("INSERT INTO batch_tasks (batch_id, task_id, attempt) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                      (batch_id, task_id, attempts + 1))
            decisions = _loads(decisions_json) or {}
            decisions["prompt_cache"] = (prompt_cache or {}).get(task_id)
            c.execute("UPDATE tasks SET decisions = ? WHERE id = ?", (json.dumps(decisions, sort_keys=True), task_id))
        # A task canceled while it was being sent is canceled now; its batch still runs.
        c.execute(
            "UPDATE tasks SET status = CASE WHEN cancel_requested = 1 THEN 'canceled' ELSE 'submitted' END, "
            "finished_at = CASE WHEN cancel_requested = 1 THEN ? ELSE NULL END, "
            "batch_id = ?, attempts = attempts + 1, submitted_at = ?, "
            "claim_token = NULL, claim_owner = NULL, claimed_at = NULL, lease_until = NULL, error = NULL "
            "WHERE claim_token = ? AND status = 'claimed'",
            (now, batch_id, now, token),
        )
        return len(task_ids)


def release_claim(store: Store, token: str, error: str | None, *, now: float) -> int:
    """The batch was certainly not created: the claimed tasks go back to the queue."""
    with store.write() as c:
        return c.execute(
            "UPDATE tasks SET status = CASE WHEN cancel_requested = 1 THEN 'canceled' ELSE 'queued' END, "
            "finished_at = CASE WHEN cancel_requested = 1 THEN ? ELSE NULL END, "
            "claim_token = NULL, claim_owner = NULL, claimed_at = NULL, lease_until = NULL, error = ? "
            "WHERE claim_token = ? AND status = 'claimed'",
            (now, error, token),
        ).rowcount


def orphan_claim(store: Store, token: str) -> None:
    """The create call ended without an answer: the batch may or may not exist.
    Drop the owner so the next pass reconciles the claim with the API's list."""
    with store.write() as c:
        c.execute("UPDATE tasks SET claim_owner = NULL WHERE claim_token = ? AND status = 'claimed'", (token,))


def claims(store: Store, tenant: str) -> list[dict]:
    """Open claims: token, owner, earliest claimed_at, earliest lease end
    (None for claims made before leases) and their task ids, oldest first."""
    with store.read() as c:
        rows = c.execute(
            "SELECT claim_token, claim_owner, claimed_at, lease_until, id FROM tasks "
            "WHERE tenant = ? AND status = 'claimed' ORDER BY claimed_at, id", (tenant,)).fetchall()
    groups: dict[tuple, dict] = {}
    for token, owner, claimed_at, lease_until, task_id in rows:
        group = groups.setdefault((token, owner), {"token": token, "owner": owner, "claimed_at": claimed_at,
                                                   "lease_until": lease_until, "task_ids": []})
        if lease_until is not None and (group["lease_until"] is None or lease_until < group["lease_until"]):
            group["lease_until"] = lease_until
        group["task_ids"].append(task_id)
    return list(groups.values())


def known_batch_ids(store: Store, batch_ids: Iterable[str]) -> set[str]:
    ids = list(batch_ids)
    if not ids:
        return set()
    with store.read() as c:
        return {r[0] for r in c.execute(f"SELECT id FROM batches WHERE id IN ({', '.join('?' for _ in ids)})", ids)}


# -- polling and results ---------------------------------------------------------


def open_batches(store: Store, tenant: str | None) -> list[dict]:
    """Batches not finished yet (``tenant`` None: every tenant's)."""
    scope, params = ("tenant = ? AND ", [tenant]) if tenant is not None else ("", [])
    with store.read() as c:
        return _rows(c.execute(
            f"SELECT * FROM batches WHERE {scope}status IN ('in_progress', 'canceling', 'ended') "
            "ORDER BY created_at, id", params))


def record_poll(store: Store, batch_id: str, *, status: str, request_counts: Mapping[str, int] | None, now: float) -> None:
    with store.write() as c:
        c.execute(
            "UPDATE batches SET status = ?, counts = ?, polled_at = ?, polls = polls + 1, "
            "ended_at = CASE WHEN ? = 'ended' THEN COALESCE(ended_at, ?) ELSE ended_at END "
            "WHERE id = ? AND status != 'ingested'",
            (status, json.dumps(dict(request_counts or {})), now, status, now, batch_id),
        )


def batch_task_ids(store: Store, batch_id: str) -> set[str]:
    with store.read() as c:
        return {r[0] for r in c.execute("SELECT task_id FROM batch_tasks WHERE batch_id = ?", (batch_id,))}


def ingest_success(store: Store, tenant: str, *, task_id: str, batch_id: str, ledger_row: Mapping[str, Any],
                   text: str, content: list, model: str, stop_reason: str | None, cost_usd: float | None,
                   now: float) -> tuple[bool, str | None]:
    """One succeeded result: its ledger row and the task's answer, in one
    transaction. Returns (ledger row inserted, the task's status afterwards).

    The ledger row goes in whatever the task's state: the API billed it. A task
    that already finished (canceled meanwhile, or answered by another batch)
    keeps its status; a canceled one records what its late answer cost."""
    with store.write() as c:
        inserted = ledger.insert(store, ledger_row, conn=c)
        row = c.execute(f"SELECT status FROM tasks WHERE id = ? AND tenant = ? {store.for_update}",
                        (task_id, tenant)).fetchone()
        if row is None:
            return inserted, None
        if row[0] in ("submitted", "claimed", "queued"):
            c.execute(
                "UPDATE tasks SET status = 'succeeded', result_type = 'succeeded', batch_id = ?, text = ?, content = ?, "
                "result_model = ?, stop_reason = ?, cost_picousd = ?, response_id = ?, finished_at = ?, error = NULL, "
                "claim_token = NULL, claim_owner = NULL, claimed_at = NULL, lease_until = NULL WHERE id = ?",
                (batch_id, text, json.dumps(content), model, stop_reason, to_picousd(cost_usd),
                 ledger_row["response_id"], now, task_id),
            )
            return inserted, "succeeded"
        if row[0] == "canceled" and inserted:
            c.execute(
                "UPDATE tasks SET cost_picousd = COALESCE(cost_picousd, 0) + COALESCE(?, 0), response_id = ?, "
                "error = 'canceled after submission; the API had already answered, and that answer was billed' "
                "WHERE id = ?",
                (to_picousd(cost_usd), ledger_row["response_id"], task_id),
            )
        return inserted, row[0]


def settle_unanswered(store: Store, tenant: str, *, task_id: str, batch_id: str, result_type: str, error: str,
                      retry: bool, max_attempts: int, now: float) -> str | None:
    """An errored, expired or canceled result (or none at all) for a task of
    this batch: back to the queue while attempts remain and ``retry``, else
    failed with the API's error. Returns the task's new status (None: untouched)."""
    with store.write() as c:
        row = c.execute(f"SELECT status, batch_id, attempts FROM tasks WHERE id = ? AND tenant = ? {store.for_update}",
                        (task_id, tenant)).fetchone()
        if row is None or row[0] != "submitted" or row[1] != batch_id:
            return None  # finished already, or resubmitted elsewhere
        if retry and row[2] < max_attempts:
            status = "queued"
        else:  # out of attempts: "expired" when the API's 24-hour limit was the last word
            status = "expired" if result_type == "expired" else "failed"
        if status == "queued":
            c.execute("UPDATE tasks SET status = 'queued', batch_id = NULL, result_type = ?, error = ? WHERE id = ?",
                      (result_type, error, task_id))
        else:
            c.execute("UPDATE tasks SET status = ?, result_type = ?, error = ?, finished_at = ? WHERE id = ?",
                      (status, result_type, error, now, task_id))
        return status


def finish_batch(store: Store, batch_id: str, *, now: float) -> None:
    with store.write() as c:
        c.execute("UPDATE batches SET status = 'ingested', ingested_at = ? WHERE id = ?", (now, batch_id))


def submitted_tasks_of(store: Store, batch_id: str) -> list[str]:
    with store.read() as c:
        return [r[0] for r in c.execute("SELECT id FROM tasks WHERE batch_id = ? AND status = 'submitted'", (batch_id,))]


# -- cancellation -----------------------------------------------------------------


def cancel_task(store: Store, tenant: str, task_id: str, *, now: float) -> tuple[str, str | None] | None:
    """Cancel a task. Queued: canceled at once. Submitted: canceled too, but
    its batch still runs (a batch cannot be partially canceled), so a late
    answer is still billed and recorded. Claimed (being sent): canceled as soon
    as the submission is recorded or released. Anything else is left alone.
    Returns (the status the task had, its batch id), or None for an unknown task."""
    with store.write() as c:
        row = c.execute(f"SELECT status, batch_id FROM tasks WHERE id = ? AND tenant = ? {store.for_update}",
                        (task_id, tenant)).fetchone()
        if row is None:
            return None
        status, batch_id = row
        if status in ("queued", "submitted"):
            c.execute("UPDATE tasks SET status = 'canceled', cancel_requested = 1, finished_at = ?, "
                      "error = CASE WHEN status = 'queued' THEN NULL ELSE error END WHERE id = ?", (now, task_id))
        elif status == "claimed":
            c.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))
        return status, batch_id


def batches_to_cancel(store: Store, tenant: str) -> list[str]:
    """Running batches none of whose tasks still wants an answer."""
    with store.read() as c:
        return [r[0] for r in c.execute(
            "SELECT b.id FROM batches b WHERE b.tenant = ? AND b.status = 'in_progress' AND b.cancel_sent = 0 "
            "AND NOT EXISTS (SELECT 1 FROM batch_tasks bt JOIN tasks t ON t.id = bt.task_id "
            "                WHERE bt.batch_id = b.id AND t.status IN ('submitted', 'claimed') AND t.batch_id = b.id)",
            (tenant,))]


def mark_cancel_sent(store: Store, batch_id: str) -> None:
    with store.write() as c:
        c.execute("UPDATE batches SET cancel_sent = 1 WHERE id = ?", (batch_id,))


# -- immediate runs -----------------------------------------------------------------


def finish_running(store: Store, task_id: str, *, status: str, now: float, text: str | None = None,
                   content: list | None = None, model: str | None = None, stop_reason: str | None = None,
                   cost_usd: float | None = None, response_id: str | None = None, error: str | None = None,
                   result_type: str = "immediate") -> None:
    """Record the outcome of a task run through the engine at once; link its
    ledger row (written by the engine) to the task."""
    with store.write() as c:
        c.execute(
            "UPDATE tasks SET status = ?, text = ?, content = ?, result_model = ?, stop_reason = ?, cost_picousd = ?, "
            "response_id = ?, error = ?, finished_at = ?, result_type = ?, attempts = attempts + 1, lease_until = NULL "
            "WHERE id = ? AND status = 'running'",
            (status, text, json.dumps(content) if content is not None else None, model, stop_reason, to_picousd(cost_usd),
             response_id, error, now, result_type, task_id),
        )
        if response_id:
            c.execute("UPDATE ledger SET task_id = ? WHERE response_id = ? AND task_id IS NULL", (task_id, response_id))


def start_running(store: Store, task_id: str, owner: str, *, lease_until: float) -> bool:
    """A queued task is taken to run at once (its deadline is too near for a
    batch), until ``lease_until``."""
    with store.write() as c:
        return c.execute("UPDATE tasks SET status = 'running', claim_owner = ?, lease_until = ? "
                         "WHERE id = ? AND status = 'queued'", (owner, lease_until, task_id)).rowcount == 1


def running_tasks(store: Store, tenant: str) -> list[dict]:
    with store.read() as c:
        return _rows(c.execute("SELECT id, claim_owner, created_at, lease_until FROM tasks "
                               "WHERE tenant = ? AND status = 'running'", (tenant,)))


# -- listing ------------------------------------------------------------------------


def finished(store: Store, tenant: str, *, limit: int, status: str | None) -> list[dict]:
    statuses = (status,) if status else FINISHED_STATUSES
    with store.read() as c:
        rows = _rows(c.execute(
            f"SELECT id, status, priority, created_at, finished_at, batch_id, attempts, text, result_model, cost_picousd, error "
            f"FROM tasks WHERE tenant = ? AND status IN ({', '.join('?' for _ in statuses)}) "
            "ORDER BY finished_at DESC, id LIMIT ?",
            (tenant, *statuses, limit)))
    return rows


def submissions(store: Store, task_id: str) -> list[dict]:
    """Every batch a task was sent in (one row per attempt)."""
    with store.read() as c:
        return _rows(c.execute("SELECT batch_id, attempt FROM batch_tasks WHERE task_id = ? ORDER BY attempt", (task_id,)))


def open_task_count(store: Store) -> int:
    """Tasks of any tenant not finished yet (queued, being sent, sent or running)."""
    with store.read() as c:
        return c.execute("SELECT COUNT(*) FROM tasks WHERE status IN ('queued', 'claimed', 'submitted', 'running')"
                         ).fetchone()[0]
