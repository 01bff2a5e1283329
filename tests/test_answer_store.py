"""A new answer enters the response cache just after it is returned
(engine.ANSWER_STORE_DELAY_SECONDS), or before the next lookup, or when the
engine closes. Nothing is lost on the way, and a failure to store one answer
costs that cache entry only: it never fails another caller's request."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conftest import make_config
from mcp_tars.engine import CompletionRequest
from mcp_tars.server import open_state

pytestmark = pytest.mark.anyio


def _state(tmp_path):
    return open_state(make_config(), str(tmp_path / "tars.db"))


async def test_an_answer_is_a_hit_for_the_very_next_identical_request(tmp_path, api_env):
    state = _state(tmp_path)
    try:
        first = await state.engine.complete(CompletionRequest(prompt="What is the capital of Peru?"))
        again = await state.engine.complete(CompletionRequest(prompt="What is the capital of Peru?"))  # no pause
        assert (first.source, again.source) == ("api", "cache")
        assert again.text == first.text
    finally:
        await state.engine.aclose()
        state.store.close()


async def test_deferred_work_sees_an_answer_returned_a_moment_ago(tmp_path, api_env):
    """defer_task right after the same optimized_complete: answered from the
    cache at no cost, not sent to a batch."""
    state = _state(tmp_path)
    try:
        first = await state.engine.complete(CompletionRequest(prompt="What is the capital of Ghana?"))
        deferred = await state.queue.defer(CompletionRequest(prompt="What is the capital of Ghana?"), priority="normal",
                                           max_wait_seconds=86400, critical=False)
        assert first.source == "api"
        assert deferred["status"] == "succeeded" and deferred["result"]["source"] == "cache"
        assert len(api_env.bill) == 1
    finally:
        await state.engine.aclose()
        state.store.close()


async def test_closing_the_engine_stores_the_answer_returned_just_before(tmp_path, api_env):
    state = _state(tmp_path)
    try:
        await state.engine.complete(CompletionRequest(prompt="What is the capital of Chile?"))
    finally:
        await state.engine.aclose()  # at once: before the delayed store runs
        state.store.close()
    reopened = _state(tmp_path)
    try:
        again = await reopened.engine.complete(CompletionRequest(prompt="What is the capital of Chile?"))
        assert again.source == "cache"
    finally:
        await reopened.engine.aclose()
        reopened.store.close()


def _refuse_answers_mentioning(state, word: str) -> None:
    """A constraint in the database that refuses one answer (sqlite3.IntegrityError, not a StoreError)."""
    state.store.conn.execute(
        f"CREATE TRIGGER refuse_{word} BEFORE INSERT ON response_cache WHEN NEW.query_text LIKE '%{word}%' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a test constraint'); END")


async def test_a_failure_storing_one_answer_never_fails_the_next_request(tmp_path, api_env, caplog):
    state = _state(tmp_path)
    _refuse_answers_mentioning(state, "Bolivia")
    try:
        refused = await state.engine.complete(CompletionRequest(prompt="What is the capital of Bolivia?"))
        assert refused.source == "api"
        # the refused answer is still waiting to be stored: this lookup stores it first
        with caplog.at_level(logging.WARNING, logger="mcp_tars"):
            other = await state.engine.complete(CompletionRequest(prompt="What is the capital of Ecuador?"))
        assert other.source == "api"
        assert any("not added to the response cache" in r.getMessage() for r in caplog.records)
        again = await state.engine.complete(CompletionRequest(prompt="What is the capital of Ecuador?"))
        assert again.source == "cache"
    finally:
        await state.engine.aclose()
        state.store.close()


async def test_a_failure_storing_an_answer_in_the_background_stays_out_of_the_event_loop(tmp_path, api_env):
    loop = asyncio.get_running_loop()
    escaped: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    state = _state(tmp_path)
    _refuse_answers_mentioning(state, "Uruguay")
    try:
        await state.engine.complete(CompletionRequest(prompt="What is the capital of Uruguay?"))
        await asyncio.sleep(0.1)  # the delayed store runs, and fails
        assert not escaped, escaped
        assert not state.engine._pending
    finally:
        loop.set_exception_handler(None)
        await state.engine.aclose()
        state.store.close()


async def test_metrics_lines_are_written_just_after_the_call_and_on_close(tmp_path, api_env):
    import json

    from mcp_tars import metrics

    state = open_state(make_config(monitoring={"metrics_log": "logs/metrics.log"}), str(tmp_path / "tars.db"))
    log_path = tmp_path / "logs" / "metrics.log"
    try:
        await state.engine.complete(CompletionRequest(prompt="What is the capital of Nepal?"))
        await state.engine.complete(CompletionRequest(prompt="What is the capital of Nepal?"))
        await asyncio.sleep(metrics.FLUSH_DELAY_SECONDS * 10)
        lines = [json.loads(line) for line in log_path.read_text().splitlines()]
        assert [line["source"] for line in lines] == ["api", "cache"]
        await state.engine.complete(CompletionRequest(prompt="What is the capital of Oman?"))
    finally:
        await state.engine.aclose()  # at once: the last line is written on close
        state.store.close()
    assert len(log_path.read_text().splitlines()) == 3
