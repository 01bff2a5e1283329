"""The Anthropic-compatible gateway, driven by the real anthropic SDK (sync and
async) over real loopback HTTP, in front of the simulated API: answers arrive
unchanged, every call is one ledger row equal to the simulator's bill, the
client's body and headers reach the API as sent, errors pass through, a
client that disconnects mid-stream still leaves its row."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import anthropic
import httpx2
import pytest
import uvicorn

from conftest import TEST_API_KEY, make_config
from mcp_tars.app import open_state
from mcp_tars.gateway import create_gateway
from mcp_tars.store import ledger as ledger_store
from mcp_tars.store import open_store

pytestmark = pytest.mark.anyio

SONNET = "claude-sonnet-5-5"
OTHER_KEY = "sk-ant-other-tenant-key-55d1"


@contextlib.contextmanager
def gateway(sim, **sections):
    """A real gateway (uvicorn on loopback, its own thread) in front of ``sim``."""
    config = make_config(gateway={"upstream_base_url": sim.base_url, **sections.pop("gateway", {})}, **sections)
    server = uvicorn.Server(uvicorn.Config(create_gateway(lambda: open_state(config)), host="127.0.0.1", port=0,
                                           lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def client(base_url: str, key: str = TEST_API_KEY, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0, _strict_response_validation=True, **options)


def ledger(tmp_path: Path, source: str | None = None) -> list[dict]:
    """The ledger's rows, oldest first, read through the store (money in USD beside picodollars)."""
    store = open_store(tmp_path / "tars.db")
    try:
        return ledger_store.rows(store, source=source)
    finally:
        store.close()


