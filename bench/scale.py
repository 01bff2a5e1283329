"""Scale: cache lookup/insert and report time as the cache and the ledger grow to a year of traffic.

    python -m bench.scale [--quick]

Cache: a file database (WAL, as in production) filled with 1K, 10K, 100K and
1M synthetic questions (``bench.cache.populate``: real ``prepare_entry`` rows,
term postings included); at each size, timed lookups of exact hits,
semantic hits (a paraphrase of a stored question) and misses, and timed
inserts through ``ResponseCache.put`` (``bench.cache.measure_latency``).

Ledger: 10K, 100K and 1M rows of priced calls over 90 days
(``bench.reports.fill``, through ``ledger.insert_many`` so the roll-up
triggers run), then every report the CLI and the MCP tools produce
(``bench.reports.cases``), median of a few runs.

Growth = time at a size / time at the previous size (10x more rows; a scan
would grow about 10x). Targets: cache lookup sublinear up to 1M entries;
every report under 1 s at 1M rows. ``--quick`` stops at 100K.
Writes bench/out/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
from pathlib import Path

from mcp_tars import clock
from mcp_tars.store import Store, open_store

from bench.workloads import write_json

REPORT_TARGET_S = 1.0


def cache_scale(sizes: list[int], samples: int) -> list[dict]:
    from bench.cache import measure_latency

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its own table; ours follows
        return measure_latency(sizes, samples)


def ledger_scale(sizes: list[int], runs: int) -> dict[int, dict[str, float]]:
    from bench.reports import call_shapes, cases, fill, median_seconds

    rng = random.Random(11)
    now = clock.now()
    out: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        store = open_store(Path(tmp) / "ledger.db")
        shapes = call_shapes(rng)
        filled = 0
        for size in sorted(sizes):
            seconds = fill(store, filled, size, shapes, now, rng)
            filled = size
            timings = {name: median_seconds(fn, runs) for name, fn in cases(store, now).items()}
            timings["(insert, rows/s)"] = (size - (sorted(sizes)[sorted(sizes).index(size) - 1] if size != min(sizes) else 0)) / seconds
            out[size] = timings
            print(f"  ledger filled to {size:,} rows", flush=True)
        store.close()
    return out


def _growth(values: list[float]) -> str:
    return " ".join(f"x{b / a:.2f}" if a > 0 else "-" for a, b in zip(values, values[1:]))


def table(cache_rows: list[dict], reports: dict[int, dict[str, float]]) -> str:
    lines = ["Response cache, ms per operation (p50 / p99; file database; growth of p50 per 10x entries)",
             f"{'operation':<22}" + "".join(f"{str(format(r['entries'], ',')) + ' entries':>20}" for r in cache_rows)
             + "   growth (p50)"]
    for label, key in (("lookup, exact hit", "exact"), ("lookup, semantic hit", "semantic"),
                       ("lookup, miss", "miss"), ("insert", "insert")):
        p50 = [r[f"{key}_p50_ms"] for r in cache_rows]
        cells = "".join(f"{'%.3f / %.3f' % (r[key + '_p50_ms'], r[key + '_p99_ms']):>20}" for r in cache_rows)
        lines.append(f"{label:<22}{cells}   {_growth(p50)}")
    correct = ", ".join(f"{r['entries']:,}: exact {r['exact_correct']}, semantic {r['semantic_correct']}, "
                        f"miss {r['miss_correct']}" for r in cache_rows)
    lines.append(f"lookups that found what they should: {correct}")
    sizes = sorted(reports)
    lines.append("")
    lines.append("Reports over the ledger, seconds (median; growth per 10x rows)")
    lines.append(f"{'report':<34}" + "".join(f"{format(s, ',') + ' rows':>16}" for s in sizes) + "   growth")
    for name in reports[sizes[0]]:
        values = [reports[s][name] for s in sizes]
        if name.startswith("(insert"):
            lines.append(f"{name:<34}" + "".join(f"{v:>16,.0f}" for v in values))
            continue
        lines.append(f"{name:<34}" + "".join(f"{v:>16.4f}" for v in values) + f"   {_growth(values)}")
    largest = reports[sizes[-1]]
    slowest = max((k for k in largest if not k.startswith("(")), key=largest.get)
    lines.append(f"slowest report at {sizes[-1]:,} rows: {slowest}, {largest[slowest]:.3f} s "
                 f"({'under' if largest[slowest] < REPORT_TARGET_S else 'OVER'} the 1 s target)")
    return "\n".join(lines)


def verdict(cache_rows: list[dict], reports: dict[int, dict[str, float]]) -> dict:
    largest = reports[max(reports)]
    semantic = [r["semantic_p50_ms"] for r in cache_rows]
    return {
        # sublinear: every 10x step costs well under 10x (we ask for under 3x)
        "cache_lookup_sublinear": all(b < 3 * a for a, b in zip(semantic, semantic[1:])),
        "reports_under_1s_at_largest": max(v for k, v in largest.items() if not k.startswith("(")) < REPORT_TARGET_S,
        "largest_cache": cache_rows[-1]["entries"], "largest_ledger": max(reports),
    }


def run(quick: bool = False) -> dict:
    cache_sizes = [1_000, 10_000, 100_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    ledger_sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    print(f"scale: filling the cache to {cache_sizes[-1]:,} entries and the ledger to {ledger_sizes[-1]:,} rows", flush=True)
    cache_rows = cache_scale(cache_sizes, 100 if quick else 300)
    reports = ledger_scale(ledger_sizes, 3)
    result = {"cache": cache_rows, "reports": {str(k): v for k, v in reports.items()},
              "verdict": verdict(cache_rows, reports)}
    print(table(cache_rows, reports), flush=True)
    print(f"wrote {write_json('scale', result)}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100K entries / rows")
    args = parser.parse_args(argv)
    v = run(args.quick)["verdict"]
    return 0 if v["cache_lookup_sublinear"] and v["reports_under_1s_at_largest"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
