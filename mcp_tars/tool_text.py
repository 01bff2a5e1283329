"""What an agent reads from each tool: short text beside the structured result.

A host model reads a tool's text at its own input price: a 50-token answer
wrapped in 600 tokens of JSON cost the host more than the call. So the text
is what the caller needs to go on (the answer, the report, the pruned
conversation) plus one short line of figures; every figure stays in the
structured result (``structured_content``), which hosts and programs read
without sending it through a model.

Pure functions of the result dicts; no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from .money import format_usd


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _blocks_text(result: dict) -> str:
    """The answer: its text, and any tool calls the model made (which the caller must run)."""
    parts = [result.get("text") or ""]
    for block in result.get("content") or ():
        if block.get("type") == "tool_use":
            parts.append(f"[tool_use {block.get('name')} id={block.get('id')} input={_compact_json(block.get('input'))}]")
    return "\n".join(p for p in parts if p)


def cost_line(result: dict) -> str:
    """``[claude-haiku-5-5 · $0.000037 · saved $0.00046 (93%)]``: what the call cost and saved."""
    if result.get("source") == "cache":
        kind = (result.get("cache") or {}).get("kind") or "exact"
        where = f"cache hit ({kind}) of {result.get('model')}"
    else:
        where = str(result.get("model"))
    parts = [where, format_usd(result.get("cost_usd"))]
    saved, baseline = result.get("saved_usd"), result.get("baseline_cost_usd")
    if saved is not None:
        share = f" ({saved / baseline:.0%})" if baseline else ""
        parts.append(f"saved {format_usd(saved)}{share}")
    stop = result.get("stop_reason")
    if stop not in (None, "end_turn", "tool_use"):
        parts.append(f"stopped: {stop}")
    return "[" + " · ".join(parts) + "]"


def _warning_lines(warnings: list[str] | None) -> list[str]:
    return [f"warning: {w}" for w in warnings or ()]


def complete_text(result: dict) -> str:
    """The answer, then one line of figures (and a line per warning, when there are any)."""
    return "\n".join([_blocks_text(result), cost_line(result), *_warning_lines(result.get("warnings"))])


def defer_text(out: dict) -> str:
    if out.get("result"):
        return "\n".join([complete_text({**out["result"], "warnings": []}),
                          *_warning_lines(out.get("warnings"))])
    return "\n".join([
        f"queued {out['task_id']} ({out.get('priority') or 'normal'} priority) for the Message Batches API, "
        f"expected by {out.get('estimated_ready_at')}; task_status returns its answer.",
        *_warning_lines(out.get("warnings")),
    ])


def task_text(task: dict) -> str:
    head = f"{task['task_id']}: {task['status']}"
    if task.get("model"):
        head += f" · {task['model']}"
    if task.get("cost_usd") is not None:
        head += f" · {format_usd(task['cost_usd'])}"
    if task["status"] in ("queued", "submitted") and task.get("estimated_ready_at"):
        head += f" · expected by {task['estimated_ready_at']}"
    lines = [head]
    if task.get("error"):
        lines.append(f"error: {task['error']}")
    if task.get("note"):
        lines.append(task["note"])
    if task.get("text"):
        lines.append(task["text"])
    return "\n".join(lines)


def tasks_text(out: dict) -> str:
    if not out["tasks"]:
        return "no deferred tasks"
    return "\n\n".join(task_text(t) for t in out["tasks"])


def process_text(out: dict) -> str:
    line = (f"deferred work: {out['submitted_tasks']} task(s) submitted in {out['submitted_batches']} batch(es), "
            f"{out['ran_immediately']} run immediately, {out['collected']} collected; "
            f"{out['pending_batches']} batch(es) pending, {out['queued']} task(s) queued")
    return "\n".join([line, *out.get("details", [])])


def prune_text(out: dict) -> str:
    """One line on what was done, then the pruned conversation (what the caller sends next)."""
    removed = len(out.get("removed") or ())
    line = (f"pruned {out['tokens_before']:,} -> {out['tokens_after']:,} tokens (-{out['reduction_pct']:.0f}%, "
            f"level {out['level']}); {removed} message(s) summarised or dropped")
    return line + "\n" + _compact_json(out["messages"])


def report_text(out: dict) -> str:
    """The rendered Markdown report itself, or the numbers as compact JSON (format=json)."""
    if out.get("report"):
        return out["report"]
    return _compact_json(out)
