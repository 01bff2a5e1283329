"""The simulated Anthropic API, exercised through the real SDK in strict mode."""

from __future__ import annotations

import json
import os
import threading
import time

import anthropic
import httpx2
import pytest

from mcp_tars import clock
from mcp_tars.sim import SimProcess, SimulatedAnthropic, answer_tag

MODEL = "claude-sonnet-5-5"
HAIKU_45 = "claude-haiku-4-5"
# Prices (USD per million) copied by hand from prices.json, so that the bill is
# checked against numbers a person can read, not against the sim's own table.
HAIKU_45_PRICES = {"input": 1.0, "cache_write_5m": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1, "output": 5.0}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    config_dir = tmp_path / "anthropic-config"
    config_dir.mkdir()
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(config_dir))
    monkeypatch.delenv("MCP_TARS_CLOCK_FILE", raising=False)


@pytest.fixture
def sim():
    with SimulatedAnthropic() as simulated:
        yield simulated


@pytest.fixture
def client(sim):
    return make_client(sim.base_url)


@pytest.fixture
def shared_clock(tmp_path, monkeypatch):
    path = tmp_path / "clock"
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(path))
    return lambda seconds: clock.advance(seconds)


def make_client(base_url: str, **options) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key="test", base_url=base_url, _strict_response_validation=True, **options)


def long_text(words: int, topic: str = "cache") -> str:
    return " ".join(f"{topic}{i % 50}" for i in range(words))


def ask(client, question="What is prompt caching?", **params):
    params.setdefault("model", MODEL)
    params.setdefault("max_tokens", 300)
    params.setdefault("messages", [{"role": "user", "content": question}])
    return client.messages.create(**params)


def usage_tuple(usage) -> tuple[int, int, int, int]:
    """(input, 5m writes, 1h writes, reads)"""
    return (
        usage.input_tokens,
        usage.cache_creation.ephemeral_5m_input_tokens,
        usage.cache_creation.ephemeral_1h_input_tokens,
        usage.cache_read_input_tokens,
    )


# ---------------------------------------------------------------- messages


def test_create_returns_a_strictly_valid_tagged_message(client, sim):
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5-20251001", max_tokens=300, messages=[{"role": "user", "content": "  Why is the sky blue? "}]
    )
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_") and message.model == "claude-haiku-4-5-20251001"
    assert message.stop_reason == "end_turn"
    text = message.content[0].text
    assert f"q={answer_tag('Why is the sky blue?')}" in text
    assert SimulatedAnthropic.answer_tag("Why is the sky blue?") == answer_tag("  Why is the sky blue?\n")
    assert message.usage.service_tier == "standard"
    assert message.usage.output_tokens > 10
    assert message.usage.input_tokens == sim.count_tokens(
        {"model": HAIKU_45, "messages": [{"role": "user", "content": "  Why is the sky blue? "}]}
    )
    [line] = sim.bill
    assert (line.response_id, line.model, line.batch) == (message.id, "claude-haiku-4-5-20251001", False)


def test_answers_are_deterministic_and_ids_unique(client):
    first, second = ask(client, "Same question"), ask(client, "Same question")
    assert first.content[0].text == second.content[0].text
    assert first.id != second.id
    assert ask(client, "Other question").content[0].text != first.content[0].text


def test_max_tokens_cuts_the_answer_and_stop_sequences_end_it(client):
    cut = ask(client, "Tell me everything [sim:output_tokens=200]", max_tokens=12)
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 12)
    long = ask(client, "Tell me everything [sim:output_tokens=200]", max_tokens=1000)
    assert long.stop_reason == "end_turn" and 200 <= long.usage.output_tokens < 230
    stopped = ask(client, "Anything", stop_sequences=["answer"])
    assert (stopped.stop_reason, stopped.stop_sequence, stopped.content[0].text) == ("stop_sequence", "answer", "Simulated ")


def test_stream_helper_matches_the_plain_answer(client, sim):
    plain = ask(client, "Stream this please")
    with client.messages.stream(
        model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "Stream this please"}]
    ) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed_text == plain.content[0].text == final.content[0].text
    assert final.usage.model_dump() == plain.usage.model_dump()
    assert final.stop_reason == "end_turn"
    assert [line.response_id for line in sim.bill] == [plain.id, final.id]


