"""Store benchmark: the same ledger on a SQLite file and on PostgreSQL, side by side.

    python -m bench.store                 # 10K, 100K and 1M ledger rows on each backend
    python -m bench.store --quick         # 10K and 100K
    options: [--sizes N ...] [--runs 3] [--postgres URL] [--backends sqlite postgres]

For each backend, a fresh database (a temporary SQLite file in WAL mode; a
schema of its own on the PostgreSQL server of ``--postgres``, else
$MCP_TARS_TEST_POSTGRES_URL or .ci/postgres-url) is filled with the report
benchmark's synthetic rows (``bench.reports.fill``: 400 call shapes priced by
the real pricing code, 90 days, two tenants, sessions) through
``ledger.insert_many``, so the roll-up triggers run as for real traffic. At
each size it measures

* bulk inserts, rows per second (``insert_many`` in chunks of 50,000: spool
  replays, ``db copy``);
* single inserts, rows per second (``ledger.insert``, one transaction per row:
  what every API call does), over 1,000 more rows;
* every report the CLI and the MCP tools produce (``bench.reports.cases``),
  median of ``--runs``;

and checks that the report's totals equal a plain scan of the ledger.
Target: every report under 1 s at the largest size, on both backends.
The PostgreSQL server is whatever the URL names (the test cluster of
.ci/postgres runs with synchronous_commit = off, like SQLite's synchronous =
NORMAL in WAL mode). Writes bench/out/store.json.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from mcp_tars import clock
from mcp_tars.store import ledger, open_store

from bench.workloads import write_json

TARGET_SECONDS = 1.0
SINGLE_INSERTS = 1000
BULK = "insert, bulk (rows/s)"
SINGLE = "insert, one per call (rows/s)"


def measure(url: str, sizes: list[int], runs: int, seed: int = 11) -> dict[int, dict[str, float]]:
    from bench.reports import call_shapes, cases, check_totals, fill, median_seconds

    rng = random.Random(seed)
    now = clock.now()
    shapes = call_shapes(rng)
    out: dict[int, dict[str, float]] = {}
    store = open_store(url)
    try:
        filled = 0
        for size in sorted(sizes):
            seconds = fill(store, filled, size, shapes, now, rng)
            rates = {BULK: (size - filled) / seconds}
            filled = size
            extra = [{**rng.choice(shapes), "response_id": f"single_{size}_{i}", "ts": now - rng.random() * 86400,
                      "tenant": "key:bench-a"} for i in range(SINGLE_INSERTS)]
            began = time.perf_counter()
            for row in extra:
                ledger.insert(store, row)
            rates[SINGLE] = SINGLE_INSERTS / (time.perf_counter() - began)
            timings = {name: median_seconds(fn, runs) for name, fn in cases(store, now).items()}
            totals = check_totals(store, now)
            assert totals["calls_equal"] and totals["cost_diff_usd"] == 0 and totals["levers_sum_exactly_to_saved"], totals
            out[size] = {**timings, **rates}
            print(f"  {store.backend}: {size:,} rows (+{SINGLE_INSERTS * len(out):,} single inserts)", flush=True)
    finally:
        store.close()
    return out


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}K"


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    columns = [(backend, size) for backend, by_size in results.items() for size in sorted(by_size)]
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    head = f"{'':<34}" + "".join(f"{label[b] + ' ' + _size(s):>16}" for b, s in columns)
    lines = ["Ledger on each backend: reports in seconds (median), inserts in rows per second", head]
    names = list(next(iter(next(iter(results.values())).values())))
    for name in names:
        cells = [results[b][s][name] for b, s in columns]
        fmt = (lambda v: f"{v:>16,.0f}") if name.startswith("insert") else (lambda v: f"{v:>16.4f}")
        lines.append(f"{name:<34}" + "".join(fmt(v) for v in cells))
    for backend, by_size in results.items():
        largest = by_size[max(by_size)]
        slowest = max((k for k in largest if not k.startswith("insert")), key=largest.get)
        lines.append(f"{label[backend]}: slowest report at {max(by_size):,} rows: {slowest}, {largest[slowest]:.3f} s "
                     f"({'under' if largest[slowest] < TARGET_SECONDS else 'OVER'} the 1 s target)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.concurrency import fresh_postgres_schema, postgres_server_url

    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100K rows")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a schema of its own is created and dropped)")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    results: dict[str, dict[int, dict[str, float]]] = {}
    for backend in args.backends:
        print(f"store: filling a {backend} ledger to {max(sizes):,} rows", flush=True)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
                results[backend] = measure(str(Path(tmp) / "ledger.db"), sizes, args.runs)
            continue
        server = args.postgres or postgres_server_url()
        if not server:
            print("no PostgreSQL: run .ci/postgres as root, or pass --postgres URL", flush=True)
            return 2
        url, drop = fresh_postgres_schema(server, "bench_store")
        try:
            results[backend] = measure(url, sizes, args.runs)
        finally:
            drop()
    print(table(results), flush=True)
    print(f"wrote {write_json('store', {b: {str(k): v for k, v in r.items()} for b, r in results.items()})}")
    ok = all(max(v for k, v in r[max(r)].items() if not k.startswith("insert")) < TARGET_SECONDS
             for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
