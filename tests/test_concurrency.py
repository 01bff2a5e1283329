"""The reliability suite's concurrency test: four real server processes share
one database and race for everything at once (cache entries, ledger rows,
deferred tasks to claim, submit and collect), on one SQLite file, and on one
PostgreSQL database from two simulated hosts (separate process trees in their
own PID and UTS namespaces, with their own hostnames and overlapping pids).

0 lost rows, 0 duplicates, every deferred task sent and recorded exactly
once, the ledger equal to the bill (bench/concurrency.py does the checking;
``python -m bench.concurrency --both`` is the long version)."""

from __future__ import annotations

import pytest

from bench import concurrency
from conftest import in_ci

pytestmark = pytest.mark.slow


def _assert_all_once(out: dict, *, hosts: int) -> None:
    assert out["passed"], concurrency.table([out])
    assert out["lost_ledger_rows"] == 0 and out["duplicate_rows"] == 0 and out["billed_twice"] == 0
    assert out["tasks"] == out["tasks_succeeded"] == out["tasks_sent_once"] == out["tasks_with_one_ledger_row"] == 32
    assert out["ok"] == out["calls"] == 120 and out["cache_rows"] > 0  # the processes shared answers
    assert abs(out["ledger_minus_bill_usd"]) < 1e-9 and out["bill_usd"] > 0
    assert len(out["host_names"]) == hosts


def test_four_processes_share_one_sqlite_file():
    _assert_all_once(concurrency.run(4, 30, 8, verbose=False), hosts=1)


def test_four_processes_on_two_hosts_share_one_postgres_database(postgres_url):
    if not concurrency.unshare_works():
        problem = "cannot simulate two hosts: unshare --pid --uts --mount-proc needs root on Linux"
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    out = concurrency.run(4, 30, 8, db_url=postgres_url, hosts=2, verbose=False)
    _assert_all_once(out, hosts=2)
    assert out["host_names"] == ["sim-host-0", "sim-host-1"]
