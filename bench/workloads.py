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
Groups come from the labels; texts of different pairs, which the labels never
compared, are joined only when they are the same words up to case, spacing,
contractions, articles and the question's framing ("what is X", "explain X",
"X, what is it?"), and never across a labelled "miss" pair.
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


def remove_workdir(path: Path) -> None:
    """Delete a run's scratch directory (set BENCH_KEEP_WORKDIR=1 to keep it for a look)."""
    if not os.environ.get("BENCH_KEEP_WORKDIR"):
        import shutil

        shutil.rmtree(path, ignore_errors=True)


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


# -- the day's traffic ----------------------------------------------------------


@dataclass
class Call:
    """One thing the agent does: an optimized_complete call or a deferred job."""

    index: int
    kind: str  # "question" | "near_miss" | "simple_task" | "hard_task" | "session" | "deferred"
    at: float  # seconds after the start of the day
    args: dict[str, Any]  # optimized_complete / defer_task arguments
    accepted_tags: frozenset[str]  # q= tags of a correct answer
    group: str | None = None  # paraphrase group, for questions

    def api_request(self, model: str) -> dict[str, Any]:
        """The same request as a plain Messages API call: the baseline sends
        it on the default model, full context, no caching, standard rate."""
        a = self.args
        body: dict[str, Any] = {"model": model, "max_tokens": a.get("max_tokens", 1024),
                                "messages": a["messages"] if "messages" in a else [{"role": "user", "content": a["prompt"]}]}
        for key in ("system", "tools"):
            if a.get(key) is not None:
                body[key] = a[key]
        return body


@dataclass
class Day:
    calls: list[Call]
    groups: dict[str, list[str]] = field(default_factory=dict)
    sessions: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.calls:
            out[c.kind] = out.get(c.kind, 0) + 1
        return out


def paraphrase_groups(path: Path = PAIRS_PATH) -> tuple[dict[str, list[str]], list[str]]:
    """Questions that mean the same thing, joined from the labelled "hit" pairs
    (groups: name -> texts; every text of the file is in one), and the near
    misses: the second question of each "miss" pair, which must not be answered
    with the first one's answer. Pairs that depend on a system prompt or
    history are left out."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    near_misses: list[str] = []
    with open(path, encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    for p in pairs:
        if p["category"].startswith("context_") or p.get("context"):
            continue
        if p["label"] == "hit":
            parent[find(p["a"])] = find(p["b"])
        else:
            find(p["a"])
            find(p["b"])
            near_misses.append(p["b"])
    # Texts of different pairs were never compared by the labels. Join those
    # that are the same question in another case, spacing, contraction or
    # framing ("what is X" / "explain X" / "X, what is it?": the labelled
    # paraphrase_framing and paraphrase_surface pairs say these mean the same),
    # unless a labelled "miss" pair says otherwise.
    differ = [(p["a"], p["b"]) for p in pairs
              if p["label"] == "miss" and not p["category"].startswith("context_") and not p.get("context")]

    def would_join_a_miss(x: str, y: str) -> bool:
        rx, ry = find(x), find(y)
        return any({find(a), find(b)} == {rx, ry} for a, b in differ)

    by_core: dict[str, str] = {}
    for text in sorted(parent):
        core = _core(text)
        if core in by_core and find(text) != find(by_core[core]) and not would_join_a_miss(text, by_core[core]):
            parent[find(text)] = find(by_core[core])
        else:
            by_core.setdefault(core, text)
    groups: dict[str, list[str]] = {}
    for text in list(parent):
        groups.setdefault(find(text), []).append(text)
    named = {f"g{i:03d}": sorted(texts) for i, (_, texts) in enumerate(sorted(groups.items()))}
    return named, sorted(set(near_misses))


_CONTRACTIONS = (("n't", " not"), ("'re", " are"), ("'m", " am"), ("'ll", " will"), ("'ve", " have"),
                 ("what's", "what is"), ("it's", "it is"), ("that's", "that is"), ("where's", "where is"),
                 ("who's", "who is"), ("how's", "how is"))


def _surface(text: str) -> str:
    """A question's words, ignoring case, spacing, end punctuation and contractions."""
    t = text.lower().replace("\u2019", "'").replace("can't", "cannot").replace("won't", "will not")
    for short, long in _CONTRACTIONS:
        t = t.replace(short, long)
    return re.sub(r"\s+", "", t).rstrip("?.!")


_FRAMINGS = re.compile(
    r"^(?:(?:can|could|would) you (?:please )?|please )?(?:tell me (?:about |what )?|explain (?:to me )?(?:what )?|"
    r"what is |what are |define |describe |give me an overview of )"
    r"|(?:, what is it| is what| means?| to me| please| for me)$")
_ARTICLES = re.compile(r"\b(?:the|a|an)\b")


def _core(text: str) -> str:
    """``_surface`` without the question's framing and articles: "Explain
    recursion to me please" and "recursion, what is it?" are both "recursion"."""
    t = re.sub(r"\s+", " ", text.lower().replace("\u2019", "'")).strip().rstrip("?.! ")
    for short, long in _CONTRACTIONS:
        t = t.replace(short, long)
    for _ in range(3):
        t = _FRAMINGS.sub("", t).strip(" ,?")
    return re.sub(r"\s+", "", _ARTICLES.sub(" ", t))


def _routing_prompts(path: Path = ROUTING_PATH) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if "_meta" not in r]


def _tag(text: str) -> frozenset[str]:
    return frozenset({answer_tag(text)})