def test_create_stream_true_sends_every_event_with_an_event_line(client, sim):
    events = list(ask(client, "Stream events", stream=True))
    types = [event.type for event in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(types)
    assert events[-2].usage.output_tokens == sim.bill[0].usage["output_tokens"]

    wire = httpx2.post(
        f"{sim.base_url}/v1/messages",
        headers={"x-api-key": "test"},
        json={"model": MODEL, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert wire.headers["content-type"].startswith("text/event-stream")
    frames = [frame for frame in wire.text.split("\n\n") if frame.strip()]
    assert all(frame.startswith("event: ") and "\ndata: " in frame for frame in frames)


def test_count_tokens_equals_the_input_of_a_create(client, sim):
    params = {
        "model": MODEL,
        "system": "You are terse.",
        "tools": [{"name": "lookup", "description": "Find a thing", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Count me, please."}],
    }
    counted = client.messages.count_tokens(**params).input_tokens
    assert counted == sim.count_tokens(params)
    assert client.messages.create(max_tokens=10, **params).usage.input_tokens == counted
    # Newer tokenizers count more: the same text costs more tokens on a 5.x model.
    assert counted > client.messages.count_tokens(**{**params, "model": HAIKU_45}).input_tokens


def test_tool_use_round_trip_keeps_the_question_tag(client):
    tools = [{
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                         "required": ["city", "days"]},
    }]
    question = "Use the get_weather tool for Paris"
    first = ask(client, question, tools=tools)
    assert first.stop_reason == "tool_use"
    tool_use = first.content[-1]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": f"sim-{answer_tag(question)}", "days": 1}
    follow_up = ask(client, tools=tools, messages=[
        {"role": "user", "content": question},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}]},
    ])
    assert follow_up.stop_reason == "end_turn"
    assert f"q={answer_tag(question)}" in follow_up.content[0].text
    with client.messages.stream(model=MODEL, max_tokens=300, tools=tools,
                                messages=[{"role": "user", "content": question}]) as stream:
        assert stream.get_final_message().content[-1].input == tool_use.input


def test_concurrent_requests(sim):
    client = make_client(sim.base_url)
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                ask(client, f"worker {n} question {i}", max_tokens=50)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({line.response_id for line in sim.bill}) == 80


def test_keep_alive_latency_and_generation_speed(client, sim):
    for _ in range(3):
        ask(client, max_tokens=20)
    assert sim.connections_accepted == 1
    sim.configure(latency_s=0.1)
    started = time.monotonic()
    ask(client, max_tokens=20)
    assert time.monotonic() - started >= 0.1
    sim.configure(latency_s=0.0, output_tokens_per_s=1000)
    started = time.monotonic()
    list(ask(client, "Take your time [sim:output_tokens=100]", stream=True))
    assert time.monotonic() - started >= 0.09
    with pytest.raises(ValueError, match="unknown settings"):
        sim.configure(speed=2)


def test_request_log_hides_credentials(client, sim):
    ask(client, "logged")
    [entry] = sim.requests
    assert (entry.method, entry.path, entry.status) == ("POST", "/v1/messages", 200)
    assert entry.body["messages"][0]["content"] == "logged"
    assert "authorization" not in entry.headers and "x-api-key" not in entry.headers
    assert entry.headers["anthropic-version"]


# -------------------------------------------------------------- validation


def post_raw(sim, body, headers=None, path="/v1/messages") -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(f"{sim.base_url}{path}", content=content,
                       headers={"x-api-key": "test", "content-type": "application/json", **(headers or {})})


def user(text="hi"):
    return {"role": "user", "content": text}


def assistant(text="ok"):
    return {"role": "assistant", "content": text}


def cached(text, ttl="5m"):
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}


BASE = {"model": MODEL, "max_tokens": 10, "messages": [user()]}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}