def wait_for_rows(tmp_path: Path, count: int) -> list[dict]:
    """A stream's row is written just after its last event reached the client: poll for it (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        rows = ledger(tmp_path)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def bill_by_id(sim) -> dict[str, float]:
    return {line.response_id: line.cost_usd for line in sim.bill}


# -- the SDK, unchanged -----------------------------------------------------------


def test_sync_create_and_stream_are_answered_and_each_call_is_one_row_equal_to_the_bill(sim, tmp_path):
    with gateway(sim) as url:
        c = client(url)
        created = c.messages.create(model=SONNET, max_tokens=200, messages=[{"role": "user", "content": "What is a ledger?"}])
        with c.messages.stream(model=SONNET, max_tokens=200, messages=[{"role": "user", "content": "Explain SSE."}]) as s:
            streamed_text = "".join(s.text_stream)
            streamed = s.get_final_message()
        assert f"q={sim.answer_tag('What is a ledger?')}" in created.content[0].text
        assert f"q={sim.answer_tag('Explain SSE.')}" in streamed_text == streamed.content[0].text
        rows = wait_for_rows(tmp_path, 2)
    assert [r["response_id"] for r in rows] == [created.id, streamed.id]
    bill = bill_by_id(sim)
    assert len(bill) == 2
    for row in rows:
        assert row["source"] == "api" and row["cost_usd"] == pytest.approx(bill[row["response_id"]], abs=1e-12)
    assert rows[1]["input_tokens"] == streamed.usage.input_tokens and rows[1]["output_tokens"] == streamed.usage.output_tokens
    # the tenant is a hash of the key; the key itself is nowhere in the database
    assert rows[0]["tenant"].startswith("key:") and TEST_API_KEY not in rows[0]["tenant"]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("tars.db*"))
    assert TEST_API_KEY.encode() not in raw


async def test_async_tool_use_and_thinking_round_trips_pass_untouched(sim, tmp_path):
    tools = [{"name": "get_weather", "description": "Weather of a city", "strict": True,
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                               "additionalProperties": False}}]
    question = "Use the tool to get the weather in Oslo."
    with gateway(sim) as url:
        async with anthropic.AsyncAnthropic(api_key=TEST_API_KEY, base_url=url, max_retries=0,
                                            _strict_response_validation=True) as c:
            first = await c.messages.create(model=SONNET, max_tokens=2000, tools=tools,
                                            thinking={"type": "enabled", "budget_tokens": 1024},
                                            messages=[{"role": "user", "content": question}])
            assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
            assert first.stop_reason == "tool_use" and first.content[0].signature
            tool_use = first.content[2]
            # the thinking block goes back as received: the sim rejects a changed signature
            turn = [{"role": "user", "content": question},
                    {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "12 C, rain"}]}]
            async with c.messages.stream(model=SONNET, max_tokens=2000, tools=tools, messages=turn,
                                         thinking={"type": "enabled", "budget_tokens": 1024}) as s:
                second = await s.get_final_message()
            assert second.stop_reason == "end_turn" and second.content[0].type == "thinking"
            assert second.content[0].signature and f"q={sim.answer_tag(question)}" in second.content[1].text
            forged = [turn[0], {**turn[1], "content": [{**turn[1]["content"][0], "thinking": "edited"}, *turn[1]["content"][1:]]}, turn[2]]
            with pytest.raises(anthropic.BadRequestError, match="signature"):
                await c.messages.create(model=SONNET, max_tokens=2000, tools=tools, messages=forged,
                                        thinking={"type": "enabled", "budget_tokens": 1024})
    sent = [r.body for r in sim.requests if r.path == "/v1/messages"]
    assert sent[1]["messages"][1]["content"][0] == first.content[0].model_dump(exclude_none=True)
    assert sent[0]["tools"] == tools  # strict and additionalProperties untouched
    rows = wait_for_rows(tmp_path, 2)
    assert len(rows) == 2 and {r["response_id"] for r in rows} == set(bill_by_id(sim))
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sim.bill_total_usd(), abs=1e-12)


def test_the_body_and_headers_reach_the_api_as_the_client_sent_them(sim, tmp_path):
    """Open schema: unknown fields, block-form system, a mid-conversation system
    message, adaptive thinking, context_management, output_config, the client's
    own cache_control, comma-joined betas and any x- header: all verbatim."""
    body = {
        "model": "claude-opus-4-8", "max_tokens": 4000, "stream": False,
        "system": [{"type": "text", "text": "You are terse."},
                   {"type": "text", "text": "Project rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise the plan."}]},
                     {"role": "system", "content": "The user prefers bullet points."}],
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "{\"session_id\":\"abc\"}"}, "future_field": {"nested": [1, 2, 3]},
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"x-api-key": TEST_API_KEY, "content-type": "application/json", "anthropic-version": "2023-06-01",
               "anthropic-beta": "context-management-2025-06-27,mid-conversation-system-2026-04-07",
               "x-claude-code-session-id": "sess-open-schema", "x-custom-trace": "t-123"}
    with gateway(sim) as url:
        r = httpx2.post(f"{url}/v1/messages?beta=true", content=raw, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["type"] == "thinking"
    seen = sim.requests[-1]
    assert seen.body == body and seen.query == {"beta": "true"}
    for name in ("anthropic-beta", "anthropic-version", "x-claude-code-session-id", "x-custom-trace"):
        assert seen.headers[name] == headers[name]
    # upstream response headers come back too
    assert r.headers["request-id"] == seen.request_id and "anthropic-ratelimit-requests-limit" in r.headers
    row = wait_for_rows(tmp_path, 1)[0]
    assert row["session_id"] == "sess-open-schema" and row["model"] == "claude-opus-4-8"
    assert row["cost_usd"] == pytest.approx(sim.bill_total_usd(), abs=1e-12)


def test_a_body_that_is_not_json_is_the_apis_to_refuse(sim, tmp_path):
    """NaN is not JSON: the gateway neither parses nor rewrites it (a shaped
    body would write it as null), the API's refusal comes back as it is."""
    raw = (b'{"model":"claude-sonnet-5-5","max_tokens":50,"temperature":NaN,'
           b'"messages":[{"role":"user","content":"hi"}]}')
    with gateway(sim) as url:
        r = httpx2.post(f"{url}/v1/messages", content=raw, timeout=30,
                        headers={"x-api-key": TEST_API_KEY, "content-type": "application/json",
                                 "anthropic-version": "2023-06-01"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in r.json()["error"]["message"]
    assert ledger(tmp_path) == []


def test_markers_spelled_with_escapes_are_still_the_clients(sim, tmp_path):
    """The gateway skips looking for markers in a body without the bytes
    "cache_control"; a key written "cache\\u005fcontrol" is the same key to the
    API, so four of them leave no room: nothing is added (a fifth is a 400)."""
    system = ",".join(f'{{"type":"text","text":"{f"Rules of the repository, section {i}. " * 120}",'
                      '"cache\\u005fcontrol":{"type":"ephemeral","ttl":"5m"}}' for i in range(4))
    raw = (f'{{"model":"{SONNET}","max_tokens":50,"system":[{system}],"messages":['
           '{"role":"user","content":"First question?"},{"role":"assistant","content":"Noted."},'
           '{"role":"user","content":"Second question?"}]}').encode()
    assert b'"cache_control"' not in raw and len(json.loads(raw)["system"][3]["cache_control"]) == 2
    with gateway(sim) as url:
        r = httpx2.post(f"{url}/v1/messages", content=raw, timeout=30,
                        headers={"x-api-key": TEST_API_KEY, "content-type": "application/json",
                                 "anthropic-version": "2023-06-01"})
        rows = wait_for_rows(tmp_path, 1)
    assert r.status_code == 200, r.text
    assert sim.requests[-1].body == json.loads(raw)  # as the client wrote it: no fifth breakpoint
    assert len(rows) == 1 and rows[0]["cost_usd"] == pytest.approx(sim.bill_total_usd(), abs=1e-12)


def test_prompt_cache_markers_stay_where_the_client_put_them(sim, tmp_path):
    """TTL adoption may give a TTL-less marker the session's TTL; it never moves,
    removes or adds one in a request that has the client's own markers."""
    system = [{"type": "text", "text": "Rules of the repository. " * 400, "cache_control": {"type": "ephemeral"}}]
    history = [{"role": "user", "content": "First question about the rules?"}]
    sent_markers, client_markers = [], []
    with gateway(sim) as url:
        c = client(url, default_headers={"x-claude-code-session-id": "sess-markers"})
        for turn in range(3):
            last = {"type": "text", "text": f"Turn {turn}: what next?", "cache_control": {"type": "ephemeral"}}
            messages = history + ([{"role": "assistant", "content": "Noted."}, {"role": "user", "content": [last]}] if turn else [])
            reply = c.messages.create(model=SONNET, max_tokens=100, system=system, messages=messages or history)
            assert reply.content[0].type == "text"
            sent = sim.requests[-1].body
            sent_markers.append(_marker_positions(sent))
            client_markers.append(_marker_positions({"system": system, "messages": messages or history}))
        rows = wait_for_rows(tmp_path, 3)
    assert [set(s) for s in sent_markers] == [set(c) for c in client_markers]
    for sent, mine in zip(sent_markers, client_markers):
        for where, control in sent.items():
            assert {k: v for k, v in control.items() if k != "ttl"} == mine[where]  # only a ttl may be added
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sim.bill_total_usd(), abs=1e-12)
    assert all(r["session_id"] == "sess-markers" for r in rows)


def _marker_positions(body: dict) -> dict[str, dict]:
    found = {}
    for i, block in enumerate(body.get("system") or []):
        if "cache_control" in block:
            found[f"system.{i}"] = block["cache_control"]
    for i, m in enumerate(body["messages"]):
        for j, block in enumerate(m["content"] if isinstance(m["content"], list) else []):
            if "cache_control" in block:
                found[f"messages.{i}.{j}"] = block["cache_control"]
    if "cache_control" in body:
        found["top"] = body["cache_control"]
    return found


def test_an_exact_repeat_is_answered_from_the_cache_and_replayed_as_a_stream(sim, tmp_path):
    question = [{"role": "user", "content": "Name three prime numbers."}]
    with gateway(sim) as url:
        c = client(url)
        first = c.messages.create(model=SONNET, max_tokens=200, messages=question)
        with c.messages.stream(model=SONNET, max_tokens=200, messages=question) as s:
            events = [e.type for e in s]
            replayed = s.get_final_message()
        again = c.messages.create(model=SONNET, max_tokens=200, messages=question)
        other_tenant = client(url, key=OTHER_KEY).messages.create(model=SONNET, max_tokens=200, messages=question)
    assert replayed.content[0].text == first.content[0].text == again.content[0].text
    assert events[0] == "message_start" and events[-1] == "message_stop" and "content_block_delta" in events
    assert replayed.usage.input_tokens == 0 and replayed.usage.output_tokens == 0  # a hit costs nothing
    assert len([r for r in sim.requests if r.path == "/v1/messages"]) == 2  # the first call, and the other tenant's
    assert other_tenant.id in bill_by_id(sim)
    rows = ledger(tmp_path)
    assert [r["source"] for r in rows] == ["api", "cache", "cache", "api"]
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sim.bill_total_usd(), abs=1e-12)


