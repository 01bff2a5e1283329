"""Report benchmark: how long reports take as the ledger grows.

    python -m bench.reports                      # 10K, 100K and 1M rows, 5 runs each
    python -m bench.reports --sizes 10000 50000 --runs 3

Fills a fresh SQLite ledger (a file, WAL, as in production) with synthetic
rows: 400 call shapes priced with the real ``pricing.attribute_call`` (API
calls, cache hits, batch results, pruned and prompt-cached calls on five
models), spread over 90 days and two tenants; 80% of them in sessions of 20 calls
over two hours (the rest without a session).
Rows go in through ``ledger.insert_many``, so the roll-up triggers run as
they do for real traffic; the insert rate is reported too.

At each size it times (median of ``--runs``; growth = time / time at the
previous size) every report the CLI and the MCP tools produce, plus a plain
``SUM`` over the ledger without the roll-ups, for comparison. It checks that
the report's totals equal that plain scan, and that savings by lever add up
exactly. At the largest size it renders the HTML report and, when Chromium
is installed, takes a screenshot of it: bench/out/report.png.

Writes bench/out/reports.json. Target: every report under 1 s at 1M rows.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mcp_tars import clock, export, reports
from mcp_tars.pricing import PriceTable, Usage, attribute_cache_hit, attribute_call
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import reports as report_store

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DEFAULT = "claude-sonnet-5-5"
MODELS = ("claude-haiku-5-5", "claude-haiku-5-5", "claude-sonnet-5-5", "claude-sonnet-5-5", "claude-opus-5-5",
          "claude-sonnet-4-6", "claude-haiku-4-5")
DAYS = 90
SESSION_CALLS = 20  # calls per session
SPAN_S = 2 * 3600  # a session's calls spread over two hours
TARGET_SECONDS = 1.0
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")


def call_shapes(rng: random.Random, n: int = 400) -> list[dict]:
    """Ledger rows without ids, times or sessions, priced as the engine prices them."""
    prices = PriceTable()
    shapes = []
    for _ in range(n):
        source = rng.choices(("api", "cache", "batch"), weights=(70, 20, 10))[0]
        model = rng.choice(MODELS)
        cached_prefix = rng.random() < 0.4
        usage = Usage(input_tokens=rng.randint(30, 6000), output_tokens=rng.randint(20, 1500),
                      cache_write_5m_tokens=rng.choice((0, 0, 0, 2500)) if cached_prefix else 0,
                      cache_write_1h_tokens=rng.choice((0, 0, 0, 4000)) if cached_prefix else 0,
                      cache_read_tokens=rng.randint(1000, 20000) if cached_prefix else 0)
        pruned = rng.choice((0, 0, 0, 0, 5000))
        a = attribute_call(prices, usage=usage, model=model, default_model=DEFAULT, batch=source == "batch",
                           pruned_away_tokens=pruned)
        if source == "cache":
            a = attribute_cache_hit(a.cost_usd, a.baseline_cost_usd)
            usage = Usage()
        shapes.append({
            "source": source, "model": model, "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens, "cache_write_5m_tokens": usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "cost_usd": a.cost_usd, "baseline_cost_usd": a.baseline_cost_usd, "saved_usd": a.saved_usd,
            "saved_cache_usd": a.savings["cache"], "saved_routing_usd": a.savings["routing"],
            "saved_pruning_usd": a.savings["pruning"], "saved_prompt_cache_usd": a.savings["prompt_cache"],
            "saved_batch_usd": a.savings["batch"], "baseline_estimated": int(a.baseline_estimated),
            "pricing_source": a.pricing_source,
            "cache_kind": rng.choice(("exact", "semantic")) if source == "cache" else None,
            "tokens_before_pruning": usage.input_tokens + pruned if pruned else None,
            "tokens_after_pruning": usage.input_tokens if pruned else None,
            "latency_ms": None if source == "batch" else rng.uniform(5, 4000) if source == "api" else rng.uniform(1, 20),
        })
    return shapes


def fill(store: Store, start: int, stop: int, shapes: list[dict], now: float, rng: random.Random,
         chunk: int = 50_000) -> float:
    """Insert rows start..stop-1; returns the seconds it took."""
    began = time.perf_counter()
    for lo in range(start, stop, chunk):
        rows = []
        for i in range(lo, min(stop, lo + chunk)):
            session = i // SESSION_CALLS
            if rng.random() < 0.8:  # a conversation: its calls a few minutes apart
                start = now - 86400 + SPAN_S - (session * 2654435761) % (DAYS * 86400 - SPAN_S)
                ts, session_id = start + (i % SESSION_CALLS) * SPAN_S / SESSION_CALLS, f"s{session}"
            else:
                ts, session_id = now - rng.random() * DAYS * 86400, None
            rows.append({**rng.choice(shapes), "response_id": f"bench_{i}", "ts": ts,
                         "tenant": "key:bench-a" if session % 5 else "key:bench-b", "session_id": session_id})
        ledger.insert_many(store, rows)
    return time.perf_counter() - began


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cases(store: Store, now: float) -> dict:
    def report(period, group_by, tenant=None):
        return lambda: reports.render_markdown(reports.build_report(store, tenant=tenant, period=period,
                                                                    group_by=group_by, now=now))

    return {
        "today by model (md)": report("today", "model"),
        "30d by day (md)": report("30d", "day"),
        "all by model (md)": report("all", "model"),
        "all by strategy (md)": report("all", "strategy"),
        "all by session (md)": report("all", "session"),
        "month by model, one tenant (md)": report("month", "model", "key:bench-a"),
        "html 30d": lambda: reports.render_html(store, period="30d", now=now),
        "costs.json": lambda: export.costs_json(store),
    }


def check_totals(store: Store, now: float) -> dict:
    """The report's totals against a plain scan of the ledger."""
    report = reports.build_report(store, period="all", now=now)
    direct = report_store.ledger_sums(store, tenant=None, first_day=None, last_day=None)
    t = report["totals"]
    levers_sum = sum(v["usd"] for v in report["savings_by_lever"].values())
    return {
        "calls_equal": t["calls"] == direct["calls"] == ledger.count(store),
        "cost_diff_usd": abs(t["cost_usd"] - direct["cost_usd"]),
        "baseline_diff_usd": abs(t["baseline_cost_usd"] - direct["baseline_cost_usd"]),
        "levers_sum_exactly_to_saved": levers_sum == t["saved_usd"],
        "saved_vs_baseline_minus_cost_usd": abs(t["baseline_cost_usd"] - t["cost_usd"] - t["saved_usd"]),
    }