INVALID_REQUESTS = [
    ({"model": None}, "model: Field required"),
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 1"),
    ({"max_tokens": 0}, "0 is only allowed to pre-warm the prompt cache"),
    ({"max_tokens": 10**6}, "maximum allowed number of output tokens"),
    ({"messages": []}, "at least one message is required"),
    ({"messages": [assistant()]}, 'first message must use the "user" role'),
    ({"messages": [user(), user()]}, "roles must alternate"),
    ({"messages": [user(""), assistant()]}, "messages.0: all messages must have non-empty content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"messages": [user(), {"role": "assistant", "content": [TOOL_USE]}, user("no result")]},
     "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]},
     "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"),
    ({"messages": [user(), {"role": "assistant", "content": [TOOL_USE]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
                   assistant(),
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}]},
     "messages.4.content.0: unexpected `tool_use_id`"),
    ({"system": [cached("a"), cached("b"), cached("c"), cached("d")], "cache_control": {"type": "ephemeral"}},
     "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"system": [cached("a", ttl="10m")]}, "system.0.cache_control.ttl: Input should be '5m' or '1h'"),
    ({"system": [{"type": "text", "text": "a", "cache_control": {"type": "persistent"}}]},
     "system.0.cache_control.type"),
    ({"system": [cached("a", "5m"), cached("b", "1h")]}, "system.1.cache_control: a cache_control block with ttl='1h'"),
    ({"system": [cached("a", "5m")], "cache_control": {"type": "ephemeral", "ttl": "1h"}},
     "cache_control: a cache_control block with ttl='1h' must not come after"),
    ({"temperature": 2}, "temperature"),
    ({"tools": [{"name": "t", "input_schema": {"type": "object"}}] * 2}, "Tool names must be unique"),
    ({"tools": [{"name": "t", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "u"}},
     "tool_choice.name"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID_REQUESTS)
def test_invalid_requests_are_400_with_a_useful_message(sim, changes, message):
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    response = post_raw(sim, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert error["request_id"] == response.headers["request-id"]
    assert not sim.bill


def test_invalid_json_and_unknown_routes(sim):
    assert post_raw(sim, b"{not json").json()["error"]["message"] == "The request body is not valid JSON."
    assert post_raw(sim, {}, path="/v1/nope").status_code == 404


def test_unknown_model_is_404_and_errors_map_to_sdk_exceptions(client, sim):
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(client, model="claude-mythos-5-2")
    assert caught.value.body["error"]["message"] == "model: claude-mythos-5-2"
    with pytest.raises(anthropic.BadRequestError):
        ask(client, messages=[])
    for headers in ({}, {"x-api-key": ""}):
        response = httpx2.post(f"{sim.base_url}/v1/messages", json=BASE, headers=headers)
        assert (response.status_code, response.json()["error"]["type"]) == (401, "authentication_error")
    assert httpx2.post(f"{sim.base_url}/v1/messages", json=BASE, headers={"authorization": "Bearer k"}).status_code == 200
    assert httpx2.post(f"{sim.base_url}/v1/messages", json=BASE, headers={"x-api-key": "k"}).status_code == 200


def test_max_tokens_zero_warms_the_cache_without_output(client, sim):
    system = [cached(long_text(1000))]
    warm = ask(client, max_tokens=0, system=system)
    assert (warm.content, warm.usage.output_tokens, warm.stop_reason) == ([], 0, "max_tokens")
    assert warm.usage.cache_creation_input_tokens > 1024
    assert ask(client, system=system).usage.cache_read_input_tokens == warm.usage.cache_creation_input_tokens


# ------------------------------------------------------------ prompt cache


def test_explicit_5m_breakpoint_writes_then_reads(client, sim):
    system = [cached(long_text(1200))]
    messages = [user("First question")]
    total = sim.count_tokens({"model": MODEL, "system": system, "messages": messages})
    after_breakpoint = sim.count_tokens({"model": MODEL, "messages": messages})
    prefix = total - after_breakpoint
    assert prefix >= 1024

    first = ask(client, system=system, messages=messages)
    assert usage_tuple(first.usage) == (after_breakpoint, prefix, 0, 0)
    second = ask(client, system=system, messages=messages)
    assert usage_tuple(second.usage) == (after_breakpoint, 0, 0, prefix)
    assert second.usage.cache_creation_input_tokens == 0
    # A different prefix (one character) misses.
    changed = ask(client, system=[cached(long_text(1200) + "!")], messages=messages)
    assert changed.usage.cache_read_input_tokens == 0


def test_1h_breakpoint_on_tools_and_5m_on_system_split_the_write(client, sim):
    tools = [{"name": "search", "description": long_text(900, "tool"), "input_schema": {"type": "object"},
              "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    system = [cached(long_text(900, "sys"), "5m")]
    messages = [user("Go")]
    tools_tokens = sim.count_tokens({"model": MODEL, "tools": tools, "messages": messages}) - sim.count_tokens(
        {"model": MODEL, "messages": messages})
    system_tokens = sim.count_tokens({"model": MODEL, "system": system, "messages": messages}) - sim.count_tokens(
        {"model": MODEL, "messages": messages})
    first = ask(client, tools=tools, system=system, messages=messages)
    assert usage_tuple(first.usage)[1:] == (system_tokens, tools_tokens, 0)
    # Same tools, new system: the 1h tools prefix is read, the system rewritten.
    other_system = [cached(long_text(900, "other"), "5m")]
    second = ask(client, tools=tools, system=other_system, messages=messages)
    assert second.usage.cache_read_input_tokens == tools_tokens
    assert second.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert second.usage.cache_creation.ephemeral_5m_input_tokens > 0


def test_automatic_breakpoint_follows_the_conversation(client, sim):
    automatic = {"type": "ephemeral", "ttl": "5m"}
    turn1 = [user(long_text(1200))]
    first = ask(client, messages=turn1, cache_control=automatic)
    total1 = sim.count_tokens({"model": MODEL, "messages": turn1})
    assert usage_tuple(first.usage) == (0, total1, 0, 0)

    turn2 = turn1 + [{"role": "assistant", "content": first.content[0].text}, user("And then?")]
    second = ask(client, messages=turn2, cache_control=automatic)
    total2 = sim.count_tokens({"model": MODEL, "messages": turn2})
    assert usage_tuple(second.usage) == (0, total2 - total1, 0, total1)


def test_entries_expire_on_the_shared_clock_and_hits_refresh_them(client, shared_clock):
    five_minutes = [cached(long_text(1200))]
    one_hour = [cached(long_text(1200, "hour"), "1h")]
    ask(client, system=five_minutes)
    ask(client, system=one_hour)

    shared_clock(200)
    assert ask(client, system=five_minutes).usage.cache_read_input_tokens > 0  # refreshed at t=200
    shared_clock(200)  # t=400: 400 s after the write but only 200 s after the hit
    assert ask(client, system=five_minutes).usage.cache_read_input_tokens > 0
    shared_clock(301)  # t=701: 301 s idle
    expired = ask(client, system=five_minutes)
    assert (expired.usage.cache_read_input_tokens, expired.usage.cache_creation.ephemeral_5m_input_tokens > 0) == (0, True)
    assert ask(client, system=one_hour).usage.cache_read_input_tokens > 0
    shared_clock(3601)
    assert ask(client, system=one_hour).usage.cache_read_input_tokens == 0


def test_prefixes_below_the_model_minimum_are_not_cached(client, sim):
    short = [cached(long_text(300))]
    first = ask(client, system=short)
    assert first.usage.cache_creation_input_tokens == 0
    assert first.usage.input_tokens == sim.count_tokens({"model": MODEL, "system": short, "messages": [user(
        "What is prompt caching?")]})
    assert ask(client, system=short).usage.cache_read_input_tokens == 0
    assert sim.cache_minimum_tokens[MODEL] == 1024 and sim.models.cache_minimum("claude-haiku-5-5") == 2048
    sim.cache_minimum_tokens[MODEL] = 100
    assert ask(client, system=short).usage.cache_creation_input_tokens > 0


def test_four_breakpoints_work_and_model_switch_misses(client):
    system = [cached(long_text(400, f"part{i}")) for i in range(4)]
    first = ask(client, system=system)
    assert first.usage.cache_creation_input_tokens > 1024
    assert ask(client, system=system, model="claude-opus-5-5").usage.cache_read_input_tokens == 0
    assert ask(client, system=system).usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


# ----------------------------------------------------------------- batches


def batch_requests(*custom_ids: str, **params):
    params.setdefault("model", HAIKU_45)
    params.setdefault("max_tokens", 100)
    return [{"custom_id": cid, "params": {**params, "messages": [user(f"Question {cid}")]}} for cid in custom_ids]


def test_batch_lifecycle_results_and_half_price(client, sim):
    sim.batch_ready_after_polls = 2
    batch = client.messages.batches.create(requests=batch_requests("a", "b", "c"))
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    assert batch.results_url is None
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.model_dump() == {"canceled": 0, "errored": 0, "expired": 0, "processing": 0, "succeeded": 3}
    assert ended.results_url == f"{sim.base_url}/v1/messages/batches/{batch.id}/results"

    results = {item.custom_id: item.result for item in client.messages.batches.results(batch.id)}
    assert set(results) == {"a", "b", "c"}
    message = results["b"].message
    assert message.usage.service_tier == "batch"
    assert f"q={answer_tag('Question b')}" in message.content[0].text
    assert sim.batches[batch.id].status == "ended" and len(sim.batches[batch.id].requests) == 3

    line = next(line for line in sim.bill if line.custom_id == "b")
    assert (line.batch, line.batch_id, line.response_id) == (True, batch.id, message.id)
    assert line.cost_usd == pytest.approx(0.5 * hand_priced_cost(message.usage, HAIKU_45_PRICES))


def test_batch_errored_results_and_list_pagination(client, sim):
    sim.fail_batch_requests("flaky", error_type="overloaded_error")
    requests = batch_requests("ok", "flaky") + [{"custom_id": "bad", "params": {"model": HAIKU_45, "messages": [user()]}}]
    first = client.messages.batches.create(requests=requests)
    assert first.request_counts.succeeded == 1 and first.request_counts.errored == 2
    results = {item.custom_id: item.result for item in client.messages.batches.results(first.id)}
    assert results["flaky"].error.error.type == "overloaded_error"
    assert "max_tokens: Field required" in results["bad"].error.error.message
    assert [line.custom_id for line in sim.bill] == ["ok"]  # errors are not billed
    retry = client.messages.batches.create(requests=batch_requests("flaky"))  # the failure was for one time
    assert retry.request_counts.succeeded == 1

    third = client.messages.batches.create(requests=batch_requests("x"))
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == [third.id, retry.id] and page.has_more
    assert (page.first_id, page.last_id) == (third.id, retry.id)
    assert [b.id for b in client.messages.batches.list(limit=2)] == [third.id, retry.id, first.id]  # auto-paging
    assert [b.id for b in client.messages.batches.list(before_id=first.id, limit=1).data] == [retry.id]


def test_batch_cancel_expiry_and_delete(client, sim, shared_clock):
    sim.batch_ready_after_polls = 4
    batch = client.messages.batches.create(requests=batch_requests("a", "b", "c", "d"))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        list(client.messages.batches.results(batch.id))  # this retrieve is poll 1
    client.messages.batches.retrieve(batch.id)  # poll 2: half the requests are done
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    canceled = client.messages.batches.retrieve(batch.id)
    assert canceled.processing_status == "ended"
    assert (canceled.request_counts.succeeded, canceled.request_counts.canceled) == (2, 2)
    assert {item.result.type for item in client.messages.batches.results(batch.id)} == {"succeeded", "canceled"}

    late = client.messages.batches.create(requests=batch_requests("e", "f"))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(late.id)
    shared_clock(24 * 3600 + 1)
    expired = client.messages.batches.retrieve(late.id)
    assert expired.request_counts.expired == 2 and expired.processing_status == "ended"
    assert client.messages.batches.delete(late.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(late.id)


# ------------------------------------------------------------------ faults


def test_status_faults_map_to_sdk_errors_and_bill_nothing(client, sim):
    for kind, error_class in [("429", anthropic.RateLimitError), ("529", anthropic.OverloadedError),
                              ("500", anthropic.InternalServerError), ("400", anthropic.BadRequestError)]:
        sim.inject_faults(kind)
        with pytest.raises(error_class) as caught:
            ask(client)
        assert caught.value.status_code == int(kind)
    sim.inject_faults("429", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["retry-after-ms"] == "7000"
    assert not sim.bill
    assert ask(client).stop_reason == "end_turn"


def test_sdk_retries_through_faults_without_sleeping(sim):
    ask(make_client(sim.base_url))  # warm up (the tokenizer loads on the first answer: up to a second under load)
    sim.reset()
    sim.inject_faults("529", count=2)
    started = time.monotonic()
    assert ask(make_client(sim.base_url, max_retries=2)).stop_reason == "end_turn"
    # retry-after-ms: 1, not the SDK's own backoff (at least ~1.1 s over two retries): a bound
    # between the two, with room for a loaded machine
    assert time.monotonic() - started < 0.8
    assert [entry.status for entry in sim.requests] == [529, 529, 200]
    assert len(sim.bill) == 1


def test_stream_overloaded_breaks_the_stream_and_bills_nothing(client, sim):
    sim.inject_faults("stream_overloaded")
    ask(client, "not streamed")  # a plain request leaves the fault waiting
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=MODEL, max_tokens=100, messages=[user("stream")]) as stream:
            for _ in stream.text_stream:
                pass
    assert caught.value.status_code == 200 and caught.value.type == "overloaded_error"
    assert len(sim.bill) == 1


def test_timeout_reset_and_random_faults(client, sim):
    sim.inject_faults("timeout", seconds=1.0)
    with pytest.raises(anthropic.APITimeoutError):
        ask(make_client(sim.base_url, timeout=0.2))
    sim.inject_faults("reset")
    with pytest.raises(anthropic.APIConnectionError):
        ask(client)
    sim.fault_rate(1.0, kinds=["500"], seed=1)
    with pytest.raises(anthropic.InternalServerError):
        ask(client)
    sim.fault_rate(0.0)
    assert ask(client).stop_reason == "end_turn"
    sim.fault_rate(0.5, kinds=["429", "529"], seed=3)
    outcomes = []
    for _ in range(20):
        try:
            ask(client, max_tokens=20)
            outcomes.append("ok")
        except anthropic.APIStatusError as error:
            outcomes.append(error.status_code)
    assert {"ok", 429, 529} <= set(outcomes)


# ------------------------------------------------------------------ billing


def hand_priced_cost(usage, prices: dict[str, float]) -> float:
    return (
        usage.input_tokens * prices["input"]
        + usage.cache_creation.ephemeral_5m_input_tokens * prices["cache_write_5m"]
        + usage.cache_creation.ephemeral_1h_input_tokens * prices["cache_write_1h"]
        + usage.cache_read_input_tokens * prices["cache_read"]
        + usage.output_tokens * prices["output"]
    ) / 1_000_000


def test_bill_lines_price_every_token_class(client, sim):
    tools = [{"name": "t", "description": long_text(3000, "tool"), "input_schema": {"type": "object"},
              "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    system = [cached(long_text(3000, "sys"))]
    responses = [ask(client, model=HAIKU_45, tools=tools, system=system) for _ in range(2)]
    assert responses[0].usage.cache_creation.ephemeral_1h_input_tokens > 0
    assert responses[0].usage.cache_creation.ephemeral_5m_input_tokens > 0
    assert responses[1].usage.cache_read_input_tokens > 0
    for response, line in zip(responses, sim.bill, strict=True):
        assert line.cost_usd == pytest.approx(hand_priced_cost(response.usage, HAIKU_45_PRICES))
    assert sim.bill_total_usd() == pytest.approx(sum(line.cost_usd for line in sim.bill))


# -------------------------------------------------- control endpoints + CLI


def test_cli_process_and_control_endpoints(tmp_path, monkeypatch):
    clock_file = tmp_path / "clock"
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(clock_file))
    with SimProcess.start("--batch-ready-after-polls", "1", env=dict(os.environ)) as process:
        client, control = make_client(process.base_url), process.control
        assert control.healthy()
        message = ask(client, "Across processes")
        bill = control.bill()
        assert [line["response_id"] for line in bill["lines"]] == [message.id]
        assert bill["total_usd"] == pytest.approx(bill["lines"][0]["cost_usd"]) and bill["total_usd"] > 0

        control.inject_faults("529")
        with pytest.raises(anthropic.OverloadedError):
            ask(client)
        log = control.requests()
        assert [entry["status"] for entry in log["requests"]] == [200, 529]
        assert control.requests(since=log["next"])["requests"] == []

        batch = client.messages.batches.create(requests=batch_requests("r1", "r2"))
        [listed] = control.batches().values()
        assert (listed["id"], listed["processing_status"]) == (batch.id, "in_progress")
        assert [r["custom_id"] for r in listed["requests"]] == ["r1", "r2"]

        system = [cached(long_text(1200))]
        assert control.configure(cache_minimum_tokens={MODEL: 1000})["cache_minimum_tokens"][MODEL] == 1000
        ask(client, system=system)
        assert ask(client, system=system).usage.cache_read_input_tokens > 0
        clock.advance(301)  # the child process reads the same clock file
        assert ask(client, system=system).usage.cache_read_input_tokens == 0

        control.fault_rate(1.0, kinds=["500"])
        with pytest.raises(anthropic.InternalServerError):
            ask(client)
        control.reset()
        assert control.bill() == {"lines": [], "total_usd": 0}
        assert control.batches() == {} and ask(client).stop_reason == "end_turn"
    assert process.process.returncode == 0