# -- errors -------------------------------------------------------------------------


def test_upstream_errors_pass_through_unchanged_and_are_not_retried(sim, tmp_path):
    with gateway(sim) as url:
        c = client(url)
        sim.inject_faults("429", retry_after=0)
        with pytest.raises(anthropic.RateLimitError) as limited:
            c.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        sim.inject_faults("529")
        with pytest.raises(anthropic.InternalServerError) as overloaded:
            c.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.NotFoundError) as unknown:
            c.messages.create(model="claude-nonexistent-9", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers["retry-after"] == "0"
    assert limited.value.response.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    assert "claude-nonexistent-9" in unknown.value.message
    assert len(sim.requests) == 3  # one attempt each: the client's retry policy decides, not ours
    assert ledger(tmp_path) == []  # nothing was billed, nothing is recorded


def test_our_own_errors_have_the_api_shape(sim, tmp_path):
    with gateway(sim, budget={"daily_usd": 0.000001, "policy": "block"}) as url:
        with pytest.raises(anthropic.BadRequestError) as blocked:  # 400: the SDKs do not retry it
            client(url).messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "spend"}])
    assert blocked.value.body["type"] == "error" and "budget" in blocked.value.body["error"]["message"]
    assert sim.requests == []  # the call was not made
    with gateway(sim, gateway={"upstream_base_url": "http://127.0.0.1:9"}) as url:  # nothing listens there
        with pytest.raises(anthropic.APIStatusError) as unreachable:
            client(url).messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        assert unreachable.value.status_code == 502 and unreachable.value.body["error"]["type"] == "api_error"
        foreign = httpx2.post(f"{url}/v1/messages", headers={"host": "evil.example:80"}, content=b"{}")
        assert foreign.status_code == 403 and foreign.json()["error"]["type"] == "permission_error"


