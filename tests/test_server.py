"""The real MCP server, driven by real MCP clients against the simulated API."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from conftest import TEST_API_KEY, in_process_server, make_config, server_env, stdio_params
from mcp_tars.store import ledger, open_store

pytestmark = pytest.mark.anyio

CONTRACT_TOOLS = {"optimized_complete", "defer_task", "task_status", "process_deferred", "cost_report", "prune_context"}
RESULT_FIELDS = {"text", "model", "source", "cache", "usage", "cost_usd", "baseline_cost_usd", "saved_usd",
                 "routing", "pruning", "request_id"}
INSPECTOR = Path(__file__).resolve().parent.parent / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"


def _ledger_rows(db: Path) -> int:
    with open_store(db) as store:
        return ledger.count(store)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_server_in_both_protocol_eras(tmp_path, sim, mode):
    env = server_env(tmp_path, sim.base_url)
    async with Client(stdio_params(env), mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert CONTRACT_TOOLS <= tools
        r = await client.call_tool("optimized_complete", {"prompt": "What's the capital of France?", "max_tokens": 200})
        assert not r.is_error, r.content
        s = r.structured_content
        assert RESULT_FIELDS <= set(s)
        assert s["source"] == "api"
        assert s["model"] == "claude-haiku-5-5"  # a simple question goes to the cheap tier
        assert s["cost_usd"] > 0 and s["baseline_cost_usd"] > s["cost_usd"]
        text = r.content[0].text  # what the host model reads: the answer and one line of figures
        assert text.startswith(s["text"]) and len(text.splitlines()) == len(s["text"].splitlines()) + 1
        report = await client.call_tool("cost_report", {"period": "today"})
        assert not report.is_error
        assert report.structured_content["totals"]["calls"] == 1
        assert "claude-haiku-5-5" in report.structured_content["report"]
    assert _ledger_rows(tmp_path / "tars.db") == 1
    assert sim.bill[0].response_id == s["response_id"]


def _inspector(env: dict, *args: str) -> subprocess.CompletedProcess:
    import sys

    assert INSPECTOR.exists(), "the MCP Inspector CLI is missing: run `bash .ci/setup` (npm install into .ci/node)"
    # the Inspector gives the server a minimal environment: pass ours explicitly, as a host would
    server_vars = [f"{k}={v}" for k, v in env.items() if k.startswith(("ANTHROPIC_", "MCP_TARS_"))]
    cmd = [str(INSPECTOR), "--cli", *[a for kv in server_vars for a in ("-e", kv)],
           sys.executable, "-m", "mcp_tars", "serve", *args]
    return subprocess.run(cmd, env={**env, "MCP_CATALOG_PATH": str(Path(env["MCP_TARS_DB"]).parent / "catalog.json")},
                          capture_output=True, text=True, timeout=120)


def test_mcp_inspector_cli_is_an_independent_client(tmp_path, sim):
    env = server_env(tmp_path, sim.base_url)
    listed = _inspector(env, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert CONTRACT_TOOLS <= names
    called = _inspector(env, "--method", "tools/call", "--tool-name", "optimized_complete",
                        "--tool-args-json", json.dumps({"prompt": "Say hello", "max_tokens": 50}))
    assert called.returncode == 0, called.stderr
    out = json.loads(called.stdout)
    assert out["structuredContent"]["source"] == "api"
    bad = _inspector(env, "--method", "tools/call", "--tool-name", "optimized_complete",
                     "--tool-args-json", json.dumps({"max_tokens": 50}))
    assert bad.returncode == 5  # the tool answered isError
    assert _ledger_rows(tmp_path / "tars.db") == 1


BAD_INPUTS = [
    ("optimized_complete", {}, "exactly one of `prompt`"),
    ("optimized_complete", {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "both were given"),
    ("optimized_complete", {"prompt": "hi", "max_tokens": -5}, "max_tokens"),
    ("optimized_complete", {"prompt": "hi", "max_tokens": "many"}, "max_tokens"),
    ("optimized_complete", {"prompt": 42}, "prompt"),
    ("optimized_complete", {"prompt": "hi", "model": "claude-imaginary-9"}, "unknown model"),
    ("optimized_complete", {"messages": [{"role": "assistant", "content": "hi"}]}, "user"),
    ("optimized_complete", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "alternate"),
    ("optimized_complete", {"messages": [{"role": "system", "content": "a"}]}, "role"),
    ("optimized_complete", {"messages": [{"content": "a"}]}, "role"),
    ("optimized_complete", {"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "type"),
    ("optimized_complete", {"messages": []}, "non-empty"),
    ("optimized_complete", {"messages": "hello"}, "messages"),
    ("optimized_complete", {"prompt": "hi", "temperature": 3}, "temperature"),
    ("optimized_complete", {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "42"}]}]}, "tool_result"),
    ("defer_task", {}, "exactly one of `prompt`"),
    ("defer_task", {"prompt": "x", "priority": "urgent"}, "priority"),
    ("defer_task", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ("task_status", {"task_id": "no-such-task"}, "no-such-task"),
    ("task_status", {}, "task_id"),
    ("cost_report", {"period": "fortnight"}, "period"),
    ("cost_report", {"group_by": "colour"}, "group_by"),
    ("cost_report", {"since": "yesterday-ish"}, "YYYY-MM-DD"),
    ("prune_context", {"messages": []}, "messages"),
    ("prune_context", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ("prune_context", {"messages": [{"role": "user", "content": "x"}], "level": "extreme"}, "level"),
    ("process_deferred", {"force": "yes please"}, "force"),
]


async def test_bad_input_to_every_tool_is_a_tool_error_and_writes_nothing(tmp_path, api_env):
    db = tmp_path / "bad.db"
    server = in_process_server(make_config(), str(db))
    async with Client(server) as client:
        for tool, args, hint in BAD_INPUTS:
            r = await client.call_tool(tool, args)
            assert r.is_error, (tool, args)
            message = r.content[0].text
            assert hint.lower() in message.lower(), (tool, args, message)
            assert message.strip() != f"Error executing tool {tool}", (tool, args)  # not a bare crash
    assert _ledger_rows(db) == 0
    assert api_env.bill == []


async def test_the_api_key_appears_nowhere(tmp_path, api_env):
    db = tmp_path / "secret.db"
    config = make_config(monitoring={"metrics_log": str(tmp_path / "metrics.log")})
    server = in_process_server(config, str(db))
    async with Client(server) as client:
        for prompt in ("What is DNS?", "What is DNS?", "Explain how TLS certificates are validated."):
            r = await client.call_tool("optimized_complete", {"prompt": prompt, "session_id": "s1"})
            assert not r.is_error
            assert TEST_API_KEY not in json.dumps(r.structured_content)
        report = await client.call_tool("cost_report", {"period": "all", "group_by": "session"})
        assert TEST_API_KEY not in json.dumps(report.structured_content)
        config_text = await client.read_resource("tars://config")
        assert TEST_API_KEY not in str(config_text)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TEST_API_KEY.encode() not in path.read_bytes(), path
    assert TEST_API_KEY not in os.environ.get("MCP_TARS_DB", "")


async def test_resources_and_prompt(tmp_path, api_env):
    server = in_process_server(make_config(), str(tmp_path / "r.db"))
    async with Client(server) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"tars://config", "tars://prices", "tars://report/today"} <= uris
        prices = json.loads((await client.read_resource("tars://prices")).contents[0].text)
        assert prices["models"]["claude-haiku-5-5"]["input"] == 0.10
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert "weekly_cost_review" in prompts


# -- what an agent reads ----------------------------------------------------------


async def test_a_short_answer_reads_as_the_answer_and_one_line_of_figures(tmp_path, api_env):
    """It was ~1,550 characters of JSON (~630 host tokens) for a 50-token answer."""
    server = in_process_server(make_config(), str(tmp_path / "t.db"))
    async with Client(server) as client:
        for source in ("api", "cache"):
            r = await client.call_tool("optimized_complete", {"prompt": "What is the capital of France?", "max_tokens": 100})
            s = r.structured_content
            assert s["source"] == source
            text = r.content[0].text
            answer, _, line = text.rpartition("\n")
            assert answer == s["text"]
            assert len(text) < 1.3 * len(s["text"]) + len(line) + 1 and len(line) < 90
            assert s["model"] in line and "saved" in line
            assert RESULT_FIELDS | {"savings_by_lever", "prompt_cache", "warnings"} <= set(s)  # every figure is still there
            assert "0000000000" not in json.dumps(s)  # no float noise


async def test_every_tool_answers_in_text_not_in_json(tmp_path, api_env):
    server = in_process_server(make_config(), str(tmp_path / "t.db"))
    conversation = [{"role": "user", "content": "Tell me about DNS. " * 300}, {"role": "assistant", "content": "DNS maps names. " * 300},
                    {"role": "user", "content": "And TLS?"}]
    async with Client(server) as client:
        await client.call_tool("optimized_complete", {"prompt": "What is DNS?"})
        queued = await client.call_tool("defer_task", {"prompt": "Summarise release note 1.", "priority": "low"})
        assert queued.content[0].text.startswith(f"queued {queued.structured_content['task_id']}")
        processed = await client.call_tool("process_deferred", {"force": True})
        assert processed.content[0].text.startswith("deferred work: 1 task(s) submitted in 1 batch(es)")
        status = await client.call_tool("task_status", {"task_id": queued.structured_content["task_id"]})
        assert status.content[0].text.endswith(status.structured_content["text"]) and "succeeded" in status.content[0].text
        report = await client.call_tool("cost_report", {"period": "today"})
        assert report.content[0].text == report.structured_content["report"]  # the markdown itself, not escaped in JSON
        assert report.content[0].text.startswith("# mcp-tars cost report")
        pruned = await client.call_tool("prune_context", {"messages": conversation, "max_tokens": 300})
        first, _, rest = pruned.content[0].text.partition("\n")
        assert first.startswith("pruned ") and json.loads(rest) == pruned.structured_content["messages"]


async def test_unknown_arguments_are_refused_with_the_names_meant(tmp_path, api_env):
    """{"max_token": 5, "system_prompt": ..., "temperture": 0.2} was accepted, and all three ignored."""
    server = in_process_server(make_config(), str(tmp_path / "t.db"))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "hi", "max_token": 5, "system_prompt": "Answer in French",
                                                          "temperture": 0.2})
        assert r.is_error
        message = r.content[0].text
        assert "'max_token' (did you mean 'max_tokens'?)" in message
        assert "'system_prompt' (did you mean 'system'?)" in message
        assert "'temperture' (did you mean 'temperature'?)" in message
        other = await client.call_tool("cost_report", {"periode": "7d"})
        assert other.is_error and "did you mean 'period'?" in other.content[0].text
        schema = next(t for t in (await client.list_tools()).tools if t.name == "optimized_complete").input_schema
        assert schema["additionalProperties"] is False
    assert api_env.requests == []


async def test_thinking_top_k_and_metadata_reach_the_api(tmp_path, api_env):
    server = in_process_server(make_config(), str(tmp_path / "t.db"))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {
            "prompt": "Plan a three-step rollback.", "max_tokens": 3000, "use_cache": False,
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "metadata": {"user_id": "u-42"}})
        assert not r.is_error, r.content
        sent = api_env.requests[-1].body
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and sent["metadata"] == {"user_id": "u-42"}
        r = await client.call_tool("optimized_complete", {"prompt": "Name a colour.", "top_k": 5, "use_cache": False})
        assert not r.is_error and api_env.requests[-1].body["top_k"] == 5
        for args, hint in (({"thinking": {"type": "enabled", "budget_tokens": 500}}, "at least 1024"),
                           ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 1024}, "below `max_tokens`"),
                           ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000, "temperature": 0.2},
                            "temperature"),
                           ({"metadata": {"user": "x"}}, "user_id"), ({"top_k": 0}, "top_k")):
            bad = await client.call_tool("optimized_complete", {"prompt": "hi", **args})
            assert bad.is_error and hint in bad.content[0].text, (args, bad.content[0].text)


@pytest.mark.parametrize("stream", [False, True])
async def test_progress_notifications_arrive_for_an_ordinary_answer(tmp_path, api_env, stream):
    """They were sent only every 20 streamed chunks: never for a short answer, never without streaming."""
    server = in_process_server(make_config(), str(tmp_path / "t.db"))
    seen: list[tuple[float, str]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, message))

    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "Say hello.", "max_tokens": 50, "stream": stream},
                                   progress_callback=on_progress)
    assert not r.is_error
    assert [m for _, m in seen][0].startswith("calling ") and seen[-1][1].startswith("answered by")
    assert [p for p, _ in seen] == sorted(p for p, _ in seen) and len({p for p, _ in seen}) == len(seen)
    assert any(m.startswith("streaming") for _, m in seen) == stream
