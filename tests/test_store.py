"""The store on both backends (every test with a ``db_url`` runs on a SQLite
file and on a PostgreSQL schema): migrations, the idempotent ledger in exact
money, roll-ups, sessions, the recovery spool, the deferred queue's
transitions (claimed once, whoever tries), the response cache's SQL, alerts,
copying a history, and what happens with a bad MCP_TARS_DB."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
import time
from decimal import Decimal

import pytest

from mcp_tars.store import StoreError, alerts, ledger, open_store, schema
from mcp_tars.store import cache as cache_sql
from mcp_tars.store import reports as report_store
from mcp_tars.store import tasks as task_store
from mcp_tars.store.copy import copy_history
from mcp_tars.store.migrations import MIGRATIONS_TABLE, migrations

TS = 1_790_000_000.0
DAY = ledger.utc_day(TS)

# Every released migration and the checksum of its file. A released migration
# never changes (a database that ran it must match every other one): change the
# schema with a new file, and add its line here when it is released.
FROZEN = {
    "sqlite": {
        "m001_ledger": "9495ed2c377173349b1ea046ad046ff7fd19ced67d720d0ec5a89a74a9c300fc",
        "m002_sessions": "4d4d1b31bc4146c6850bd4f43ffcc4575bfaa66e655e6dd5612b5d71ca44dc40",
        "m003_daily_spend": "34089f74a1dd80615abd2dd56060d7901d54fc27845b33efdaca43916048479d",
        "m010_response_cache": "cac2ee7a2cf72a10c2fe4cf4a7fe07f180d4336fab129174943fa061d865aec8",
        "m020_deferred_tasks": "9adaaf0a5921fd5bfb732a453cf52bf9dcc0e4103c8d7c18e55b115f8e0935b5",
        "m030_alerts": "128f4d6a8cea11be032ea646404c4bd77fec5822560057a67cca97a9cc68571b",
        "m031_report_rollups": "399eac5ac3a89dd93923ca3f985d9dacc66ffdd468430324ad4ace186d727776",
        "m032_report_rollups_v2": "921a903f65bfc74d880c7fc64685d456d0e25b7eb7348a514e204b3653363d11",
        "m033_rollup_lever_mask": "fd15e7443f4b2cd974e887126c0d2077c1c1fcab3fe4b2b1d94464e893f48a97",
        "m034_exact_money": "0ff520926ecd6b711ffb30bde1d342c3c6ec4cc3aa2a375b8ac676ddafb2fe50",
        "m035_task_leases": "fe595e617dd25af1f1fbe8cbc6ce8902148d0f6be7f2c29f6ebd202d59e3245c",
    },
    "postgres": {
        "m001_schema": "4904b83d6fc1323d72593c208be639ac5052165cd8082bc0cd888a4adbcd7299",
    },
}


def _row(i: int, **over) -> dict:
    row = {
        "response_id": f"msg_{i}", "ts": TS + i, "tenant": "key:t", "source": "api",
        "model": "claude-haiku-5-5", "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001,
        "baseline_cost_usd": 0.01, "saved_usd": 0.009, "saved_routing_usd": 0.009, "pricing_source": "table",
    }
    row.update(over)
    return row


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.close()


def _backend(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql:") else "sqlite"


# -- migrations ---------------------------------------------------------------------------------------


def test_a_new_database_is_fully_migrated_once(db_url):
    s = open_store(db_url)
    assert s.applied_migrations() == [m.name for m in migrations(_backend(db_url))]
    s.close()
    again = open_store(db_url, migrate=False)
    assert again.migrate() == []  # re-opening applies nothing
    again.close()


def test_a_new_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    s = open_store(tmp_path / "l.db")
    assert s.journal_mode == "wal"
    assert stat.S_IMODE(os.stat(tmp_path / "l.db").st_mode) == 0o600
    s.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_released_migrations_never_change_and_names_sort_in_applying_order(backend):
    found = migrations(backend)
    names = [m.name for m in found]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(name[0] == "m" and name[1:4].isdigit() for name in names)
    for m in found:
        if m.name in FROZEN[backend]:
            assert m.checksum == FROZEN[backend][m.name], f"{backend} migration {m.name} was edited after release"
    released = [n for n in names if n in FROZEN[backend]]
    assert released == list(FROZEN[backend]) == names[:len(released)]  # new ones only after the released ones
    assert not any("create_report_rollups" in m.sql or "{r}" in m.sql for m in found)  # SQL, not a helper call


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_latest_rollup_migration_is_what_the_schema_module_writes(backend):
    """rebuild_rollups (and the checks) use schema.rollup_ddl: the schema they
    build must be the one the migrations left. Change the roll-ups with a new
    migration holding the new statements."""
    latest = [m for m in migrations(backend) if "CREATE TABLE rollup_daily_model" in m.sql][-1]
    for statement in schema.rollup_ddl(backend):
        assert statement in latest.sql, (latest.name, statement[:120])


OLD_LEDGER = ("response_id", "ts", "day", "tenant", "source", "model", "pricing_source", "input_tokens", "output_tokens",
              "cost_usd", "baseline_cost_usd", "saved_usd", "saved_cache_usd", "saved_routing_usd", "cache_kind",
              "decisions")


@pytest.mark.parametrize("oldest", ["m001_ledger", "m003_daily_spend", "m020_deferred_tasks", "m030_alerts",
                                    "m031_report_rollups", "m032_report_rollups_v2", "m033_rollup_lever_mask"])
def test_an_old_sqlite_file_upgrades_with_its_rows_and_exact_money(tmp_path, oldest):
    path = tmp_path / "old.db"
    old = open_store(path, migrate=False)
    old.migrate(until=oldest)
    applied = old.applied_migrations()
    money = [0.001, 0.0000137, 0.1 + 0.2, 1e-12, None]  # REAL values as the old releases stored them
    rows = []
    for i, cost in enumerate(money):
        hit = i % 2 == 1
        rows.append((f"old_{i}", TS + i, DAY, "key:old", "cache" if hit else "api", "claude-haiku-5-5", "table",
                     0 if hit else 100, 0 if hit else 20, 0.0 if hit else cost, 0.01, None if cost is None else 0.01 - (cost or 0),
                     cost if hit else 0.0, None if cost is None else 0.01 - 2 * (cost or 0), "exact" if hit else None,
                     json.dumps({"cache": {"replaced_tokens": 120 + i}}) if hit else "not json"))
    with old.write() as c:
        c.executemany(f"INSERT INTO ledger ({', '.join(OLD_LEDGER)}) VALUES ({', '.join('?' for _ in OLD_LEDGER)})", rows)
        if "m020_deferred_tasks" in applied:
            c.execute("INSERT INTO tasks (id, tenant, status, priority, priority_rank, category, model, request, params, "
                      "decisions, created_at, deadline_at, cost_usd) VALUES ('task_old', 'key:old', 'submitted', 'normal', "
                      "1, 'c', 'claude-haiku-5-5', '{}', '{}', ?, ?, ?, NULL)",
                      (json.dumps({"estimated_cost_usd": 0.0000137}), TS, TS + 3600))
        if "m030_alerts" in applied:
            c.execute("INSERT INTO alerts (tenant, ts, kind, scope, period, spent_usd, limit_usd, message) "
                      "VALUES ('key:old', ?, 'budget_warning', 'daily', ?, 0.3, 0.5, 'old')", (TS, DAY))
        if "m010_response_cache" in applied:
            c.execute("INSERT INTO response_cache (tenant, request_key, query_type, model, content, text, usage, "
                      "cost_usd, baseline_cost_usd, savings, size_bytes, created_at, expires_at, last_used_at, saved_usd) "
                      "VALUES ('key:old', 'k', 'default', 'm', '[]', 'a', '{}', 0.0000137, 0.01, '{}', 10, ?, ?, ?, 0.02)",
                      (TS, TS + 3600, TS))
    old.close()

    s = open_store(path)  # opening migrates
    try:
        assert s.applied_migrations() == [m.name for m in migrations("sqlite")]
        got = {r["response_id"]: r for r in ledger.rows(s)}
        # 0.001, 0.1 + 0.2 (0.30000000000000004 as a REAL) and an unknown price, to the picodollar
        assert [got[f"old_{i}"]["cost_picousd"] for i in (0, 2, 4)] == [1_000_000_000, 300_000_000_000, None]
        assert got["old_1"]["saved_cache_picousd"] == 13_700_000 and got["old_3"]["saved_cache_picousd"] == 1
        assert got["old_1"]["cache_replaced_tokens"] == 121 and got["old_0"]["cache_replaced_tokens"] is None
        assert report_store.rollup_mismatches(s) == []
        assert ledger.spend(s, "key:old", DAY, DAY) == schema.usd(1_000_000_000 + 300_000_000_000)
        if "m020_deferred_tasks" in applied:
            assert task_store.committed_cost(s, "key:old") == 0.0000137
        if "m030_alerts" in applied:
            assert [(a["spent_usd"], a["limit_usd"]) for a in alerts.between(s, tenant="key:old", since_ts=None,
                                                                                until_ts=None)] == [(0.3, 0.5)]
        if "m010_response_cache" in applied:
            with s.read() as c:
                hit = cache_sql.find_exact(c, "k", TS)
                assert (hit["cost_usd"], hit["baseline_cost_usd"]) == (0.0000137, 0.01)
                assert cache_sql.stats(c, None, TS)["saved_usd"] == 0.02
        ledger.insert(s, _row(1))  # and it takes new rows
        assert report_store.rollup_mismatches(s) == []
    finally:
        s.close()


def test_a_newer_database_is_refused_with_a_clear_message(db_url):
    s = open_store(db_url)
    with s.write() as c:
        c.execute(f"INSERT INTO {MIGRATIONS_TABLE} (id, name, applied_at) VALUES (999, 'm999_from_the_future', 'x')")
    s.close()
    with pytest.raises(StoreError, match="newer mcp-tars.*m999_from_the_future"):
        open_store(db_url)


def test_a_corrupted_file_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot"):
        open_store(path)
    assert path.read_bytes().startswith(b"this is not a database")


# -- the ledger ------------------------------------------------------------------------------------------


def test_the_same_response_is_never_counted_twice(store):
    assert ledger.insert(store, _row(1)) is True
    assert ledger.insert(store, _row(1, cost_usd=5.0)) is False
    assert ledger.insert_many(store, [_row(1), _row(2)]) == 1
    assert ledger.count(store) == 2
    assert ledger.by_response_id(store, "msg_1")["cost_usd"] == 0.001
    assert ledger.by_response_id(store, "msg_1")["cost_picousd"] == 1_000_000_000


def test_money_is_exact_at_any_length(store):
    """A million-call month in miniature: 3,000 calls at a price no float holds
    exactly add up to the exact sum, in the ledger, the budget and the reports."""
    costs = [round(0.0000137 * (1 + i % 7), 10) for i in range(3000)]  # prices as the table gives them
    ledger.insert_many(store, [_row(i, cost_usd=c, saved_usd=None, saved_routing_usd=None) for i, c in enumerate(costs)])
    exact = sum(Decimal(repr(c)) for c in costs)
    assert sum(r["cost_picousd"] for r in ledger.rows(store)) == exact * 10**12
    total = report_store.sums(store, tenant=None, first_day=None, last_day=None)[0]["cost_usd"]
    assert total == float(exact) == ledger.spend(store, "key:t", "2000-01-01", "2999-12-31")
    assert sum(costs) != float(exact)  # what adding floats would have said


def test_spend_follows_the_ledger_and_skips_unknown_prices(store):
    ledger.insert_many(store, [_row(i) for i in range(10)] + [_row(99, cost_usd=None, pricing_source="unknown")])
    assert ledger.spend(store, "key:t", DAY, DAY) == 0.01
    assert ledger.spend(store, "key:other", DAY, DAY) == 0.0


def test_unknown_columns_are_refused(store):
    with pytest.raises(ValueError, match="unknown ledger columns"):
        ledger.insert(store, _row(1, api_key="sk-secret"))


def test_rollups_follow_inserts_updates_and_deletes(store):
    ledger.insert_many(store, [_row(i, session_id=f"s{i % 3}", model=("claude-haiku-5-5", "claude-sonnet-5-5")[i % 2])
                               for i in range(40)])
    with store.write() as c:
        c.execute("UPDATE ledger SET task_id = 'task_x' WHERE response_id = 'msg_1'")
        c.execute("UPDATE ledger SET cost_picousd = cost_picousd + 7, model = 'claude-opus-5-5', day = '2026-02-13', "
                  "saved_batch_picousd = 5 WHERE response_id = 'msg_2'")
        c.execute("DELETE FROM ledger WHERE response_id IN ('msg_3', 'msg_4')")
    assert report_store.rollup_mismatches(store) == []
    assert report_store.sums(store, tenant=None, first_day=None, last_day=None)[0]["calls"] == 38
    assert ledger.spend(store, "key:t", "2026-02-13", "2026-02-13") == schema.usd(1_000_000_007)
    assert report_store.lever_sums(store, tenant=None, first_day=None, last_day=None)["batch"]["calls"] == 1


def test_rebuilt_rollups_equal_what_the_triggers_kept(store):
    ledger.insert_many(store, [_row(i, session_id=f"s{i % 4}", ts=TS + i * 40_000) for i in range(60)])
    before = report_store.sums(store, tenant=None, first_day=None, last_day=None, by=("day", "model"))
    sessions = report_store.session_sums(store, tenant=None, first_day=None, last_day=None, top=2)
    report_store.rebuild_rollups(store)
    assert report_store.sums(store, tenant=None, first_day=None, last_day=None, by=("day", "model")) == before
    assert report_store.session_sums(store, tenant=None, first_day=None, last_day=None, top=2) == sessions
    assert [s["session"] for s in sessions][-1] == report_store.OTHER_SESSIONS
    assert report_store.rollup_mismatches(store) == []


def _writer(url: str, worker: int, n: int) -> None:
    s = open_store(url)
    for i in range(n):
        ledger.insert(s, _row(worker * 100_000 + i, tenant=f"key:{worker % 2}"))
    ledger.insert_many(s, [_row(i) for i in range(50)])  # every worker writes these: once in the ledger
    s.close()


def test_several_processes_write_one_database_without_losing_rows(db_url):
    open_store(db_url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, w, 150)) for w in range(1, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    s = open_store(db_url)
    assert ledger.count(s) == 650
    assert report_store.rollup_mismatches(s) == []
    for tenant, calls in (("key:0", 300), ("key:1", 300), ("key:t", 50)):
        assert report_store.sums(s, tenant=tenant, first_day=None, last_day=None)[0]["calls"] == calls
    s.close()


def test_sessions_remember_tier_and_gaps(store):
    ledger.touch_session(store, "t", "sess", ts=100.0, level="complex", model="claude-sonnet-5-5")
    ledger.touch_session(store, "t", "sess", ts=160.0, level=None, model=None)
    ledger.touch_session(store, "t", "sess", ts=560.0, level="expert", model="claude-opus-5-5")
    got = ledger.get_session(store, "t", "sess")
    assert got["gaps"] == [60.0, 400.0]
    assert got["level"] == "expert" and got["model"] == "claude-opus-5-5" and got["calls"] == 3
    assert ledger.get_session(store, "other", "sess") is None


def test_a_touched_session_is_returned_as_it_is_stored(store):
    # the engine remembers what touch_session returns instead of reading the session again
    for ts, level, model in ((100.0, "complex", "claude-sonnet-5-5"), (160.0, None, None), (560.0, "expert", None)):
        assert ledger.touch_session(store, "t", "sess", ts=ts, level=level, model=model) == ledger.get_session(store, "t", "sess")


def test_spooled_rows_and_those_a_dead_replayer_took_come_back_on_the_next_open(db_url):
    s = open_store(db_url)
    ledger.spool(s, _row(6))
    spool = s.spool_path
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o600
    orphan = spool.with_name(spool.name + ".4000000.replaying")  # no such pid
    orphan.write_text(json.dumps(_row(7)) + "\n" + json.dumps(_row(8)) + "\n{torn")
    s.close()
    reopened = open_store(db_url)
    assert reopened.replayed_rows == 3 and ledger.count(reopened) == 3
    assert not orphan.exists() and not spool.exists()
    reopened.close()


def test_a_journal_is_emptied_once_its_rows_are_in_and_a_dead_process_journal_comes_back_on_the_next_open(db_url):
    s = open_store(db_url)
    if s.spool_path is None:
        s.close()
        pytest.skip("a store without a recovery spool keeps no journal")
    journal = ledger.Journal(s)
    journal.write(_row(9))
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600 and journal.path.read_text().count("\n") == 1
    ledger.insert(s, _row(9))
    journal.clear()
    assert journal.path.read_text() == ""
    journal.write({**_row(10), "session_id": "a\u2028b\x85c"})  # answered, then the process was killed before the insert
    os.close(journal._fd)  # (its descriptor dies with it)
    journal._fd = None
    dead = journal.path.with_name(s.spool_path.name + ".j1.4000000.journal")  # no such pid
    os.replace(journal.path, dead)
    s.close()
    reopened = open_store(db_url)
    assert reopened.replayed_rows == 1 and ledger.count(reopened) == 2
    assert "a\u2028b\x85c" in {r["session_id"] for r in ledger.rows(reopened)}  # line separators inside a line
    assert not dead.exists()
    reopened.close()


# -- the deferred queue -------------------------------------------------------------------------------------


def _task(i: int, **over) -> dict:
    task = {"id": f"task_{i:04d}", "tenant": "key:t", "status": "queued", "priority": "normal", "category": "c",
            "model": "claude-haiku-5-5", "request": {"prompt": f"q{i}"}, "params": {"model": "claude-haiku-5-5"},
            "decisions": {"estimated_cost_usd": 0.0000137}, "created_at": TS + i, "deadline_at": TS + 86400}
    task.update(over)
    return task


def _claimer(url: str, worker: int, ids: list[str], out) -> None:
    s = open_store(url)
    taken = []
    for round_ in range(5):  # everyone tries for everything, in chunks, in its own order
        order = ids[worker::2] + ids[1 - worker % 2::2] if worker % 2 else list(reversed(ids))
        for start in range(0, len(order), 37):
            taken += task_store.claim(s, "key:t", order[start:start + 37], token=f"claim_{worker}_{round_}_{start}",
                                      owner=f"host{worker}:1:1:x", now=TS, lease_until=TS + 60)
    s.close()
    out.put((worker, taken))


def test_every_queued_task_is_claimed_exactly_once_whoever_tries(db_url):
    s = open_store(db_url)
    ids = [f"task_{i:04d}" for i in range(300)]
    for i in range(300):
        task_store.insert_task(s, _task(i))
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_url, w, ids, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    taken = [t for _, got in results for t in got]
    assert sorted(taken) == ids  # each once: none lost, none twice
    claims = task_store.claims(s, "key:t")
    assert sum(len(c["task_ids"]) for c in claims) == 300 and all(c["lease_until"] == TS + 60 for c in claims)
    assert task_store.counts(s, "key:t") == {"claimed": 300, "open_batches": 0}
    assert task_store.committed_cost(s, "key:t") == schema.usd(300 * 13_700_000)
    s.close()


def test_a_task_moves_through_its_states_once(store):
    for i in range(3):
        task_store.insert_task(store, _task(i))
    assert task_store.claim(store, "key:t", ["task_0000", "task_0001", "task_0002"], token="claim_a", owner="o",
                            now=TS, lease_until=TS + 60) == ["task_0000", "task_0001", "task_0002"]
    assert task_store.cancel_task(store, "key:t", "task_0002", now=TS) == ("claimed", None)
    moved = task_store.record_submission(store, "key:t", token="claim_a", batch_id="msgbatch_1", priority="normal",
                                         now=TS + 1, prompt_cache={"task_0000": {"breakpoints": 1}})
    assert moved == 3
    assert task_store.get_task(store, "key:t", "task_0002")["status"] == "canceled"
    assert task_store.get_task(store, "key:t", "task_0000")["decisions"]["prompt_cache"] == {"breakpoints": 1}
    assert task_store.batch_task_ids(store, "msgbatch_1") == {"task_0000", "task_0001", "task_0002"}
    row = _row(1, response_id="batch:msgbatch_1:task_0000", source="batch", task_id="task_0000", cost_usd=0.0000137)
    for _ in range(2):  # a result read twice (a restart) is recorded once
        inserted, status = task_store.ingest_success(store, "key:t", task_id="task_0000", batch_id="msgbatch_1",
                                                     ledger_row=row, text="a", content=[], model="m",
                                                     stop_reason="end_turn", cost_usd=0.0000137, now=TS + 2)
    assert (inserted, status) == (False, "succeeded") and ledger.count(store) == 1
    assert task_store.get_task(store, "key:t", "task_0000")["cost_usd"] == 0.0000137
    assert task_store.settle_unanswered(store, "key:t", task_id="task_0001", batch_id="msgbatch_1",
                                        result_type="errored", error="overloaded", retry=True, max_attempts=3,
                                        now=TS + 2) == "queued"
    assert task_store.settle_unanswered(store, "key:t", task_id="task_0001", batch_id="msgbatch_1",
                                        result_type="errored", error="again", retry=True, max_attempts=3,
                                        now=TS + 2) is None  # not in that batch any more
    task_store.finish_batch(store, "msgbatch_1", now=TS + 3)
    assert task_store.open_batches(store, "key:t") == [] and task_store.has_open_work(store, "key:t")
    assert task_store.start_running(store, "task_0001", "o", lease_until=TS + 900)
    assert task_store.running_tasks(store, "key:t")[0]["lease_until"] == TS + 900
    task_store.finish_running(store, "task_0001", status="failed", now=TS + 4, error="stopped")
    assert not task_store.has_open_work(store, "key:t")
    assert [r["id"] for r in task_store.finished(store, "key:t", limit=10, status=None)] == [
        "task_0001", "task_0000", "task_0002"]
    assert task_store.open_task_count(store) == 0


# -- the response cache's SQL ----------------------------------------------------------------------------------


def _entry(i: int, **over) -> dict:
    row = {"tenant": "key:t", "request_key": f"req_{i}", "context_key": "ctx", "query_vector": bytes([i, 0, 255, 1]),
           "query_text": f"question {i}\x00", "query_analysis": '{"stamp": "x"}', "query_type": "default",
           "model": "m", "requested_model": None, "content": "[]", "text": f"answer {i}", "stop_reason": "end_turn",
           "usage": "{}", "cost_usd": 0.0000137, "baseline_cost_usd": 0.001 * (i + 1), "savings": "{}",
           "size_bytes": 1000, "created_at": TS, "expires_at": TS + 3600 * (i + 1), "last_used_at": TS}
    row.update(over)
    return row


def test_the_cache_tables_answer_and_keep_their_totals(store):
    with store.write() as c:
        cache_sql.insert_entry(c, _entry(0))
        cache_sql.insert_entry(c, _entry(0, text="newer"))  # same request: replaced
        cache_sql.insert_entries(c, [_entry(i) for i in range(1, 6)])
        cache_sql.insert_entry(c, _entry(9))  # ids go on after a bulk insert (PostgreSQL: its sequence too)
        assert cache_sql.totals(c) == (7, 7000)
    with store.read() as c:
        hit = cache_sql.find_exact(c, "req_0", TS)
        second = cache_sql.find_exact(c, "req_1", TS)
        assert hit["text"] == "newer" and hit["cost_usd"] == 0.0000137 and cache_sql.find_exact(c, "req_9", TS)
        vectors = cache_sql.vectors_after(c, "ctx", 0)
        assert [v for _, v in vectors] == [bytes([i, 0, 255, 1]) for i in (0, 1, 2, 3, 4, 5, 9)]  # id order, bytes
        assert [i for i, _ in cache_sql.vectors_after(c, "ctx", vectors[-2][0])] == [vectors[-1][0]]
        assert cache_sql.vectors_after(c, "other", 0) == []
        ids = {r["text"]: i for i, r in ((r["id"], r) for r in cache_sql.find_by_ids(c, [v[0] for v in vectors], TS))}
        assert set(ids) == {"newer", "answer 1", "answer 2", "answer 3", "answer 4", "answer 5", "answer 9"}
        assert cache_sql.find_by_ids(c, [ids["newer"]], TS + 7200) == [] and cache_sql.find_by_ids(c, [], TS) == []
        assert cache_sql.find_exact(c, "req_0", TS + 7200) is None  # expired
    with store.write() as c:
        cache_sql.record_hits(c, [(2, 1, 0.001, TS + 10, hit["id"]), (1, 0, 0.0000137, TS + 5, second["id"])])
        stats = cache_sql.stats(c, "key:t", TS + 4000)
        assert stats["hits"] == {"exact": 3, "semantic": 1, "total": 4}
        assert stats["saved_usd"] == round(0.001 + 0.0000137, 6) and stats["expired_entries"] == 1
        assert cache_sql.evict(c, target_entries=4, target_bytes=10**9, now=TS, half_life=3600) == 3
        assert cache_sql.totals(c) == (4, 4000)
        assert cache_sql.find_exact(c, "req_0", TS) is not None  # the most used one stays
        assert cache_sql.delete_expired(c, TS + 3 * 3600 + 1) == 1  # req_0's hour is over
        assert cache_sql.clear(c, "key:other") == 0
        assert cache_sql.clear(c, "key:t") == 3 and cache_sql.clear(c, None) == 0
        assert cache_sql.totals(c) == (0, 0)


def test_alerts_are_recorded_once_per_period(store):
    kwargs = dict(tenant="key:t", kind="budget_warning", scope="daily", period=DAY, message="80%", share=0.8,
                  spent_usd=0.8, limit_usd=1.0, action="warn")
    assert alerts.record(store, ts=TS, **kwargs) is True
    assert alerts.record(store, ts=TS + 1, **kwargs) is False
    got = alerts.between(store, tenant="key:t", since_ts=TS - 1, until_ts=None)
    assert [(a["spent_usd"], a["limit_usd"], a["message"]) for a in got] == [(0.8, 1.0, "80%")]


# -- copying a history ------------------------------------------------------------------------------------------


def test_a_single_users_history_copies_into_a_team_database_exactly_and_once(tmp_path, db_url):
    src = open_store(tmp_path / "mine.db")
    ledger.insert_many(src, [_row(i, cost_usd=0.0000137 * (i % 5), session_id=f"s{i % 3}") for i in range(7000)])
    ledger.touch_session(src, "key:t", "s1", ts=TS, level="simple", model="claude-haiku-5-5")
    alerts.record(src, tenant="key:t", ts=TS, kind="budget_warning", scope="daily", period=DAY, message="m",
                  spent_usd=0.0000137, limit_usd=1.0)
    task_store.insert_task(src, _task(1))
    dst = open_store(db_url)
    ledger.insert(dst, _row(10_000_000, tenant="key:team"))  # the team's own rows stay
    first = copy_history(src, dst)
    assert (first.ledger_rows, first.ledger_added, first.alerts_added, first.sessions_added) == (7000, 7000, 1, 1)
    assert first.open_tasks_left == 1
    again = copy_history(src, dst)
    assert (again.ledger_rows, again.ledger_added, again.alerts_added, again.sessions_added) == (7000, 0, 0, 0)
    mine = {r["response_id"]: r for r in ledger.rows(src)}
    copied = {r["response_id"]: r for r in ledger.rows(dst, tenant="key:t")}
    assert {k: {c: v for c, v in r.items() if c != "id"} for k, r in copied.items()} == \
        {k: {c: v for c, v in r.items() if c != "id"} for k, r in mine.items()}
    assert report_store.ledger_sums(dst, tenant="key:t", first_day=None, last_day=None) == \
        report_store.ledger_sums(src, tenant="key:t", first_day=None, last_day=None)
    assert report_store.sums(dst, tenant="key:t", first_day=None, last_day=None) == \
        report_store.sums(src, tenant="key:t", first_day=None, last_day=None)
    assert report_store.rollup_mismatches(dst) == []
    assert ledger.count(dst) == 7001
    src.close()
    dst.close()


# -- MCP_TARS_DB --------------------------------------------------------------------------------------------------


def test_a_url_of_another_scheme_is_refused_and_no_file_appears(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for url in ("mysql://root@127.0.0.1/tars", "sqlite:///tars.db", "https://example.invalid/db"):
        with pytest.raises(StoreError, match="not supported.*postgresql://"):
            open_store(url)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("url", ["postgresql:/postgres@127.0.0.1:5432/tars", "postgresql://u@h:notaport/db?x",
                                 "postgresql://user@127.0.0.1:5432/tars?sslmode=sometimes"])
def test_a_malformed_postgres_url_is_a_clear_error(tmp_path, monkeypatch, url):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(StoreError, match="PostgreSQL|postgresql://"):
        open_store(url)
    assert list(work.iterdir()) == []  # never a SQLite file named after the URL


def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path, monkeypatch):
    import socket

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        open_store(f"postgresql://tars:s3cret-pw@127.0.0.1:{port}/tars")
    assert time.monotonic() - started < 30
    assert "cannot connect to the PostgreSQL database postgresql://tars:***@127.0.0.1" in str(err.value)
    assert "s3cret-pw" not in str(err.value) and "Check that the server runs" in str(err.value)
    assert list(work.iterdir()) == []


def test_a_wrong_password_is_a_clear_error_without_the_password(postgres_url):
    wrong = postgres_url.replace(":tars-test@", ":not-the-password@")
    assert wrong != postgres_url
    with pytest.raises(StoreError, match="cannot connect") as err:
        open_store(wrong)
    assert "not-the-password" not in str(err.value)


def test_a_dropped_server_connection_is_opened_again(postgres_url):
    s = open_store(postgres_url)
    ledger.insert(s, _row(1))
    import psycopg

    with s.read() as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match="cannot be"):  # the statement in flight fails, plainly
        ledger.insert(s, _row(2))
    assert ledger.insert(s, _row(3)) is True  # the next one reconnects
    assert ledger.count(s) == 2
    s.close()


def test_text_postgres_cannot_hold_is_stored_anyway(postgres_url):
    s = open_store(postgres_url)
    ledger.insert(s, _row(1, routing_reason="a\x00b"))
    assert ledger.by_response_id(s, "msg_1")["routing_reason"] == "a\ufffdb"
    s.close()


def test_the_db_commands_migrate_and_copy(tmp_path, db_url, capsys, monkeypatch):
    from mcp_tars.cli import main

    monkeypatch.setenv("MCP_TARS_DB", db_url)  # --db sets it; restored after the test
    assert main(["--db", db_url, "db", "migrate"]) == 0
    assert "applied m001_" in capsys.readouterr().out
    assert main(["--db", db_url, "db", "migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    mine = tmp_path / "mine.db"
    src = open_store(mine)
    ledger.insert_many(src, [_row(i) for i in range(20)])
    src.close()
    assert main(["db", "copy", str(mine), db_url]) == 0
    assert "20 new in DST" in capsys.readouterr().out
    assert main(["db", "copy", str(mine), db_url]) == 0
    assert "0 new in DST (20 already there)" in capsys.readouterr().out
    assert main(["db", "copy", "mysql://x@y/z", db_url]) == 3
    assert "not supported" in capsys.readouterr().err
    with open_store(db_url) as dst:
        assert ledger.count(dst) == 20


def test_sqlite3_is_new_enough_for_the_migrations():
    assert sqlite3.sqlite_version_info >= (3, 35)  # ALTER TABLE DROP COLUMN, RETURNING