def test_a_client_that_disconnects_mid_stream_still_leaves_one_row(sim, tmp_path):
    sim.configure(output_tokens_per_s=400)  # a 4,000-token answer takes 10 s: the client leaves long before
    question = "Write a long essay. [sim:output_tokens=4000]"
    with gateway(sim) as url:
        with httpx2.Client(timeout=30) as http:
            with http.stream("POST", f"{url}/v1/messages",
                             json={"model": SONNET, "max_tokens": 5000, "stream": True,
                                   "messages": [{"role": "user", "content": question}]},
                             headers={"x-api-key": TEST_API_KEY, "anthropic-version": "2023-06-01"}) as r:
                received = b""
                for chunk in r.iter_raw():
                    received += chunk
                    if b"content_block_delta" in received:
                        break  # leave mid-stream: the connection closes with the response
        rows = wait_for_rows(tmp_path, 1)
    assert len(rows) == 1
    row = rows[0]
    start = json.loads(received.split(b"data: ", 1)[1].split(b"\n", 1)[0])["message"]
    assert row["response_id"] == start["id"] and row["input_tokens"] == start["usage"]["input_tokens"] > 0
    assert row["stop_reason"] is None and "disconnected" in json.loads(row["decisions"])["gateway"]["incomplete"]
    assert row["cost_usd"] > 0  # what the usage received says; the sim bills an abandoned stream nothing
    assert sim.bill == []


# -- batches, count_tokens, models, probes ------------------------------------------------


def test_batches_pass_through_and_their_results_enter_the_ledger_once(sim, tmp_path):
    requests = [{"custom_id": f"job-{i}", "params": {"model": SONNET, "max_tokens": 100,
                                                     "messages": [{"role": "user", "content": f"Batch question {i}?"}]}}
                for i in range(3)]
    with gateway(sim) as url:
        c = client(url)
        batch = c.messages.batches.create(requests=requests)
        ended = c.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.results_url.startswith(url)
        assert all(b.results_url.startswith(url) for b in c.messages.batches.list() if b.results_url)
        results = {r.custom_id: r for r in c.messages.batches.results(batch.id)}
        again = list(c.messages.batches.results(batch.id))  # read twice: still one row per result
    assert set(results) == {"job-0", "job-1", "job-2"} and len(again) == 3
    assert all(r.result.type == "succeeded" for r in results.values())
    rows = ledger(tmp_path, source="batch")
    assert sorted(r["response_id"] for r in rows) == sorted(r.result.message.id for r in results.values())
    bill = bill_by_id(sim)
    assert all(r["cost_usd"] == pytest.approx(bill[r["response_id"]], abs=1e-12) and r["service_tier"] == "batch" for r in rows)


