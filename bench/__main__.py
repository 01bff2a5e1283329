"""The end-to-end benchmark: what mcp-tars saves on a day of agent traffic, what it costs in latency,
and how it holds up as the data grows and processes share it.

    python -m bench                  # all four sections (5-8 minutes on 2 cores)
    python -m bench --quick          # a smaller run of each (about 2 minutes)
    python -m bench day|overhead|scale|concurrency [--quick]
    python -m bench --readme         # also write the tables into README.md

Each section prints its table and writes bench/out/<section>.json; the whole
run writes bench/out/bench.json and bench/out/bench.txt (the tables as printed).
Lever benchmarks stay runnable on their own: ``python -m bench.<name>``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone

from bench.workloads import OUT_DIR, ROOT, write_json

SECTIONS = ("day", "overhead", "scale", "concurrency")
README = ROOT / "README.md"
START, END = "<!-- bench-tables:start -->", "<!-- bench-tables:end -->"


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def _run_section(name: str, quick: bool) -> tuple[dict, bool]:
    if name == "day":
        from bench import day

        result = day.run(quick)
        return result, result["summary"]["target_met"]
    if name == "overhead":
        from bench import overhead

        result = overhead.run(quick)
        return result, all(result["verdict"].values()) and all(result["verdict_vs_bare_floors"].values())
    if name == "scale":
        from bench import scale

        result = scale.run(quick)
        v = result["verdict"]
        return result, v["cache_lookup_sublinear"] and v["reports_under_1s_at_largest"]
    from bench import concurrency

    result = concurrency.run(4, 500)
    return result, result["passed"]


def update_readme(command: str, text: str) -> None:
    """Replace what is between the bench-tables markers (added at the end once)."""
    readme = README.read_text("utf-8")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"{START}\n## Benchmark: savings, overhead, scale\n\n"
             f"`{command}` ({stamp}, {platform.python_implementation()} {platform.python_version()}, "
             f"{_cpus()} CPUs; the simulated API prices every call). What each section measures: "
             "[bench/__main__.py](bench/__main__.py) and the docstrings of bench/day.py, overhead.py, scale.py, "
             f"concurrency.py.\n\n```\n{text.strip()}\n```\n{END}")
    if START in readme and END in readme:
        readme = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, readme, flags=re.S)
    else:
        readme = readme.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(readme, "utf-8")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="sections to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smaller run of each section")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args(argv)
    sections = args.sections or list(SECTIONS)
    captured = io.StringIO()
    results, passed = {}, {}
    began = time.perf_counter()
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
        for name in sections:
            print(f"\n== {name} ==", flush=True)
            t0 = time.perf_counter()
            results[name], passed[name] = _run_section(name, args.quick)
            # timed targets move with the machine's load: say what it was
            load = f"; load average {os.getloadavg()[0]:.1f} on {_cpus()} CPUs" if hasattr(os, "getloadavg") else ""
            print(f"({name}: {time.perf_counter() - t0:.0f} s, {'targets met' if passed[name] else 'TARGETS MISSED'}{load})",
                  flush=True)
        print(f"\ntotal {time.perf_counter() - began:.0f} s; " +
              ", ".join(f"{n}: {'ok' if ok else 'MISSED'}" for n, ok in passed.items()))
    text = "\n".join(line for line in captured.getvalue().splitlines()
                     if not line.startswith(("wrote ", "  mcp-tars: ", "  ledger filled", "scale: filling", "simulated Anthropic")))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench.txt").write_text(text + "\n", "utf-8")
    write_json("bench", {"sections": sections, "quick": args.quick, "passed": passed})
    if args.readme:
        command = "python -m bench" + (" --quick" if args.quick else "") + (
            " " + " ".join(args.sections) if args.sections else "")
        update_readme(command, text)
        print(f"README.md updated between {START} and {END}")
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
