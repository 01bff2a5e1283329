"""Fuzzing every tool through a real MCP client against the real server.

Hypothesis draws arguments for every tool: malformed messages, wrong types, odd
Unicode (NUL, bidi controls, combining marks, emoji; JSON cannot carry lone
surrogates), SQL and Jinja injection attempts in prompts, session ids, system
prompts and report arguments. Every call must end in a result or an error with
a real message (never the SDK's bare "Error executing tool X"), within a time
limit; afterwards the ledger must be intact and equal to the simulator's bill.
Huge inputs (a 10 MB prompt, 10,000 messages) must finish in bounded time and
memory. One server and one client session serve the whole module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time

import anyio
import psutil
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from conftest import TEST_API_KEY, in_process_server, make_config

CALL_TIMEOUT_SECONDS = 60

INJECTIONS = [
    "'; DROP TABLE ledger; --", "Robert'); DROP TABLE sessions;--", "1 OR 1=1", "\" OR \"\"=\"", "%s%s%s%n",
    "{{ 7*7 }}", "{{7*7}}", "{% raw %}", "{% endraw %}", "{{ config.__class__.__init__.__globals__ }}",
    "{# comment", "${jndi:ldap://x/a}", "<script>alert(1)</script>", "[link](javascript:alert(1))", "| a | b |",
    "\x00", "a\x00b", "\u202eevil\u202c", "\u200f\u200e", "e\u0301\u0301\u0301", "👩‍👩‍👧‍👦", "🏳️‍🌈" * 3, "\ufeff",
    "\r\n\r\n", "\\", "../../etc/passwd", "CON", "\u2028\u2029", "ｆｕｌｌｗｉｄｔｈ", "𝕳𝖊𝖑𝖑𝖔", "null", "None",
]

odd_text = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.builds(lambda a, b: a + b, st.sampled_from(INJECTIONS), st.text(max_size=20)),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False, allow_infinity=False), odd_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(odd_text, inner, max_size=4)), max_leaves=12)

block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": odd_text}),
    st.fixed_dictionaries({"type": st.sampled_from(["image", "tool_use", "tool_result", "thinking", "document", "bogus"])},
                          optional={"id": odd_text, "tool_use_id": odd_text, "input": json_value, "content": json_value,
                                    "source": json_value, "name": odd_text, "text": json_value}),
    st.dictionaries(odd_text, json_value, max_size=3),
    json_scalar,
)
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.one_of(odd_text, st.lists(block, max_size=3))}),
    st.fixed_dictionaries({}, optional={"role": st.one_of(odd_text, json_scalar), "content": json_value, "extra": json_value}),
    json_scalar,
)
messages = st.one_of(
    st.lists(message, max_size=6),
    # well-formed alternating conversations with odd text, so many calls reach the API
    st.integers(1, 7).flatmap(lambda n: st.tuples(*[st.fixed_dictionaries({
        "role": st.just("user" if i % 2 == 0 else "assistant"), "content": odd_text.filter(lambda s: s.strip())}) for i in range(n)])).map(list),
    json_value,
)
models = st.one_of(st.sampled_from(["claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-imaginary-9", ""]), odd_text)
sometimes = lambda strategy: st.one_of(strategy, json_value)  # noqa: E731 - the right type, or anything

complete_args = st.fixed_dictionaries({}, optional={
    "prompt": st.one_of(odd_text, odd_text, json_value),
    "messages": messages,
    "system": st.one_of(odd_text, st.lists(block, max_size=2), json_value),
    "max_tokens": sometimes(st.integers(-5, 200_000)),
    "model": sometimes(models),
    "temperature": sometimes(st.floats(-2, 3, allow_nan=False)),
    "use_cache": sometimes(st.booleans()),
    "session_id": sometimes(odd_text),
    "tools": sometimes(st.lists(st.dictionaries(odd_text, json_value, max_size=3), max_size=2)),
    "tool_choice": sometimes(st.dictionaries(odd_text, json_value, max_size=2)),
    "stop_sequences": sometimes(st.lists(odd_text, max_size=3)),
    "top_p": sometimes(st.floats(-1, 2, allow_nan=False)),
    "stream": st.booleans(),
    "unexpected": json_value,
})
defer_args = st.fixed_dictionaries({}, optional={
    "prompt": st.one_of(odd_text, json_value), "messages": messages, "system": sometimes(odd_text),
    "max_tokens": sometimes(st.integers(-5, 200_000)), "model": sometimes(models),
    "priority": sometimes(st.sampled_from(["high", "normal", "low", "urgent"])),
    "max_wait_seconds": sometimes(st.integers(-10, 10**9)), "critical": st.just(False),
})
report_args = st.fixed_dictionaries({}, optional={
    "period": sometimes(st.sampled_from(["today", "yesterday", "7d", "30d", "month", "all", "fortnight"])),
    "group_by": sometimes(st.sampled_from(["model", "day", "strategy", "session", "colour"])),
    "format": sometimes(st.sampled_from(["markdown", "json", "xml"])),
    "since": sometimes(st.one_of(st.dates().map(str), odd_text)),
    "until": sometimes(st.one_of(st.dates().map(str), odd_text)),
})
prune_args = st.fixed_dictionaries({"messages": messages}, optional={
    "system": sometimes(odd_text), "max_tokens": sometimes(st.integers(-5, 10**7)),
    "level": sometimes(st.sampled_from(["auto", "light", "medium", "aggressive", "extreme"])),
})
task_args = st.fixed_dictionaries({}, optional={"task_id": sometimes(odd_text)})
results_args = st.fixed_dictionaries({}, optional={
    "status": sometimes(st.sampled_from(["queued", "submitted", "succeeded", "failed", "expired", "canceled", "lost"])),
    "limit": sometimes(st.integers(-5, 10**6)),
})

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


class Harness:
    """One server and one MCP client session, driven from sync hypothesis tests."""

    def __init__(self, portal, client, db, sim):
        self.portal, self.client, self.db, self.sim = portal, client, db, sim
        self.calls = 0

    def call(self, tool: str, args: dict):
        async def go():
            with anyio.fail_after(CALL_TIMEOUT_SECONDS):
                return await self.client.call_tool(tool, args)

        started = time.monotonic()
        r = self.portal.call(go)
        self.calls += 1
        elapsed = time.monotonic() - started
        assert elapsed < CALL_TIMEOUT_SECONDS, (tool, elapsed)
        text = " ".join(getattr(c, "text", "") for c in r.content)
        if r.is_error:
            assert text.strip(), (tool, args)
            assert text.strip() != f"Error executing tool {tool}", ("a crash, not an answer", tool, args)
            assert "Traceback" not in text
        else:
            assert r.structured_content is not None, (tool, args)
        assert TEST_API_KEY not in text
        return r


@contextlib.contextmanager
def _harness(tmp):
    from mcp_tars.sim import SimulatedAnthropic

    (tmp / "sdk").mkdir()
    saved = {k: os.environ.get(k) for k in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_CONFIG_DIR")}
    with SimulatedAnthropic() as sim:
        os.environ.update({"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": TEST_API_KEY,
                           "ANTHROPIC_CONFIG_DIR": str(tmp / "sdk")})
        db = tmp / "fuzz.db"
        server = in_process_server(make_config(api={"max_retries": 1}), str(db))
        try:
            with start_blocking_portal() as portal:
                with portal.wrap_async_context_manager(Client(server)) as client:
                    yield Harness(portal, client, db, sim)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with _harness(tmp_path_factory.mktemp("fuzz")) as h:
        yield h


@pytest.fixture
def own_harness(tmp_path):
    """A server of its own: what the fuzz tests stored (random sessions among them) cannot crowd its report."""
    with _harness(tmp_path) as h:
        yield h


@given(args=complete_args)
@FUZZ
def test_fuzz_optimized_complete(harness, args):
    harness.call("optimized_complete", args)


nonblank = odd_text.filter(lambda s: s.strip() and "\x00" not in s) | st.sampled_from(["{{7*7}}", "'; DROP TABLE ledger; --"])
valid_complete_args = st.fixed_dictionaries({"prompt": nonblank}, optional={
    "system": nonblank, "session_id": odd_text, "model": st.sampled_from(["claude-haiku-5-5", "claude-sonnet-5-5"]),
    "max_tokens": st.integers(1, 4096), "temperature": st.floats(0, 1), "use_cache": st.booleans(),
    "stop_sequences": st.lists(nonblank, max_size=2), "stream": st.booleans(),
})


@given(args=valid_complete_args)
@settings(FUZZ, max_examples=300)
def test_fuzz_well_formed_calls_with_odd_text_reach_the_api(harness, args):
    """Well-formed requests whose strings are odd: these reach the simulated API."""
    harness.call("optimized_complete", args)


@given(args=defer_args)
@settings(FUZZ, max_examples=200)
def test_fuzz_defer_task(harness, args):
    harness.call("defer_task", args)


@given(args=report_args)
@settings(FUZZ, max_examples=200)
def test_fuzz_cost_report(harness, args):
    harness.call("cost_report", args)


@given(args=prune_args)
@settings(FUZZ, max_examples=300)
def test_fuzz_prune_context(harness, args):
    harness.call("prune_context", args)


@given(tool=st.sampled_from(["task_status", "cancel_task"]), args=task_args)
@settings(FUZZ, max_examples=60)
def test_fuzz_task_tools(harness, tool, args):
    harness.call(tool, args)


@given(args=results_args)
@settings(FUZZ, max_examples=40)
def test_fuzz_deferred_results_and_process(harness, args):
    harness.call("deferred_results", args)
    harness.call("process_deferred", {"force": args.get("limit", 0) == 3})


@given(tool=st.sampled_from(["optimized_complete", "defer_task", "task_status", "cancel_task", "deferred_results",
                             "process_deferred", "cost_report", "prune_context", "no_such_tool"]),
       args=st.dictionaries(odd_text, json_value, max_size=5))
@settings(FUZZ, max_examples=150)
def test_fuzz_any_tool_with_junk_arguments(harness, tool, args):
    async def go():
        with anyio.fail_after(CALL_TIMEOUT_SECONDS):
            return await harness.client.call_tool(tool, args)

    try:
        r = harness.portal.call(go)
    except Exception as e:  # an unknown tool may be a protocol error: with a message, not a hang
        assert tool == "no_such_tool" and "no_such_tool" in str(e), e
        return
    text = " ".join(getattr(c, "text", "") for c in r.content)
    if r.is_error:
        assert text.strip() and text.strip() != f"Error executing tool {tool}", (tool, args, text)


def test_injections_are_stored_and_rendered_literally(own_harness):
    harness = own_harness
    sessions = ["{{7*7}}", "'; DROP TABLE ledger; --", "<script>alert(1)</script>", "{% raw %}x"]
    for i, session in enumerate(sessions):
        r = harness.call("optimized_complete", {"prompt": f"Name a prime number bigger than {100 + i}.",
                                                "session_id": session, "system": "{{ 7*7 }} {% if true %}yes{% endif %}"})
        assert not r.is_error, r.content
    report = harness.call("cost_report", {"period": "all", "group_by": "session"})
    text = report.structured_content["report"]
    assert "{{7*7}}" in text  # shown as written, never evaluated
    assert "{% raw %}x" in text
    with sqlite3.connect(harness.db) as c:
        stored = {r[0] for r in c.execute("SELECT DISTINCT session_id FROM ledger")}
    assert set(sessions) <= stored
    html = harness.portal.call(harness.client.read_resource, "tars://report/html")
    page = html.contents[0].text
    assert "<script>alert(1)</script>" not in page  # never injected into the HTML page


def test_huge_inputs_end_in_bounded_time_and_memory(harness):
    process = psutil.Process()
    before = process.memory_info().rss
    ten_mb = ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000]
    conversation = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} about topic {i % 37}"}
                    for i in range(10_001)]
    for tool, args in [
        ("optimized_complete", {"prompt": ten_mb, "use_cache": False}),
        ("optimized_complete", {"messages": conversation, "use_cache": False}),
        ("optimized_complete", {"prompt": ten_mb + ten_mb}),  # over max_prompt_chars: refused
        ("optimized_complete", {"messages": conversation * 3}),  # over max_messages: refused
        ("prune_context", {"messages": conversation, "max_tokens": 2000}),
        ("prune_context", {"messages": [{"role": "user", "content": ten_mb}], "max_tokens": 1000}),
        ("cost_report", {"period": "all", "group_by": "session", "since": ten_mb[:100_000]}),
    ]:
        started = time.monotonic()
        r = harness.call(tool, args)
        assert time.monotonic() - started < 45, tool
        if tool == "optimized_complete" and (len(args.get("prompt", "")) > 12_000_000 or len(args.get("messages", [])) > 20_000):
            assert r.is_error and re.search(r"at most [\d,]+", r.content[0].text), r.content[0].text
    growth_mb = (process.memory_info().rss - before) / 2**20
    assert growth_mb < 800, f"RSS grew by {growth_mb:.0f} MB"


def test_zz_ledger_is_intact_after_fuzzing(harness):
    """Runs last in this module: every billed response is one ledger row, the schema is whole."""
    assert harness.calls > 1000
    with sqlite3.connect(harness.db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        api_ids = {r[0] for r in c.execute("SELECT response_id FROM ledger WHERE source = 'api'")}
        dupes = c.execute("SELECT COUNT(*) - COUNT(DISTINCT response_id) FROM ledger").fetchone()[0]
    assert {"ledger", "sessions", "response_cache"} <= tables
    billed = {line.response_id for line in harness.sim.bill if not line.batch}  # batch rows: batch:<id>:<task>
    assert api_ids == billed and dupes == 0
    with sqlite3.connect(harness.db) as c:
        batch_rows = c.execute("SELECT COUNT(*) FROM ledger WHERE source = 'batch'").fetchone()[0]
    assert batch_rows == sum(1 for line in harness.sim.bill if line.batch)
    assert len(api_ids) > 100  # the fuzzing really reached the API
    assert json.dumps(sorted(api_ids))  # ids are plain strings


def test_sampling_parameters_reach_the_api(harness):
    """Found by this fuzzer: the SDK has no `temperature`/`top_p` arguments, so
    they once crashed the call; they now travel in the request body."""
    for stream in (False, True):
        r = harness.call("optimized_complete", {"prompt": "Pick a colour.", "temperature": 0.25, "top_p": 0.5,
                                                "stream": stream, "use_cache": False})
        assert not r.is_error, r.content
        body = harness.sim.requests[-1].body
        assert (body["temperature"], body["top_p"]) == (0.25, 0.5)
