"""Deferred work through the Message Batches API: half price, crash-safe.

Work that can wait is queued in the store by priority with its deadline, sent as
Message Batches (every line billed at 50%), polled, and its results entered in
the ledger exactly once. Critical work, and work whose deadline a batch cannot
meet, runs at once through the engine.

When a batch goes out (``plan_queue``, pure). Tasks are grouped in categories
(routed model, priority, shared-prefix hash); a category is due when

- it holds ``batch.batch_size`` tasks, or its oldest task has waited
  ``batch.batch_timeout_seconds`` (normal priority);
- at the next pass, whatever its size (high priority: the discount does not
  depend on the batch size, so high-priority work never waits to fill one);
- inside the off-peak window (low priority, when
  ``batch.low_priority_waits_for_off_peak``; otherwise like normal);
- a task's deadline leaves just enough time for a batch: ``deadline -
  expected_batch_seconds - poll_interval_seconds`` has passed;
- always, when the pass is forced.

A due category takes all its tasks along; the due tasks of one priority go out
as one batch (split only at the API's limits), ordered so that tasks sharing a
prefix sit together, with a ``batch.prefix_cache_ttl`` (1 h) cache breakpoint
on the prefix that two or more of them share. A queued task whose deadline is
nearer than ``expected_batch_seconds`` runs at once, at the standard rate.

The state machine (transitions in ``store/tasks.py``, each one transaction):

    queued ─► claimed ─► submitted ─► succeeded
      ▲         │            ├──────► failed      (errored/expired, attempts used up,
      │         │            │                     or an invalid request)
      └─────────┴────────────┘ retry  (errored / expired / canceled result, create failed)
    queued | claimed | submitted ─► canceled
    running (an immediate run) ─► succeeded | failed

Crash safety:
- a task is written before anything is sent; ``custom_id`` is the task id;
- tasks are *claimed* (with the owner process and a lease of
  ``api.timeout_seconds`` + 60 s) before ``batches.create``; the API's batch
  id and the ``submitted`` mark are written in one transaction;
- a claim whose lease ran out, or whose owner died (checked in /proc for a
  SQLite file, which lives on one machine; on a team database shared by
  several machines only the lease decides), is reconciled with the API's
  batch list: a batch created after the claim with the same number of
  requests and unknown locally is adopted, otherwise the tasks go back to the
  queue. A task is never sent twice;
- a result enters the ledger with ``response_id = batch:{batch_id}:{task_id}``
  (UNIQUE) in the same transaction that records the task's answer, so a
  restart re-reads the results without counting anything twice;
- a canceled task's late answer is still entered in the ledger: it was billed.

Budget: with ``budget.policy`` "block" or "defer", due work whose estimated
batch cost, on top of the spend and of the work already sent but not billed
yet, would exceed a daily or monthly limit stays queued (``task_status`` says
why) until the budget allows it; nothing fails. With "downgrade", routing
steps down at defer time as for immediate calls.

Response cache: a deferred request whose answer is cached is answered at once,
at no cost; batch answers are stored in the response cache like the engine's.

Retries: an errored, expired or canceled result goes back to the queue until
``batch.max_attempts`` submissions were made, then the task is ``failed`` with
the API's error (an ``invalid_request_error`` fails at once: resending the
same request cannot help).

Test hooks (documented, for the crash tests only): the environment variable
``MCP_TARS_TEST_CRASH_AFTER_INGEST=N`` kills the process with SIGKILL once N
results are committed; ``MCP_TARS_TEST_CRASH_AFTER_CREATE=1`` kills it right
after the API created a batch, before the batch id is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable

import anthropic
import httpx2  # the SDK's HTTP client: a results download that breaks off mid-body raises its errors as they are

from . import clock, tokens
from .budget import BudgetGuard
from .engine import Engine
from .plan import classify_request
from .request import (
    CompletionRequest,
    CompletionResult,
    InputError,
    build_messages,
    check_scalars,
    response_cache_params,
    response_text,
)
from .routing import RoutingDecision
from .settings import BatchSettings
from .store import tasks as task_store

log = logging.getLogger("mcp_tars.batches")

PRIORITIES = ("high", "normal", "low")
MAX_WAIT_SECONDS = 366 * 86400
API_MAX_REQUESTS = 100_000
# The API takes 256 MB per batch; keep room for the envelope and JSON escaping.
BATCH_BYTES_LIMIT = 200 * 1024 * 1024
# Error types for which sending the same request again cannot help.
FINAL_ERROR_TYPES = ("invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                     "request_too_large")
LIST_SKEW_SECONDS = 120  # clock difference tolerated between us and the API when adopting a batch
# Results of a finished batch are read and recorded this many at a time, as they stream in: memory
# stays bounded whatever the batch size (up to 100,000 results, 256 MB) and each chunk costs one lookup.
RESULTS_CHUNK_SIZE = 250

Progress = Callable[[float, float | None, str], Awaitable[None]]


# -- the pure core: when work goes out ------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """What the submission rules need to know about a queued task."""

    id: str
    priority: str
    category: str
    created_at: float
    deadline_at: float
    size_bytes: int = 0
    estimated_cost_usd: float = 0.0  # at the batch rate, max_tokens of output


@dataclass
class QueuePlan:
    submit: list[tuple[Pending, str]] = field(default_factory=list)  # (task, why it is due)
    run_now: list[Pending] = field(default_factory=list)  # deadline too near for a batch
    waiting: list[Pending] = field(default_factory=list)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def iso_utc(ts: float | None) -> str | None:
    return _utc(ts).isoformat(timespec="seconds").replace("+00:00", "Z") if ts is not None else None


def in_off_peak(ts: float, settings: BatchSettings) -> bool:
    """Whether ``ts`` falls in the off-peak window (UTC hours, the end exclusive;
    a window may wrap midnight, e.g. 22 -> 4)."""
    start, end = settings.off_peak_start_hour_utc, settings.off_peak_end_hour_utc % 24
    if settings.off_peak_end_hour_utc == 24 and start == 0:
        return True
    hour = _utc(ts).hour
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def next_off_peak_start(ts: float, settings: BatchSettings) -> float | None:
    """``ts`` inside the window, else the next start of the window (None: the window is empty)."""
    if in_off_peak(ts, settings):
        return ts
    if settings.off_peak_start_hour_utc == settings.off_peak_end_hour_utc % 24 and settings.off_peak_end_hour_utc != 24:
        return None
    now = _utc(ts)
    start = now.replace(hour=settings.off_peak_start_hour_utc, minute=0, second=0, microsecond=0)
    if start.timestamp() <= ts:
        start = start.fromtimestamp(start.timestamp() + 86400, timezone.utc)
    return start.timestamp()


def latest_batch_submit_at(deadline_at: float, settings: BatchSettings) -> float:
    """The last moment a batch can go out and still be expected back by the
    deadline, with one worker interval of slack."""
    return deadline_at - settings.expected_batch_seconds - settings.poll_interval_seconds


def too_late_for_batch(deadline_at: float, now: float, settings: BatchSettings) -> bool:
    return deadline_at - now < settings.expected_batch_seconds


def _category_due(members: list[Pending], settings: BatchSettings, now: float) -> str | None:
    if any(latest_batch_submit_at(t.deadline_at, settings) <= now for t in members):
        return "deadline"
    priority = members[0].priority
    if priority == "high":
        return "high priority"
    if priority == "low" and settings.low_priority_waits_for_off_peak:
        return "off-peak window" if in_off_peak(now, settings) else None
    if len(members) >= settings.batch_size:
        return "batch size"
    if now - min(t.created_at for t in members) >= settings.batch_timeout_seconds:
        return "batch timeout"
    return None


def plan_queue(queued: Iterable[Pending], settings: BatchSettings, now: float, *, force: bool = False) -> QueuePlan:
    """Sort queued tasks into: submit now (with the reason), run now at the
    standard rate (a batch would miss the deadline), or keep waiting."""
    plan = QueuePlan()
    categories: dict[str, list[Pending]] = defaultdict(list)
    for task in queued:
        if too_late_for_batch(task.deadline_at, now, settings):
            plan.run_now.append(task)
        else:
            categories[task.category].append(task)
    for members in categories.values():
        reason = "forced" if force else _category_due(members, settings, now)
        if reason is None:
            plan.waiting.extend(members)
        else:
            plan.submit.extend((t, reason) for t in members)
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    plan.submit.sort(key=lambda tr: (rank[tr[0].priority], tr[0].created_at, tr[0].id))
    return plan


def estimate_ready_at(task: Pending, peers: list[Pending], settings: BatchSettings, now: float) -> float:
    """When the answer is expected: when the rules will send the task's
    category, plus the expected batch time. ``peers`` are the other queued
    tasks of its category."""
    members = [*peers, task]
    if _category_due(members, settings, now) is not None:
        submit_at = now
    elif task.priority == "low" and settings.low_priority_waits_for_off_peak:
        submit_at = next_off_peak_start(now, settings) or latest_batch_submit_at(task.deadline_at, settings)
    else:
        submit_at = min(t.created_at for t in members) + settings.batch_timeout_seconds
    submit_at = max(now, min(submit_at, latest_batch_submit_at(task.deadline_at, settings)))
    return submit_at + settings.expected_batch_seconds


def chunk_for_api(tasks: list[Pending], *, max_requests: int = API_MAX_REQUESTS,
                  max_bytes: int = BATCH_BYTES_LIMIT) -> list[list[Pending]]:
    """Split one submission at the API's limits (requests and bytes per batch)."""
    chunks: list[list[Pending]] = []
    current: list[Pending] = []
    size = 0
    for task in tasks:
        if current and (len(current) >= max_requests or size + task.size_bytes > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(task)
        size += task.size_bytes
    if current:
        chunks.append(current)
    return chunks


def prefix_key(system: Any, tools: list | None) -> str:
    """A short hash of what every request of a category starts with (tools, system)."""
    blob = json.dumps({"tools": tools or [], "system": system or ""}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def category_of(model: str, priority: str, key: str) -> str:
    return f"{model}|{priority}|{key}"


# -- the pure core: a cache breakpoint on the prefix tasks share ------------------------


def _has_cache_control(params: dict) -> int:
    """Breakpoints the caller already placed (we never move or re-time them)."""
    count = 1 if params.get("cache_control") else 0
    for tool in params.get("tools") or []:
        count += 1 if isinstance(tool, dict) and tool.get("cache_control") else 0
    if isinstance(params.get("system"), list):
        count += sum(1 for b in params["system"] if isinstance(b, dict) and b.get("cache_control"))
    for message in params.get("messages", []):
        if isinstance(message.get("content"), list):
            count += sum(1 for b in message["content"] if isinstance(b, dict) and b.get("cache_control"))
    return count


def _prefix_units(params: dict) -> list[tuple[tuple, str, str]]:
    """The request as a sequence of cacheable units in prefix order (tools,
    system, then message blocks): (address, fingerprint, text for counting)."""
    units: list[tuple[tuple, str, str]] = []

    def fp(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    for i, tool in enumerate(params.get("tools") or []):
        units.append((("tools", i), fp(["tool", tool]), json.dumps(tool)))
    system = params.get("system")
    if isinstance(system, str) and system:
        units.append((("system", 0), fp(["system", [{"type": "text", "text": system}]]), system))
    elif isinstance(system, list):
        for i, block in enumerate(system):
            units.append((("system", i), fp(["system", block]), tokens.block_text(block)))
    for m, message in enumerate(params.get("messages", [])):
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for b, block in enumerate(blocks):
            units.append((("messages", m, b), fp([message["role"], m, b, block]), tokens.block_text(block)))
    return units


def _place_breakpoint(params: dict, address: tuple, ttl: str) -> dict:
    """A copy of ``params`` with a cache breakpoint on the unit at ``address``."""
    marker = {"type": "ephemeral", "ttl": ttl}
    out = dict(params)
    if address[0] == "tools":
        out["tools"] = [dict(t) for t in params["tools"]]
        out["tools"][address[1]]["cache_control"] = marker
    elif address[0] == "system":
        system = params["system"]
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else [dict(b) for b in system]
        blocks[address[1]]["cache_control"] = marker
        out["system"] = blocks
    else:
        _, m, b = address
        messages = list(params["messages"])
        content = messages[m]["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(x) for x in content]
        blocks[b]["cache_control"] = marker
        messages[m] = {**messages[m], "content": blocks}
        out["messages"] = messages
    return out


def share_prefixes(requests: list[dict], *, ttl: str,
                   min_tokens: Callable[[str], float]) -> tuple[list[dict], dict[str, dict]]:
    """Order a batch's requests so that those sharing a prefix are adjacent, and
    put a ``ttl`` cache breakpoint at the end of the longest prefix each one
    shares with another request on the same model, when that prefix is long
    enough to be cached. Returns (requests in the new order, decision per custom_id).

    The longest prefix a request shares with any other is found between
    neighbours once the requests are sorted by their unit fingerprints.
    """
    units = {r["custom_id"]: _prefix_units(r["params"]) for r in requests}
    ordered = sorted(requests, key=lambda r: (r["params"]["model"], [u[1] for u in units[r["custom_id"]]]))

    def common(a: dict, b: dict) -> int:
        if a["params"]["model"] != b["params"]["model"]:
            return 0
        ua, ub = units[a["custom_id"]], units[b["custom_id"]]
        n = 0
        while n < min(len(ua), len(ub)) and ua[n][1] == ub[n][1]:
            n += 1
        return n

    shared = [0] * len(ordered)
    for i in range(len(ordered) - 1):
        n = common(ordered[i], ordered[i + 1])
        shared[i], shared[i + 1] = max(shared[i], n), max(shared[i + 1], n)

    out: list[dict] = []
    decisions: dict[str, dict] = {}
    for request, n in zip(ordered, shared):
        custom_id, params = request["custom_id"], request["params"]
        decision: dict[str, Any] = {"mode": "batch_shared_prefix", "ttl": None, "shared_units": n, "breakpoint": None}
        if n:
            prefix_text = "\n".join(u[2] for u in units[custom_id][:n])
            prefix_tokens = tokens.estimate_text_tokens(prefix_text, params["model"])
            decision["prefix_tokens_estimate"] = prefix_tokens
            existing = _has_cache_control(params)
            if prefix_tokens < min_tokens(params["model"]):
                decision["reason"] = "shared prefix shorter than the model's minimum cacheable size"
            elif existing:
                # never re-time the caller's markers, and a 1h breakpoint may not follow a 5m one
                decision["reason"] = "the request already carries its own cache breakpoints"
            else:
                address = units[custom_id][n - 1][0]
                params = _place_breakpoint(params, address, ttl)
                decision.update(ttl=ttl, breakpoint=list(address), reason="prefix shared with other tasks of the batch")
        else:
            decision["reason"] = "no prefix shared with another task of the batch"
        out.append({"custom_id": custom_id, "params": params})
        decisions[custom_id] = decision
    return out, decisions


# -- the pure core: what a result means ----------------------------------------------------


def settle_outcome(result_type: str, error_type: str | None, message: str | None) -> tuple[bool, str]:
    """(worth retrying, error text) for a result that carries no answer."""
    if result_type == "errored":
        text = f"{error_type or 'error'}: {message or 'the API gave no message'}"
        return (error_type not in FINAL_ERROR_TYPES), text
    if result_type == "expired":
        return True, "expired: the batch reached the API's 24-hour limit before this request was processed"
    if result_type == "canceled":
        return True, "canceled: the batch was canceled before this request was processed"
    if result_type == "missing":
        return True, "missing: the batch ended without a result for this task"
    return True, f"unknown result type {result_type!r}: the task is sent again"


# -- process identity (for orphaned claims) ------------------------------------------------


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22: start time in clock ticks since boot
    except (OSError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_owner(instance: str = "-") -> str:
    """``host:pid:start:instance``: who holds a claim. The process start time
    tells a live owner from a reused pid; the instance tells two queues of one
    process apart."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '-'}:{instance}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that wrote ``owner`` still runs (same host only;
    another host's claims are judged by their lease)."""
    if not owner:
        return False
    try:
        host, pid_text, start, _instance = owner.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) == "Z":
        return False
    if start != "-" and _start_ticks(pid) not in (None, start):
        return False  # the pid was reused by another process
    return True


def _crash_hook(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _die() -> None:
    log.warning("test hook: killing this process with SIGKILL")
    os.kill(os.getpid(), signal.SIGKILL)


def _result_count(request_counts) -> int:
    """How many result lines an ended batch has: one per request, whatever its outcome."""
    return sum(getattr(request_counts, k, 0) or 0
               for k in ("processing", "succeeded", "errored", "canceled", "expired"))


# -- the queue -----------------------------------------------------------------------------


@dataclass
class _Pass:
    submitted_batches: int = 0
    submitted_tasks: int = 0
    ran_immediately: int = 0
    collected: int = 0
    details: list[str] = field(default_factory=list)


def _new_task_id() -> str:
    return "task_" + uuid.uuid4().hex


def _request_dict(req: CompletionRequest) -> dict:
    return {k: v for k, v in req.__dict__.items() if v is not None and k != "stream"}


class DeferredQueue:
    """Deferred tasks, their batches and their results, for one engine (tenant)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self._owner = process_owner(uuid.uuid4().hex[:12])
        self._budget: BudgetGuard = engine.budget
        self._pass_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._committed_results = 0

    @property
    def settings(self) -> BatchSettings:
        return self.engine.config.batch

    # -- defer ---------------------------------------------------------------------

    async def defer(self, req: CompletionRequest, *, priority: str, max_wait_seconds: int, critical: bool) -> dict:
        engine, cfg = self.engine, self.engine.config
        if priority not in PRIORITIES:
            raise InputError(f"`priority` must be one of {', '.join(PRIORITIES)} (got {priority!r})")
        if not isinstance(max_wait_seconds, int) or isinstance(max_wait_seconds, bool) or not 1 <= max_wait_seconds <= MAX_WAIT_SECONDS:
            raise InputError(f"`max_wait_seconds` must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS} "
                             f"(got {max_wait_seconds!r})")
        check_scalars(req, engine.prices)
        messages = build_messages(req, cfg)
        now = clock.now()
        deadline = now + max_wait_seconds
        task_id = _new_task_id()

        complexity = classify_request(req, messages, cfg.routing)
        cache_params = response_cache_params(req, messages, complexity.level)
        hit = None
        why_now = None
        if critical:
            why_now = "critical: ran immediately at the standard rate"
        elif too_late_for_batch(deadline, now, self.settings):
            why_now = (f"max_wait_seconds={max_wait_seconds} is shorter than a batch is expected to take "
                       f"(batch.expected_batch_seconds={self.settings.expected_batch_seconds}): ran immediately "
                       "at the standard rate")
        elif engine.cache is not None and req.use_cache:
            hit = engine.cached_answer(cache_params)
            if hit is not None:
                why_now = "answered from the response cache at no cost"
        if why_now is not None:
            task_store.insert_task(self.store, self._task_row(
                task_id, req, priority=priority, status="running", model=req.model or cfg.default_model,
                category="immediate", key=None, params={"messages": messages}, decisions=None,
                now=now, deadline=deadline, owner=self._owner))
            if hit is not None:
                result = engine.record_cache_hit(hit, req, complexity, time.perf_counter())
                self._finish_immediate(task_id, result)
            else:
                result = await self._run_now(task_id, req)
            return {"task_id": task_id, "status": "succeeded", "estimated_ready_at": iso_utc(clock.now()),
                    "priority": priority, "result": result.__dict__, "warnings": [why_now, *result.warnings]}

        params, decisions, warnings = await self._prepare(req, messages, complexity)
        key = prefix_key(params.get("system"), params.get("tools"))
        category = category_of(params["model"], priority, key)
        peers = [self._pending(r) for r in task_store.tasks_by_status(self.store, engine.tenant, ["queued"])
                 if r["category"] == category]
        pending = Pending(task_id, priority, category, now, deadline)
        ready_at = estimate_ready_at(pending, peers, self.settings, now)
        task_store.insert_task(self.store, self._task_row(
            task_id, req, priority=priority, status="queued", model=params["model"], category=category, key=key,
            params=params, decisions=decisions, now=now, deadline=deadline, ready_at=ready_at))
        if ready_at > deadline:
            warnings.append("the answer may arrive after max_wait_seconds: a batch is expected to take "
                            f"{self.settings.expected_batch_seconds} s")
        if _category_due([*peers, pending], self.settings, now) is not None:
            self._wake.set()  # a full (or urgent) category: the worker sends it without waiting its interval
        return {"task_id": task_id, "status": "queued", "estimated_ready_at": iso_utc(ready_at),
                "priority": priority, "result": None, "warnings": warnings}

    async def _prepare(self, req: CompletionRequest, messages: list[dict],
                       complexity) -> tuple[dict, dict, list[str]]:
        """The Messages API params of a deferred task: the engine's plan of the
        call (routed, and pruned above the threshold), without the prompt-cache
        shaping, which the batch does for the prefix its tasks share."""
        engine = self.engine
        plan = await engine.planner.plan(req, messages, complexity, tenant=engine.tenant, deferred=True,
                                         summarizer=engine._summarizer(engine.default_caller))
        decision = plan.decision
        estimate = plan.estimated_cost_usd * float(engine.prices.batch_multiplier)
        decisions = {"routing": {k: getattr(decision, k) for k in ("model", "level", "score", "reason", "pinned",
                                                                     "sticky", "downgraded")},
                     "pruning": plan.prune_info, "estimated_cost_usd": estimate, "cache_tier": complexity.level}
        return plan.params, decisions, plan.warnings

    def _task_row(self, task_id: str, req: CompletionRequest, *, priority: str, status: str, model: str,
                  category: str, key: str | None, params: dict, decisions: dict | None, now: float, deadline: float,
                  ready_at: float | None = None, owner: str | None = None) -> dict:
        params_json = json.dumps(params, sort_keys=True, ensure_ascii=False)
        return {
            "id": task_id, "tenant": self.engine.tenant, "status": status, "priority": priority,
            "category": category, "model": model, "prefix_key": key, "request": _request_dict(req),
            "params": params_json, "request_bytes": len(params_json.encode()), "decisions": decisions,
            "created_at": now, "deadline_at": deadline, "estimated_ready_at": ready_at, "claim_owner": owner,
            "lease_until": now + self._run_lease_seconds() if owner else None,  # running at once: whose, until when
        }

    @staticmethod
    def _pending(row: dict) -> Pending:
        return Pending(row["id"], row["priority"], row["category"], row["created_at"], row["deadline_at"],
                       row["request_bytes"] or 0, row.get("estimated_cost_usd") or 0.0)

    async def _run_now(self, task_id: str, req: CompletionRequest) -> CompletionResult:
        """Run a task through the engine at once (a 'running' row exists already)."""
        try:
            result = await self.engine.complete(req)
        except Exception as e:
            task_store.finish_running(self.store, task_id, status="failed", now=clock.now(), error=str(e))
            raise
        self._finish_immediate(task_id, result)
        return result

    def _finish_immediate(self, task_id: str, result: CompletionResult) -> None:
        task_store.finish_running(
            self.store, task_id, status="succeeded", now=clock.now(), text=result.text, content=result.content,
            model=result.model, stop_reason=result.stop_reason, cost_usd=result.cost_usd,
            response_id=result.response_id, result_type="cache" if result.source == "cache" else "immediate")

    # -- status, results, cancel ------------------------------------------------------

    def status(self, task_id: str) -> dict:
        row = task_store.get_task(self.store, self.engine.tenant, task_id) if isinstance(task_id, str) else None
        if row is None:
            raise KeyError(f"no deferred task {task_id!r}; task ids are what defer_task returned (task_…), "
                           "and finished tasks can be listed with their results")
        return self._public(row)

    @staticmethod
    def _public(row: dict) -> dict:
        status = {"claimed": "submitted", "running": "submitted"}.get(row["status"], row["status"])
        return {
            "task_id": row["id"], "status": status, "priority": row["priority"],
            "created_at": iso_utc(row["created_at"]), "finished_at": iso_utc(row.get("finished_at")),
            "estimated_ready_at": iso_utc(row.get("estimated_ready_at")) if status in ("queued", "submitted") else None,
            "deadline_at": iso_utc(row.get("deadline_at")),
            "batch_id": row.get("batch_id"), "attempts": row.get("attempts") or 0,
            "text": row.get("text") if status == "succeeded" else None,
            "model": row.get("result_model") or row.get("model"),
            "cost_usd": row.get("cost_usd"), "error": row.get("error"),
        }

    def results(self, *, limit: int = 50, status: str | None = None) -> list[dict]:
        if status is not None and status not in task_store.FINISHED_STATUSES:
            raise ValueError(f"status must be one of {', '.join(task_store.FINISHED_STATUSES)} or null (got {status!r})")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000 (got {limit!r})")
        return [self._public(r) for r in task_store.finished(self.store, self.engine.tenant, limit=limit, status=status)]

    async def cancel(self, task_id: str) -> dict:
        """Queued: canceled at once. Submitted: canceled, but its batch runs on
        (a batch cannot be partially canceled): a late answer is recorded in the
        ledger, since it is billed, and not returned. When every task of a batch
        is canceled, the batch itself is canceled at the API."""
        outcome = task_store.cancel_task(self.store, self.engine.tenant, task_id, now=clock.now())
        if outcome is None:
            raise KeyError(f"no deferred task {task_id!r}; task ids are what defer_task returned (task_…)")
        before, batch_id = outcome
        out = self.status(task_id)
        if before == "submitted":
            out["note"] = (f"canceled; its batch {batch_id} was already submitted, so an answer that arrives anyway "
                           "is billed and recorded in the ledger (not returned)")
            try:
                await self._cancel_abandoned_batches()
            except anthropic.APIError as e:  # the worker tries again on its next pass
                log.info("could not cancel abandoned batch %s yet: %s", batch_id, e)
        elif before == "claimed":
            out["note"] = "being submitted right now; it is canceled as soon as its batch is recorded"
        elif before == "running":
            out["note"] = "running now at the standard rate; it cannot be stopped"
        elif before != "queued":
            out["note"] = f"the task had already {out['status']}; nothing to cancel"
        return out

    async def _cancel_abandoned_batches(self) -> int:
        sent = 0
        for batch_id in task_store.batches_to_cancel(self.store, self.engine.tenant):
            try:
                await self.engine.client.messages.batches.cancel(batch_id)
            except anthropic.NotFoundError:
                pass
            task_store.mark_cancel_sent(self.store, batch_id)
            sent += 1
        return sent

    # -- the worker ----------------------------------------------------------------------

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Submit, poll and collect every ``batch.poll_interval_seconds`` (sooner
        when defer fills a category) until ``stop`` is set. Never dies of an error."""
        while not stop.is_set():
            self._wake.clear()  # a defer during the pass below wakes the next one at once
            try:
                await self.process()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("deferred-work pass failed; trying again in %s s", self.settings.poll_interval_seconds)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.settings.poll_interval_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    # -- one pass --------------------------------------------------------------------------

    async def process(self, *, force: bool = False, progress: Progress | None = None) -> dict:
        """One pass: reconcile what a crash left behind, run what a batch can no
        longer deliver in time, submit due work, poll open batches and collect
        their results."""
        async with self._pass_lock:
            report = _Pass()
            tenant = self.engine.tenant
            if task_store.has_open_work(self.store, tenant):
                await self._reconcile(report)
                await self._submit_due(report, force=force, progress=progress)
                await self._poll(report, progress=progress)
                try:
                    await self._cancel_abandoned_batches()
                except anthropic.APIError as e:
                    report.details.append(f"could not cancel an abandoned batch yet: {e}")
            counts = task_store.counts(self.store, tenant)
            return {
                "submitted_batches": report.submitted_batches, "submitted_tasks": report.submitted_tasks,
                "ran_immediately": report.ran_immediately, "collected": report.collected,
                "pending_batches": counts.get("open_batches", 0), "queued": counts.get("queued", 0),
                "details": report.details,
            }

    def _claim_lease_seconds(self) -> float:
        """How long a claim may wait for its batch: one batches.create call, and a margin."""
        return self.engine.config.api.timeout_seconds + 60

    def _run_lease_seconds(self) -> float:
        """How long an immediate run may take: every attempt (retries, fallback
        models) at its timeout and longest retry-after, and a margin."""
        api = self.engine.config.api
        longest_chain = max((len(c) for c in self.engine.config.routing.overload_fallback_chain.values()), default=0)
        return (api.max_retries + 1) * (1 + longest_chain) * (api.timeout_seconds + api.max_retry_after_seconds) + 60

    def _owner_gone(self, owner: str | None, lease_until: float | None, now: float) -> bool:
        """Whether work another worker took can be taken over: its lease has run
        out or, when the database lives on this machine only, its process is gone
        (PostgreSQL: another machine's processes cannot be looked up, the lease decides)."""
        if owner is None or (lease_until is not None and now > lease_until):
            return True
        return not self.store.shared_across_hosts and not owner_alive(owner)

    async def _reconcile(self, report: _Pass) -> None:
        tenant, now = self.engine.tenant, clock.now()
        for claim in task_store.claims(self.store, tenant):
            # claims made before leases existed: judged by their age, as then
            lease_until = claim["lease_until"] or claim["claimed_at"] + self._claim_lease_seconds()
            orphaned = claim["owner"] == self._owner or self._owner_gone(claim["owner"], lease_until, now)
            if not orphaned:
                continue  # another live process is creating this batch right now
            try:
                batch_id = await self._find_created_batch(claim)
            except anthropic.APIError as e:  # undecidable now; the claim waits for the next pass
                report.details.append(f"could not list the API's batches to reconcile a claim: {e}")
                continue
            if batch_id:
                task_store.record_submission(self.store, tenant, token=claim["token"], batch_id=batch_id,
                                             priority=None, now=now, adopted=True)
                report.details.append(f"adopted batch {batch_id} ({len(claim['task_ids'])} tasks) created before a restart")
            else:
                task_store.release_claim(self.store, claim["token"], None, now=now)
                report.details.append(f"{len(claim['task_ids'])} task(s) whose batch was never created went back to the queue")
        for row in task_store.running_tasks(self.store, tenant):
            lease_until = row["lease_until"] or row["created_at"] + self._run_lease_seconds()
            if row["claim_owner"] != self._owner and self._owner_gone(row["claim_owner"], lease_until, now):
                task_store.finish_running(
                    self.store, row["id"], status="failed", now=now,
                    error="the server stopped while this task ran at the standard rate; it was not run again, "
                          "so it is never paid twice: defer it again if the answer is still needed")

    async def _find_created_batch(self, claim: dict) -> str | None:
        """The API batch a crashed process created for ``claim`` but did not
        record: created after the claim, same request count, unknown here."""
        since = claim["claimed_at"] - LIST_SKEW_SECONDS
        candidates = []
        async for batch in self.engine.client.messages.batches.list(limit=100):
            created = batch.created_at.timestamp()
            if created < since:
                break  # the list is newest first
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if total == len(claim["task_ids"]):
                candidates.append((created, batch.id))
        known = task_store.known_batch_ids(self.store, [c[1] for c in candidates])
        unknown = sorted(c for c in candidates if c[1] not in known)
        return unknown[0][1] if unknown else None

    # -- submitting ------------------------------------------------------------------------

    async def _submit_due(self, report: _Pass, *, force: bool, progress: Progress | None) -> None:
        tenant, now = self.engine.tenant, clock.now()
        queued = [self._pending(r) for r in task_store.tasks_by_status(self.store, tenant, ["queued"])]
        if not queued:
            return
        plan = plan_queue(queued, self.settings, now, force=force)
        overdue = self._within_budget(plan.run_now, report, rate=1 / float(self.engine.prices.batch_multiplier))
        if overdue:
            await self._run_overdue(overdue, report)
        due = self._within_budget([t for t, _ in plan.submit], report)
        if not due:
            return
        reasons = {t.id: why for t, why in plan.submit}
        by_priority: dict[str, list[Pending]] = defaultdict(list)
        for task in due:
            by_priority[task.priority].append(task)
        chunks = [(p, chunk) for p in PRIORITIES for chunk in chunk_for_api(by_priority.get(p, []))]
        total, done = len(due), 0
        for priority, chunk in chunks:
            if progress:
                await progress(done, total, f"submitting {len(chunk)} task(s) ({priority} priority), {done}/{total} sent")
            sent = await self._submit_chunk(chunk, priority, report)
            if sent:
                why = sorted({reasons[t.id] for t in chunk})
                report.details.append(f"submitted {sent} {priority}-priority task(s) as one batch ({', '.join(why)})")
            done += len(chunk)
        if progress:
            await progress(total, total, f"submitted {report.submitted_tasks}/{total} task(s)")

    def _within_budget(self, due: list[Pending], report: _Pass, *, rate: float = 1.0) -> list[Pending]:
        """With policy block or defer, keep back (in priority order) the due
        tasks whose estimated cost (at the batch rate, times ``rate``: 2 for
        an immediate run), on top of what is spent and what is sent but not
        billed yet, would exceed a limit."""
        cfg = self.engine.config
        if not due or cfg.budget.policy not in ("block", "defer") or not self._budget.enabled:
            return due
        tenant = self.engine.tenant
        admitted = self._budget.admissible(tenant, [t.estimated_cost_usd * rate for t in due],
                                           committed_usd=task_store.committed_cost(self.store, tenant))
        keep, held = due[:admitted], due[admitted:]
        if held:
            message = (f"waiting for budget: the {cfg.budget.policy} policy holds this task until the daily/monthly "
                       "budget has room (raise budget.daily_usd or budget.monthly_usd in performance-config.json)")
            task_store.note_waiting(self.store, [t.id for t in held], message)
            report.details.append(f"{len(held)} due task(s) held back by the budget (policy {cfg.budget.policy})")
        return keep

    def _min_cacheable_tokens(self, model: str) -> float:
        """The prompt-cache lever's minimum for ``model``, less its estimate margin;
        infinite when prompt caching is switched off."""
        pc = self.engine.config.prompt_cache
        if not pc.enabled:
            return math.inf
        return pc.minimum_for(model) * (1 - pc.min_length_margin)

    async def _submit_chunk(self, chunk: list[Pending], priority: str, report: _Pass) -> int:
        tenant = self.engine.tenant
        token = "claim_" + uuid.uuid4().hex
        now = clock.now()
        taken = task_store.claim(self.store, tenant, [t.id for t in chunk], token=token, owner=self._owner,
                                 now=now, lease_until=now + self._claim_lease_seconds())
        if not taken:
            return 0
        payloads = task_store.task_payloads(self.store, taken)
        requests, cache_decisions = share_prefixes(
            [{"custom_id": task_id, "params": payloads[task_id]["params"]} for task_id in taken],
            ttl=self.settings.prefix_cache_ttl, min_tokens=self._min_cacheable_tokens)
        try:
            batch = await self.engine.client.messages.batches.create(requests=requests)
        except (anthropic.APIConnectionError, anthropic.APITimeoutError) as e:
            # No answer: the batch may exist. The next pass looks for it in the API's list.
            task_store.orphan_claim(self.store, token)
            report.details.append(f"batch creation got no answer ({type(e).__name__}); checking the API's list next pass")
            return 0
        except Exception as e:  # noqa: BLE001 - any refusal: the batch was not created
            task_store.release_claim(self.store, token, f"batch submission failed, will retry: {e}", now=clock.now())
            report.details.append(f"batch submission failed ({type(e).__name__}: {e}); {len(taken)} task(s) stay queued")
            if not isinstance(e, anthropic.APIError):
                raise
            return 0
        if _crash_hook("MCP_TARS_TEST_CRASH_AFTER_CREATE"):
            _die()
        moved = task_store.record_submission(self.store, tenant, token=token, batch_id=batch.id, priority=priority,
                                             now=clock.now(), prompt_cache=cache_decisions)
        report.submitted_batches += 1
        report.submitted_tasks += moved
        return moved

    async def _run_overdue(self, overdue: list[Pending], report: _Pass) -> None:
        """Queued tasks a batch can no longer deliver by their deadline: at once, standard rate."""
        gate = asyncio.Semaphore(self.settings.immediate_concurrency)
        payloads = task_store.task_payloads(self.store, [t.id for t in overdue])

        async def run(task: Pending) -> None:
            async with gate:
                if not task_store.start_running(self.store, task.id, self._owner,
                                                lease_until=clock.now() + self._run_lease_seconds()):
                    return
                req = CompletionRequest(**payloads[task.id]["request"])
                try:
                    await self._run_now(task.id, req)
                    report.ran_immediately += 1
                except Exception as e:  # noqa: BLE001 - recorded on the task
                    report.details.append(f"task {task.id} failed when run immediately: {e}")

        await asyncio.gather(*(run(t) for t in overdue))
        report.details.append(f"{len(overdue)} task(s) ran immediately: their deadline is nearer than a batch takes")

    # -- polling and results --------------------------------------------------------------------

    async def _poll(self, report: _Pass, *, progress: Progress | None) -> None:
        open_batches = task_store.open_batches(self.store, self.engine.tenant)
        for i, batch in enumerate(open_batches):
            if progress:
                await progress(i, len(open_batches), f"polling batch {i + 1}/{len(open_batches)}")
            try:
                remote = await self.engine.client.messages.batches.retrieve(batch["id"])
            except anthropic.NotFoundError:
                await self._settle_lost_batch(batch["id"], report)
                continue
            except anthropic.APIError as e:
                report.details.append(f"could not poll batch {batch['id']}: {e}")
                continue
            task_store.record_poll(self.store, batch["id"], status=remote.processing_status,
                                   request_counts=remote.request_counts.model_dump(), now=clock.now())
            if remote.processing_status == "ended":
                try:
                    await self._ingest(batch["id"], report, expected_results=_result_count(remote.request_counts),
                                       progress=progress)
                except (anthropic.APIError, httpx2.TransportError) as e:  # what was recorded stays; the next pass reads the rest
                    log.warning("results of batch %s broke off: %s", batch["id"], e)
                    report.details.append(f"could not read the results of batch {batch['id']} yet "
                                          f"({type(e).__name__}: {e}); the next pass reads the rest")
        if progress and open_batches:
            await progress(len(open_batches), len(open_batches), f"polled {len(open_batches)} batch(es)")

    async def _settle_lost_batch(self, batch_id: str, report: _Pass) -> None:
        now = clock.now()
        for task_id in task_store.submitted_tasks_of(self.store, batch_id):
            task_store.settle_unanswered(
                self.store, self.engine.tenant, task_id=task_id, batch_id=batch_id, result_type="missing",
                error=f"the API no longer knows batch {batch_id}", retry=True,
                max_attempts=self.settings.max_attempts, now=now)
        task_store.finish_batch(self.store, batch_id, now=now)
        report.details.append(f"batch {batch_id} is unknown to the API; its unanswered tasks were re-queued")

    async def _ingest(self, batch_id: str, report: _Pass, *, expected_results: int | None,
                      progress: Progress | None) -> None:
        """Record the results of an ended batch as they stream in, RESULTS_CHUNK_SIZE at a time.

        Each result is committed on its own as soon as it is read, and recording one twice is a no-op,
        so a crash mid-stream loses nothing and the next reading skips what is already there. Members
        with no result line are settled only once the whole stream was read, and only then is the
        batch finished: a stream that breaks off leaves the batch to the next pass."""
        tenant = self.engine.tenant
        unanswered = task_store.batch_task_ids(self.store, batch_id)  # members not seen in the stream yet
        total = max(expected_results or 0, len(unanswered))  # the stream's length is not known up front
        crash_after = _crash_hook("MCP_TARS_TEST_CRASH_AFTER_INGEST")
        outcomes: dict[str, int] = defaultdict(int)
        read = 0

        async def ingest_chunk(chunk: list) -> None:
            nonlocal read
            payloads = task_store.task_payloads(self.store, [e.custom_id for e in chunk], tenant=tenant)
            for entry in chunk:
                if progress and read % 10 == 0:
                    shown = max(total, read)  # lines that are not ours may outnumber the batch's requests
                    await progress(read, shown, f"ingesting results of {batch_id}: {read}/{shown}")
                read += 1
                task_id, result = entry.custom_id, entry.result
                unanswered.discard(task_id)
                if task_id not in payloads:
                    outcomes["not ours"] += 1
                    continue
                now = clock.now()
                if result.type == "succeeded":
                    inserted, status = self._ingest_success(batch_id, task_id, result.message, payloads[task_id], now)
                    if inserted:
                        report.collected += 1
                        self._committed_results += 1
                    outcomes[status or "unknown"] += 1
                else:
                    error = getattr(result, "error", None)
                    inner = getattr(error, "error", None)
                    retry, text = settle_outcome(result.type, getattr(inner, "type", None), getattr(inner, "message", None))
                    status = task_store.settle_unanswered(
                        self.store, tenant, task_id=task_id, batch_id=batch_id, result_type=result.type, error=text,
                        retry=retry, max_attempts=self.settings.max_attempts, now=now)
                    outcomes[f"{result.type} -> {status or 'unchanged'}"] += 1
                if crash_after and self._committed_results >= crash_after:
                    _die()

        # The SDK decodes the JSON Lines body lazily as it arrives: iterate it, never collect it.
        stream = await self.engine.client.messages.batches.results(batch_id)
        try:
            chunk: list = []
            async for entry in stream:
                chunk.append(entry)
                if len(chunk) >= RESULTS_CHUNK_SIZE:
                    await ingest_chunk(chunk)
                    chunk = []
            if chunk:
                await ingest_chunk(chunk)
        finally:
            await stream.close()  # an early exit must not leave the connection half read

        now = clock.now()
        for task_id in sorted(unanswered):
            retry, text = settle_outcome("missing", None, None)
            task_store.settle_unanswered(self.store, tenant, task_id=task_id, batch_id=batch_id, result_type="missing",
                                         error=text, retry=retry, max_attempts=self.settings.max_attempts, now=now)
            outcomes["missing -> re-queued"] += 1
        task_store.finish_batch(self.store, batch_id, now=now)
        if progress:
            await progress(read, read, f"ingested {read} result(s) of {batch_id}")
        report.details.append(f"batch {batch_id}: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))

    def _ingest_success(self, batch_id: str, task_id: str, message, payload: dict, now: float) -> tuple[bool, str | None]:
        engine, cfg = self.engine, self.engine.config
        decisions = payload.get("decisions") or {}
        prune_info = decisions.get("pruning")
        usage, attribution, content = engine.accounting.account(message, model=message.model, prune_info=prune_info,
                                                     batch=True, when=_utc(now))
        routing_decision = RoutingDecision(**decisions["routing"]) if decisions.get("routing") else None
        request = payload.get("request") or {}
        row = engine.accounting.row(
            tenant=engine.tenant, response_id=f"batch:{batch_id}:{task_id}", request_id=None, ts=now, session_id=request.get("session_id"),
            source="batch", model=message.model, requested_model=request.get("model"), usage=usage,
            attribution=attribution, routing_decision=routing_decision,
            prompt_cache=decisions.get("prompt_cache"),
            prune_info=prune_info, stop_reason=message.stop_reason, latency_ms=None,
            attempts=payload.get("attempts") or 1, task_id=task_id, batch=True,
        )
        inserted, status = task_store.ingest_success(
            self.store, engine.tenant, task_id=task_id, batch_id=batch_id, ledger_row=row,
            text=response_text(content), content=content, model=message.model, stop_reason=message.stop_reason,
            cost_usd=attribution.cost_usd, now=now)
        if inserted and status == "succeeded" and engine.cache is not None and request.get("use_cache", True) \
                and attribution.cost_usd is not None and decisions.get("cache_tier"):
            # The answer serves later identical requests at no cost, as the engine's own answers do.
            try:
                req = CompletionRequest(**request)
                engine.cache_answer(response_cache_params(req, build_messages(req, cfg), decisions["cache_tier"]),
                                    message, usage, content, attribution)
            except Exception:  # noqa: BLE001 - the answer is recorded; caching it is a bonus
                log.exception("could not store the answer of task %s in the response cache", task_id)
        return inserted, status