def screenshot(html_path: Path, png_path: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return "skipped: chromium is not installed (apt-get install -y chromium)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1100,2200",
                               f"--screenshot={png_path}", html_path.as_uri()], capture_output=True, text=True,
                              timeout=120)
    if done.returncode != 0 or not png_path.exists():
        return f"failed: {done.stderr.strip()[-300:]}"
    return f"wrote {png_path.relative_to(ROOT)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--db", help="ledger file to fill (default: a temporary file, deleted afterwards)")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    rng = random.Random(args.seed)
    now = clock.now()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory()
    db_path = Path(args.db) if args.db else Path(tmp.name) / "bench.db"
    store = open_store(db_path)
    shapes = call_shapes(rng)

    results: dict = {"sizes": sizes, "runs": args.runs, "target_seconds": TARGET_SECONDS, "by_size": {}}
    filled = 0
    for size in sizes:
        insert_s = fill(store, filled, size, shapes, now, rng)
        rate = (size - filled) / insert_s
        filled = size
        timings = {name: median_seconds(fn, args.runs) for name, fn in cases(store, now).items()}
        timings["plain SUM over the ledger (no roll-up)"] = median_seconds(
            lambda: report_store.ledger_sums(store, tenant=None, first_day=None, last_day=None), min(args.runs, 3))
        with store.read() as c:
            rollup_rows = c.execute("SELECT (SELECT COUNT(*) FROM rollup_daily_model), "
                                    "(SELECT COUNT(*) FROM rollup_daily_session)").fetchone()
        results["by_size"][size] = {"insert_rows_per_second": rate, "timings_s": timings,
                                    "rollup_rows": {"day_model": rollup_rows[0], "day_session": rollup_rows[1]},
                                    "checks": check_totals(store, now)}
        print(f"  {size:>9,} rows: inserted at {rate:,.0f} rows/s; roll-ups hold {rollup_rows[0]:,} day x model "
              f"and {rollup_rows[1]:,} day x session rows", flush=True)

    names = list(results["by_size"][sizes[0]]["timings_s"])
    header = f"{'report':<42}" + "".join(f"{f'{s:,} rows':>16}" for s in sizes) + "   growth"
    print()
    print(f"Median of {args.runs} runs, seconds (growth: time at each size / time at the previous one)")
    print(header)
    print("-" * len(header))
    for name in names:
        ts = [results["by_size"][s]["timings_s"][name] for s in sizes]
        growth = " ".join(f"x{b / a:.1f}" if a > 0 else "-" for a, b in zip(ts, ts[1:]))
        print(f"{name:<42}" + "".join(f"{t:>16.4f}" for t in ts) + f"   {growth}")
    largest = results["by_size"][sizes[-1]]
    report_times = {k: v for k, v in largest["timings_s"].items() if not k.startswith("plain")}
    slowest = max(report_times, key=report_times.get)
    ok = report_times[slowest] < TARGET_SECONDS
    results["slowest_report_at_largest"] = {"name": slowest, "seconds": report_times[slowest], "under_target": ok}
    print()
    print(f"Slowest report at {sizes[-1]:,} rows: {slowest} in {report_times[slowest]:.3f} s "
          f"({'under' if ok else 'OVER'} the {TARGET_SECONDS:.0f} s target)")
    checks = largest["checks"]
    print(f"Totals vs a plain scan of the ledger: calls equal {checks['calls_equal']}, cost differs by "
          f"${checks['cost_diff_usd']:.2e}, baseline by ${checks['baseline_diff_usd']:.2e}; savings by lever add "
          f"up exactly: {checks['levers_sum_exactly_to_saved']}")

    html_path = OUT_DIR / "report.html"
    html_path.write_text(reports.render_html(store, period="30d", now=now), "utf-8")
    shot = screenshot(html_path, OUT_DIR / "report.png")
    results["screenshot"] = shot
    print(f"HTML report (30d, {sizes[-1]:,} rows): {html_path.relative_to(ROOT)}; screenshot: {shot}")
    (OUT_DIR / "reports.json").write_text(json.dumps(results, indent=2, default=str), "utf-8")
    print(f"wrote {(OUT_DIR / 'reports.json').relative_to(ROOT)}")
    store.close()
    tmp.cleanup()
    return 0 if ok and checks["calls_equal"] and checks["levers_sum_exactly_to_saved"] and math.isclose(
        checks["cost_diff_usd"], 0, abs_tol=1e-6) else 1


if __name__ == "__main__":
    raise SystemExit(main())