_TOOL_SCHEMAS = {
    "read_file": ("Read a file of the repository", {"path": {"type": "string"}}),
    "bash": ("Run a shell command", {"command": {"type": "string"}}),
    "str_replace": ("Replace a unique string in a file", {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}),
    "grep": ("Search the repository", {"pattern": {"type": "string"}}),
    "write_file": ("Write a file", {"path": {"type": "string"}, "content": {"type": "string"}}),
    "run_tests": ("Run the test suite", {"args": {"type": "string"}}),
}


def _session_tools(messages: list[dict]) -> list[dict]:
    names = sorted({b["name"] for m in messages if isinstance(m["content"], list) for b in m["content"]
                    if b.get("type") == "tool_use"} | {"read_file", "bash", "str_replace", "grep"})
    tools = []
    for name in names:
        description, props = _TOOL_SCHEMAS.get(name, (f"The {name} tool", {"input": {"type": "string"}}))
        tools.append({"name": name, "description": description,
                      "input_schema": {"type": "object", "properties": props, "required": [next(iter(props))]}})
    return tools


_LOG_LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")
_LOG_EVENTS = ("request served", "cache miss for key", "retrying upstream call", "queue depth", "slow query",
               "connection reset by peer", "job finished", "token refreshed", "disk usage", "health check ok")


def _job_document(rng: random.Random, job: int) -> str:
    lines = []
    for i in range(rng.randint(60, 220)):
        lines.append(f"2026-11-{rng.randint(1, 25):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                     f"{rng.randint(0, 59):02d}Z {rng.choice(_LOG_LEVELS)} svc-{job % 7} {rng.choice(_LOG_EVENTS)} "
                     f"id={rng.randrange(10**6)} ms={rng.randint(1, 4000)}")
    return "\n".join(lines)


_JOB_ASKS = (
    "Summarise this service log for the weekly operations report: the main incidents, their likely causes, and what to watch next week.",
    "Read this log and list every distinct error with a count and a one-line explanation, for tomorrow's triage meeting.",
    "Write release notes from this log of the week's deploy pipeline: what changed, what failed, what was rolled back.",
)


def build_day(*, quick: bool = False, seed: int = 2026) -> Day:
    """A day of one agent's traffic, sorted by time (see the module docstring)."""
    # one generator per kind of traffic: changing one kind leaves the others as they were
    rq, rt, rs, rj = (random.Random(f"{seed}:{part}") for part in ("questions", "tasks", "sessions", "jobs"))
    scale = 0.3 if quick else 1.0
    groups, near_misses = paraphrase_groups()
    calls: list[Call] = []

    def add(kind: str, at: float, args: dict, tags: frozenset[str], group: str | None = None) -> None:
        calls.append(Call(len(calls), kind, at, args, tags, group))

    work_day = (8 * 3600, 20 * 3600)

    # questions: a few popular ones asked many times, a long tail asked once or twice
    names = sorted(groups)
    rq.shuffle(names)
    popularity = [1 / (rank + 1) ** 0.9 for rank in range(len(names))]
    for _ in range(int(700 * scale)):
        name = rq.choices(names, popularity)[0]
        text = rq.choice(groups[name])
        add("question", rq.uniform(*work_day), {"prompt": text, "max_tokens": 400},
            frozenset(answer_tag(t) for t in groups[name]), name)
    group_of = {t: name for name, texts in groups.items() for t in texts}
    for text in rq.sample(near_misses, k=min(len(near_misses), int(250 * scale))):
        name = group_of[text]
        add("near_miss", rq.uniform(*work_day), {"prompt": text, "max_tokens": 400},
            frozenset(answer_tag(t) for t in groups[name]), name)

    # one-shot tasks, simple to expert; some asked again later in the day
    tasks = _routing_prompts()
    rt.shuffle(tasks)
    for row in tasks[: int(len(tasks) * (0.35 if quick else 1.0))]:
        kind = "hard_task" if row["level"] in ("complex", "expert") else "simple_task"
        if "messages" in row:
            args = {"messages": row["messages"], "max_tokens": 1024}
            for key in ("system", "tools"):
                if row.get(key):
                    args[key] = row[key]
            tags = _tag(question_text(row["messages"]))
        else:
            args = {"prompt": row["prompt"], "max_tokens": 1024}
            tags = _tag(row["prompt"])
        for _ in range(2 if rt.random() < 0.2 else 1):
            add(kind, rt.uniform(*work_day), args, tags)

    # long agent sessions with tool use: every turn re-sends the conversation so far
    from bench.conversations import generate_session

    n_sessions = 2 if quick else 8
    for s in range(n_sessions):
        session = generate_session(seed + s, target_tokens=rs.randint(45_000, 70_000) if not quick else 45_000,
                                   output_scale=0.5)
        tools = _session_tools(session.messages)
        at = rs.uniform(8.5 * 3600, 16 * 3600)
        for i, message in enumerate(session.messages):
            if message["role"] != "user":
                continue
            history = session.messages[: i + 1]
            add("session", at, {"messages": history, "system": session.system, "tools": tools, "max_tokens": 1024,
                                "session_id": f"session-{s}"}, _tag(question_text(history)))
            pause = rs.random()
            at += rs.uniform(8, 60) if pause < 0.9 else rs.uniform(360, 1200) if pause < 0.98 else rs.uniform(3600, 5400)

    # deferrable jobs: reports and summaries that can wait for the batch API
    for j in range(int(60 * scale)):
        prompt = f"{rj.choice(_JOB_ASKS)}\n\n{_job_document(rj, j)}"
        add("deferred", rj.uniform(*work_day), {"prompt": prompt, "max_tokens": 600,
                                                 "priority": rj.choice(("normal", "low"))}, _tag(prompt))
    calls.sort(key=lambda c: c.at)
    for i, c in enumerate(calls):
        c.index = i
    return Day(calls, groups, n_sessions)
