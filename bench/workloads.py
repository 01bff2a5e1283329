"""The end-to-end benchmark's traffic and harness.

Harness: a simulated Anthropic API in its own process (``SimProcess``), the
real ``mcp-tars serve`` over stdio driven by the MCP SDK client, the packaged
default configuration (only the background batch worker is off: the day
drives ``process_deferred`` itself so runs are repeatable).

Traffic (``build_day``): one agent's working day, spread over 24 simulated
hours on the shared clock (``MCP_TARS_CLOCK_FILE``):

* questions, asked again and again and in other words: the paraphrase groups
  of ``tests/data/cache_pairs.jsonl`` (the "hit" pairs joined into groups) and
  their near misses (the "miss" pairs: a changed number, entity, negation...
  that must never be answered from another group's cache entry);
* simple and hard one-shot tasks: the labelled prompts of
  ``tests/data/routing_prompts.jsonl`` (simple to expert);
* long agent sessions with tool use (``bench/conversations.py``): every turn
  re-sends the conversation so far, as an agent does;
* deferrable jobs (summaries of logs and documents) through ``defer_task``.

Every call knows what a correct answer looks like: the simulated API starts
its answer with ``q=<answer_tag(question)>``, so an answer is correct when its
tag is the tag of the question asked, or of a paraphrase of it (same group).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_tars.config import Config
from mcp_tars.sim import SimProcess, answer_tag
from mcp_tars.sim.answers import question_text

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
PAIRS_PATH = ROOT / "tests" / "data" / "cache_pairs.jsonl"
ROUTING_PATH = ROOT / "tests" / "data" / "routing_prompts.jsonl"
BENCH_API_KEY = "sk-ant-bench-not-a-real-key"
DAY_SECONDS = 24 * 3600
_TAG = re.compile(r"\bq=([0-9a-f]{10})\b")


# -- harness ------------------------------------------------------------------


def bench_config(**sections: dict) -> Config:
    """The packaged defaults, with the batch worker off (the benchmark runs
    process_deferred itself) and any ``sections`` overrides merged in."""
    data = Config().model_dump(mode="json")
    overrides = {"batch": {"worker_enabled": False}}
    for extra in (overrides, sections):
        for name, values in extra.items():
            if isinstance(values, dict) and isinstance(data.get(name), dict):
                data[name] = {**data[name], **values}
            else:
                data[name] = values
    return Config.model_validate(data)


def server_env(workdir: Path, base_url: str, config: Config, clock_file: Path | None = None,
               db_path: Path | None = None) -> dict[str, str]:
    """Environment of a real ``mcp-tars serve`` process pointed at the sim."""
    config_path = workdir / "performance-config.json"
    config_path.write_text(json.dumps(config.model_dump(mode="json")), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "MCP_TARS_"))}
    env.update({
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": BENCH_API_KEY,
        "ANTHROPIC_CONFIG_DIR": str(workdir / "anthropic-config"),
        "MCP_TARS_DB": str(db_path or workdir / "tars.db"),
        "MCP_TARS_CONFIG": str(config_path),
    })
    if clock_file is not None:
        env["MCP_TARS_CLOCK_FILE"] = str(clock_file)
    return env


def stdio_params(env: dict[str, str], *args: str):
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_tars", "serve", *args], env=env)


def start_sim(clock_file: Path | None = None, *args: str) -> SimProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_TARS_")}
    if clock_file is not None:
        env["MCP_TARS_CLOCK_FILE"] = str(clock_file)
    return SimProcess.start("--no-request-bodies", *args, env=env)


def workdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    (path / "anthropic-config").mkdir()
    return path


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))]


def answer_tags(text: str | None) -> set[str]:
    return set(_TAG.findall(text or ""))


def write_json(name: str, data: Any) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str), "utf-8")
    return path