def test_count_tokens_models_and_probes(sim, tmp_path):
    params = {"model": SONNET, "messages": [{"role": "user", "content": "How many tokens is this?"}]}
    with gateway(sim) as url:
        c = client(url)
        counted = c.messages.count_tokens(**params)
        models = [m.id for m in c.models.list()]
        head = httpx2.head(f"{url}/")
        hello = httpx2.get(f"{url}/api/hello")
    assert counted.input_tokens == sim.count_tokens(params)  # passed through: the API's own count
    assert SONNET in models
    assert head.status_code == 200 and hello.status_code == 200
    assert ledger(tmp_path) == []  # free calls leave no row


def test_sessions_are_attributed_and_reported(sim, tmp_path):
    import subprocess
    import sys

    with gateway(sim) as url:
        for session, agent in (("sess-a", None), ("sess-a", "agent-7"), ("sess-b", None)):
            headers = {"x-claude-code-session-id": session, **({"x-claude-code-agent-id": agent} if agent else {})}
            client(url, default_headers=headers).messages.create(
                model=SONNET, max_tokens=50, messages=[{"role": "user", "content": f"question for {session} {agent}"}])
    rows = ledger(tmp_path)
    assert [r["session_id"] for r in rows] == ["sess-a", "sess-a", "sess-b"]
    assert json.loads(rows[1]["decisions"])["gateway"]["x-claude-code-agent-id"] == "agent-7"
    out = subprocess.run([sys.executable, "-m", "mcp_tars", "report", "--json", "--group-by", "session", "--period", "all"],
                         capture_output=True, text=True, timeout=60, check=True)
    groups = {g["key"]: g for g in json.loads(out.stdout)["groups"]}
    bill = {line.response_id: line.cost_usd for line in sim.bill}
    for session in ("sess-a", "sess-b"):
        expected = sum(bill[r["response_id"]] for r in rows if r["session_id"] == session)
        assert groups[session]["cost_usd"] == pytest.approx(expected, abs=1e-9)


def test_the_gateway_routes_are_served_beside_mcp_on_the_http_transport(sim, tmp_path):
    from conftest import server_env
    from test_http_transport import http_server

    env = server_env(tmp_path, sim.base_url, make_config())
    env.pop("MCP_TARS_TOKEN", None)
    with http_server(env) as (_proc, port):
        reply = client(f"http://127.0.0.1:{port}").messages.create(
            model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "through serve --transport http"}])
        mcp = httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=10)  # still the MCP endpoint (it wants a session)
        rows = wait_for_rows(tmp_path, 1)
    assert f"q={sim.answer_tag('through serve --transport http')}" in reply.content[0].text
    assert mcp.status_code != 404
    assert [r["response_id"] for r in rows] == [reply.id] and rows[0]["cost_usd"] == pytest.approx(sim.bill_total_usd())


async def test_a_pass_through_leaves_its_limits_to_the_api_and_a_routed_model_is_still_judged(tmp_path):
    """The client's own model: the API judges max_tokens and the context window
    (the gateway does not count tokens for it), and the levers still apply. A
    model the gateway chose (routing on) is checked like any other."""
    from mcp_tars.engine import Engine
    from mcp_tars.upstream import Credential

    body = {"model": "claude-sonnet-5-5", "max_tokens": 10_000_000,
            "messages": [{"role": "user", "content": "Which Python version does CI use?"}]}
    for routing, judged in ((False, False), (True, True)):
        config = make_config(gateway={"routing": routing}, routing={"enabled": True})
        store = open_store(tmp_path / f"judged-{routing}.db")
        try:
            engine = Engine(config, store, api_key=TEST_API_KEY)
            fwd = await engine.plan_forward(dict(body), caller=engine.caller_for(Credential(api_key=TEST_API_KEY)))
            skipped = [w for w in fwd.warnings if w.startswith("levers skipped: InputError")]
            assert bool(skipped) is judged
            assert (fwd.plan is None) is judged  # judged: refused by the check, so sent as the client wrote it
            assert fwd.body["max_tokens"] == 10_000_000
        finally:
            store.close()
