"""SimulatedAnthropic: the simulated API's state and endpoints.

Everything observable lives here (bill, request log, batches, prompt cache,
faults); ``server.py`` only moves bytes. Time always comes from
``mcp_tars.clock.now()`` so a benchmark can advance the shared clock and see
5-minute cache entries expire or batches pass their 24 h deadline.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcp_tars import clock, fastjson

from .answers import answer_tag, compose_answer
from .batches import SimBatch, list_page, validate_batch_requests
from .billing import BillLine, PriceTable
from .errors import APIError, error_body, invalid_request
from .faults import DEFAULT_RANDOM_KINDS, DEFAULT_TIMEOUT_SECONDS, Fault, FaultPlan
from .models import ModelCatalogue
from .prompt import build_prompt
from .prompt_cache import DEFAULT_LOOKBACK_BLOCKS, PromptCache
from .server import IncomingRequest, Reply, SimHTTPServer
from .validation import require_model_id, require_object, validate_message_request

_ID_ALPHABET = string.ascii_letters + string.digits
_STREAM_WORDS_PER_DELTA = 8
_STREAM_WORD = re.compile(r"\S+\s*|\s+")
_BATCH_PATH = re.compile(r"^/v1/messages/batches/(?P<id>[^/]+)(?P<action>/cancel|/results)?$")
_RATE_LIMIT_HEADERS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-tokens-limit": "2000000",
    "anthropic-ratelimit-tokens-remaining": "1999000",
}
_UNLOGGED_HEADERS = ("authorization", "x-api-key")
# Usage fields a message_delta repeats as cumulative totals.
_CUMULATIVE_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
_OVERLOADED = {"type": "overloaded_error", "message": "Overloaded"}
# Settings that POST /_sim/config may change on a running sim.
RUNTIME_SETTINGS = (
    "latency_s",
    "output_tokens_per_s",
    "batch_ready_after_polls",
    "batch_error_rate",
    "cache_minimum_tokens",
)


@dataclass
class SimRequest:
    """One API request as received (control endpoints are not logged)."""

    index: int
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    headers: dict[str, str]  # without credentials
    ts: float
    request_id: str
    status: int | None = None  # filled in once answered


@dataclass
class _BatchFailure:
    outcome: str  # "errored" | "expired"
    error_type: str
    message: str
    remaining: int | None  # None: every time


@dataclass
class _PreparedMessage:
    message: dict[str, Any]
    bill_line: BillLine  # recorded only once the response is delivered


class SimulatedAnthropic:
    """A loopback Anthropic API. See the package docstring for the tour."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        output_tokens_per_s: float | None = None,
        batch_ready_after_polls: int = 0,
        batch_error_rate: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        prices_path: str | Path | None = None,
        cache_minimum_tokens: dict[str, int] | None = None,
        token_factors: dict[str, float] | None = None,
        context_window_tokens: dict[str, int] | None = None,
        cache_lookback_blocks: int = DEFAULT_LOOKBACK_BLOCKS,
        keep_request_bodies: bool = True,
    ) -> None:
        self.latency_s = latency_s
        self.output_tokens_per_s = output_tokens_per_s
        self.batch_ready_after_polls = batch_ready_after_polls
        self.batch_error_rate = batch_error_rate
        self.seed = seed
        self.api_key = api_key  # None: any non-empty key is accepted
        # Long benchmarks send gigabytes of prompts: they can log requests without bodies.
        self.keep_request_bodies = keep_request_bodies
        self.prices = PriceTable.load(prices_path)
        self.models = ModelCatalogue(
            self.prices.models, cache_minimum_tokens=cache_minimum_tokens, token_factors=token_factors,
            context_window_tokens=context_window_tokens,
        )
        self._address = (host, port)
        self._cache = PromptCache(cache_lookback_blocks)
        self._faults = FaultPlan()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None
        self._reset_state()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Listen on the loopback interface; return the base URL."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = SimHTTPServer(self._address, self._handle)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-anthropic", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a "timeout" fault
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "SimulatedAnthropic":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything observable: bill, requests, batches, cache, faults."""
        with self._lock:
            self._reset_state()
            self._cache.clear()
            self._faults.clear()

    def _reset_state(self) -> None:
        self.bill: list[BillLine] = []
        self.requests: list[SimRequest] = []
        self.batches: dict[str, SimBatch] = {}
        self._batch_failures: dict[str, _BatchFailure] = {}
        self._batch_sequence = 0
        self._ids = random.Random(f"ids:{self.seed}")
        self._batch_rng = random.Random(f"batch-errors:{self.seed}")

    # ---------------------------------------------------------------- public API

    answer_tag = staticmethod(answer_tag)

    @property
    def cache_minimum_tokens(self) -> dict[str, int]:
        """Minimum cacheable prefix per model alias (mutable: tune it live)."""
        return self.models.cache_minimum_tokens

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive clients reuse one)."""
        return self._server.connections_accepted if self._server is not None else 0

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime settings (see RUNTIME_SETTINGS); returns them all.
        ``cache_minimum_tokens`` is merged into the current table."""
        unknown = set(settings) - set(RUNTIME_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; expected some of {list(RUNTIME_SETTINGS)}")
        for name, value in settings.items():
            if name == "cache_minimum_tokens":
                self.cache_minimum_tokens.update(value)
            else:
                setattr(self, name, value)
        return {name: getattr(self, name) for name in RUNTIME_SETTINGS}

    def bill_total_usd(self) -> float:
        with self._lock:
            return math.fsum(line.cost_usd for line in self.bill)

    def count_tokens(self, body: dict[str, Any]) -> int:
        """What ``POST /v1/messages/count_tokens`` would answer for ``body``."""
        return self._count_tokens(body)["input_tokens"]

    def inject_faults(
        self,
        kind: str,
        count: int = 1,
        *,
        retry_after: float = 0.0,
        seconds: float = DEFAULT_TIMEOUT_SECONDS,
        path: str = "/v1/",
        message: str | None = None,
    ) -> None:
        """Make the next ``count`` matching API requests fail with ``kind``.

        kinds: "429", "529", "500", "400" (error responses; 429/529 carry
        ``retry-after: retry_after``), "stream_overloaded" (the next streaming
        request gets a 200 stream that breaks with an overloaded_error event
        after its first text delta), "timeout" (the answer is delayed by
        ``seconds``), "reset" (the connection is dropped with a TCP RST),
        "cut_body" (a normal answer whose body breaks off half-way: headers
        and half the body, then a TCP RST; e.g. a batch results download).
        ``path`` limits the fault to requests whose path starts with it.
        """
        self._faults.inject(
            Fault(kind, retry_after=retry_after, seconds=seconds, path=path, message=message), count
        )

    def fault_rate(
        self,
        rate: float,
        kinds: list[str] | tuple[str, ...] = DEFAULT_RANDOM_KINDS,
        seed: int = 0,
        *,
        retry_after: float = 0.0,
        seconds: float = DEFAULT_TIMEOUT_SECONDS,
        path: str = "/v1/",
    ) -> None:
        """Fail each API request with probability ``rate`` (0 turns it off), kind drawn from ``kinds``."""
        faults = [Fault(kind, retry_after=retry_after, seconds=seconds, path=path) for kind in kinds]
        self._faults.set_rate(rate, faults, seed)

    def fail_batch_requests(
        self,
        *custom_ids: str,
        outcome: str = "errored",
        error_type: str = "api_error",
        message: str = "Simulated batch request failure.",
        times: int | None = 1,
    ) -> None:
        """Give these custom_ids an ``errored`` (or ``expired``) result in the next ``times`` batches
        that contain them (None: always), to exercise resubmission."""
        if outcome not in ("errored", "expired"):
            raise ValueError(f"outcome must be 'errored' or 'expired', got {outcome!r}")
        with self._lock:
            for custom_id in custom_ids:
                self._batch_failures[custom_id] = _BatchFailure(outcome, error_type, message, times)

    # ------------------------------------------------------------------- routing

    def _handle(self, request: IncomingRequest) -> Reply:
        if request.path.startswith("/_sim/"):
            return self._handle_control(request)
        request_id = self._new_id("req_")
        entry = None
        try:
            body = _parse_json(request.body) if request.body else None
            entry = self._log_request(request, body, request_id)
            self._authenticate(request.headers)
            streaming = request.path == "/v1/messages" and isinstance(body, dict) and body.get("stream") is True
            fault = self._faults.take(request.path, streaming)
            kind = fault.kind if fault is not None else None
            if kind == "reset":
                reply = Reply(reset=True)
            elif kind in ("429", "529", "500", "400"):
                reply = self._fault_reply(fault, request_id)
            else:
                self._sleep(fault.seconds if kind == "timeout" else 0.0)
                self._sleep(self.latency_s)
                reply = self._route(request, body, break_stream=kind == "stream_overloaded")
                reply.cut_body = kind == "cut_body"
        except APIError as error:
            reply = _json_reply(error.body(request_id), error.status)
        except Exception as error:  # a bug in the sim: answer as the API would, and say what broke
            traceback.print_exc()
            reply = _json_reply(error_body("api_error", f"simulator error: {error!r}", request_id), 500)
        if entry is not None:
            entry.status = reply.status
        reply.headers["request-id"] = request_id
        reply.headers.update(_RATE_LIMIT_HEADERS)
        return reply

    def _route(self, request: IncomingRequest, body: Any, *, break_stream: bool) -> Reply:
        method, path = request.method, request.path
        if method == "POST" and path == "/v1/messages":
            return self._messages(body, break_stream=break_stream)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return _json_reply(self._count_tokens(body))
        if method == "GET" and path == "/v1/models":
            return _json_reply(self.models.list_page(request.query))
        if method == "GET" and path.startswith("/v1/models/"):
            return _json_reply(self.models.info(path[len("/v1/models/") :]))
        if path == "/v1/messages/batches":
            if method == "POST":
                return _json_reply(self._create_batch(body).to_wire(request.base_url))
            if method == "GET":
                return _json_reply(self._list_batches(request))
        match = _BATCH_PATH.match(path)
        if match:
            batch, action = self._get_batch(match["id"]), match["action"]
            if method == "GET" and action is None:
                return _json_reply(self._retrieve_batch(batch).to_wire(request.base_url))
            if method == "DELETE" and action is None:
                return _json_reply(self._delete_batch(batch))
            if method == "POST" and action == "/cancel":
                return _json_reply(self._cancel_batch(batch).to_wire(request.base_url))
            if method == "GET" and action == "/results":
                return self._batch_results(batch)
        raise APIError("not_found_error", f"Not found: {method} {path}")

    def _authenticate(self, headers: dict[str, str]) -> None:
        key = headers.get("x-api-key") or ""
        authorization = headers.get("authorization", "")
        if not key and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        if not key:
            raise APIError("authentication_error", "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise APIError("authentication_error", "invalid x-api-key")

    def _fault_reply(self, fault: Fault, request_id: str) -> Reply:
        error = fault.as_api_error()
        reply = _json_reply(error.body(request_id), error.status)
        if fault.kind in ("429", "529"):
            reply.headers["retry-after"] = _format_seconds(fault.retry_after)
            # The SDK ignores "retry-after: 0" and falls back to its own backoff
            # (0.5 s and up); it honours retry-after-ms, so send at least 1 ms.
            reply.headers["retry-after-ms"] = str(max(1, round(fault.retry_after * 1000)))
        return reply

    # ------------------------------------------------------------------ messages

    def _messages(self, body: Any, *, break_stream: bool) -> Reply:
        prepared = self._create_message(body, batch=False)
        if body.get("stream"):
            return Reply(
                content_type="text/event-stream; charset=utf-8",
                events=self._stream_events(prepared, break_stream=break_stream),
            )
        self._sleep(self._output_seconds(prepared.message["usage"]["output_tokens"]))
        self._record_bill(prepared.bill_line)
        return _json_reply(prepared.message)

    def _create_message(
        self, body: Any, *, batch: bool, batch_id: str | None = None, custom_id: str | None = None
    ) -> _PreparedMessage:
        """Validate, run the prompt cache, compose the answer and price it (not yet billed)."""
        body = require_object(body)
        model_id = require_model_id(body)
        alias = self._resolve_model(model_id)
        validate_message_request(body, model_id=model_id, max_output_tokens=self.models.max_output_tokens(alias))
        if batch and body.get("stream"):
            raise invalid_request("stream: streaming is not supported for requests in a Message Batch")
        factor = self.models.token_factor(alias)
        prompt = build_prompt(body, factor)
        window = self.models.context_window(alias)
        if prompt.total_tokens > window:  # the real API's 400, before anything is billed
            raise invalid_request(f"prompt is too long: {prompt.total_tokens} tokens > {window} maximum")
        if body["max_tokens"] == 0 and not prompt.breakpoints:
            raise invalid_request(
                "max_tokens: 0 is only allowed to pre-warm the prompt cache: add a cache_control "
                "breakpoint, or ask for at least 1 token"
            )
        now = clock.now()
        outcome = self._cache.apply(alias, prompt, self.models.cache_minimum(alias), now)
        answer = compose_answer(
            body, token_factor=factor, seed=self.seed, new_tool_use_id=lambda: self._new_id("toolu_")
        )
        usage: dict[str, Any] = {
            "input_tokens": outcome.input_tokens,
            "cache_creation_input_tokens": outcome.cache_creation_input_tokens,
            "cache_read_input_tokens": outcome.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": outcome.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": outcome.ephemeral_1h_input_tokens,
            },
            "output_tokens": answer.output_tokens,
            "service_tier": "batch" if batch else "standard",
        }
        if body.get("inference_geo"):
            usage["inference_geo"] = body["inference_geo"]
        message = {
            "id": self._new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": answer.content,
            "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence,
            "usage": usage,
        }
        bill_line = BillLine(
            response_id=message["id"],
            model=model_id,
            usage=usage,
            cost_usd=self.prices.cost_usd(alias, usage, when=now, batch=batch),
            batch=batch,
            ts=now,
            batch_id=batch_id,
            custom_id=custom_id,
        )
        return _PreparedMessage(message, bill_line)

    def _stream_events(self, prepared: _PreparedMessage, *, break_stream: bool):
        """SSE events for one message. Billed when message_stop is sent; a stream
        broken by a ``stream_overloaded`` fault (or abandoned by the client) bills nothing."""
        message = prepared.message
        usage = message["usage"]
        output_tokens = usage["output_tokens"]
        deltas = [_text_deltas(block["text"]) if block["type"] == "text" else [] for block in message["content"]]
        pause = self._output_seconds(output_tokens) / max(1, sum(len(d) for d in deltas))
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {**usage, "output_tokens": min(1, output_tokens)}
        yield _event("message_start", message=start)
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield _event("content_block_start", index=index, content_block={"type": "text", "text": ""})
                if index == 0:
                    yield _event("ping")
                for text in deltas[index]:
                    self._sleep(pause)
                    yield _event("content_block_delta", index=index, delta={"type": "text_delta", "text": text})
                    if break_stream:
                        break
                if break_stream:  # fail mid-way: after the first text delta
                    yield _event("error", error=_OVERLOADED)
                    return
            elif block["type"] == "thinking":  # the text, then the signature just before the block stops
                yield _event("content_block_start", index=index, content_block={**block, "thinking": "", "signature": ""})
                yield _event("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": block["thinking"]})
                yield _event("content_block_delta", index=index, delta={"type": "signature_delta", "signature": block["signature"]})
            else:  # tool_use: the input arrives as JSON fragments
                yield _event("content_block_start", index=index, content_block={**block, "input": {}})
                arguments = json.dumps(block["input"])
                for fragment in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    delta = {"type": "input_json_delta", "partial_json": fragment}
                    yield _event("content_block_delta", index=index, delta=delta)
            yield _event("content_block_stop", index=index)
        if break_stream:  # no text to break in: fail before the final usage
            yield _event("error", error=_OVERLOADED)
            return
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        yield _event("message_delta", delta=delta, usage={key: usage[key] for key in _CUMULATIVE_USAGE})
        self._record_bill(prepared.bill_line)
        yield _event("message_stop")

    def _count_tokens(self, body: Any) -> dict[str, int]:
        body = require_object(body)
        model_id = require_model_id(body)
        alias = self._resolve_model(model_id)
        validate_message_request(body, model_id=model_id, count_only=True)
        return {"input_tokens": build_prompt(body, self.models.token_factor(alias)).total_tokens}

    def _resolve_model(self, model_id: str) -> str:
        alias = self.models.resolve(model_id)
        if alias is None:
            raise APIError("not_found_error", f"model: {model_id}")
        return alias

    # ------------------------------------------------------------------- batches

    def _create_batch(self, body: Any) -> SimBatch:
        requests = validate_batch_requests(body)
        with self._lock:
            self._batch_sequence += 1
            batch = SimBatch(self._new_id("msgbatch_"), requests, clock.now(), self._batch_sequence)
            self.batches[batch.id] = batch
        if self.batch_ready_after_polls <= 0:
            self._finish_batch(batch)
        return batch

    def _get_batch(self, batch_id: str) -> SimBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise APIError("not_found_error", f"message_batch: {batch_id} not found")
        return batch

    def _retrieve_batch(self, batch: SimBatch) -> SimBatch:
        with self._lock:
            batch.polls += 1
        if batch.processing_status == "ended":
            return batch
        if clock.now() >= batch.expires_at:
            self._finish_batch(batch, processed=self._processed_so_far(batch), unprocessed="expired")
        elif batch.processing_status == "canceling":
            self._finish_batch(batch, processed=self._processed_so_far(batch), unprocessed="canceled")
        elif batch.polls >= self.batch_ready_after_polls:
            self._finish_batch(batch)
        return batch

    def _cancel_batch(self, batch: SimBatch) -> SimBatch:
        with self._lock:
            if batch.processing_status == "in_progress":
                batch.processing_status = "canceling"
                batch.cancel_initiated_at = clock.now()
        return batch

    def _delete_batch(self, batch: SimBatch) -> dict[str, str]:
        if batch.processing_status != "ended":
            raise invalid_request(f"Message batch {batch.id} is still {batch.processing_status}; cancel it first.")
        with self._lock:
            self.batches.pop(batch.id, None)
        return {"id": batch.id, "type": "message_batch_deleted"}

    def _list_batches(self, request: IncomingRequest) -> dict[str, Any]:
        with self._lock:
            batches = list(self.batches.values())
        page, has_more = list_page(batches, request.query)
        return {
            "data": [batch.to_wire(request.base_url) for batch in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }

    def _batch_results(self, batch: SimBatch) -> Reply:
        if batch.processing_status != "ended":
            raise invalid_request(
                f"Message batch {batch.id} is {batch.processing_status}: results are available once it has ended."
            )
        lines = [{"custom_id": custom_id, "result": result} for custom_id, result in batch.results.items()]
        # Results come in no particular order in the real API: shuffle, so
        # clients that rely on request order fail here rather than in production.
        random.Random(f"{self.seed}:{batch.id}").shuffle(lines)
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return Reply(body=body, content_type="application/x-jsonl")

    def _processed_so_far(self, batch: SimBatch) -> int:
        """How many requests (in order) count as done before a cancel or expiry."""
        if self.batch_ready_after_polls <= 0:
            return len(batch.requests)
        done_polls = batch.polls - 1  # the retrieve that observes the end does not count
        return min(len(batch.requests), len(batch.requests) * done_polls // self.batch_ready_after_polls)

    def _finish_batch(self, batch: SimBatch, processed: int | None = None, unprocessed: str = "canceled") -> None:
        with batch.lock:  # two concurrent retrieves must not process a batch twice
            if batch.processing_status == "ended":
                return
            results: dict[str, dict[str, Any]] = {}
            for index, request in enumerate(batch.requests):
                custom_id = request["custom_id"]
                if processed is not None and index >= processed:
                    results[custom_id] = {"type": unprocessed}
                else:
                    results[custom_id] = self._batch_result(batch, request)
            with self._lock:
                batch.results = results
                batch.processing_status = "ended"
                batch.ended_at = clock.now()

    def _batch_result(self, batch: SimBatch, request: dict[str, Any]) -> dict[str, Any]:
        custom_id = request["custom_id"]
        failure = self._take_batch_failure(custom_id)
        if failure is not None and failure.outcome == "expired":
            return {"type": "expired"}
        if failure is not None:
            error = APIError(failure.error_type, failure.message)
        elif self.batch_error_rate and self._batch_rng.random() < self.batch_error_rate:
            error = APIError("api_error", "Simulated random batch request failure.")
        else:
            try:
                prepared = self._create_message(request["params"], batch=True, batch_id=batch.id, custom_id=custom_id)
            except APIError as rejected:
                error = rejected
            else:
                self._record_bill(prepared.bill_line)
                return {"type": "succeeded", "message": prepared.message}
        return {"type": "errored", "error": error.body(self._new_id("req_"))}

    def _take_batch_failure(self, custom_id: str) -> _BatchFailure | None:
        with self._lock:
            failure = self._batch_failures.get(custom_id)
            if failure is None:
                return None
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._batch_failures[custom_id]
            return failure

    # ------------------------------------------------------- control endpoints

    def _handle_control(self, request: IncomingRequest) -> Reply:
        """``/_sim/*``: drive and inspect a sim running in another process."""
        try:
            body = _parse_json(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            route = (request.method, request.path)
            if route == ("GET", "/_sim/health"):
                return _json_reply({"ok": True})
            if route == ("GET", "/_sim/bill"):
                with self._lock:
                    lines = [asdict(line) for line in self.bill]
                return _json_reply({"lines": lines, "total_usd": self.bill_total_usd()})
            if route == ("GET", "/_sim/requests"):
                since = int(request.query.get("since", 0))
                with self._lock:
                    entries = [asdict(entry) for entry in self.requests[since:]]
                return _json_reply({"requests": entries, "next": since + len(entries)})
            if route == ("GET", "/_sim/batches"):
                return _json_reply({"batches": self._batches_snapshot(request.base_url)})
            if route == ("POST", "/_sim/reset"):
                self.reset()
                return _json_reply({"ok": True})
            if route == ("POST", "/_sim/faults"):
                self._apply_fault_settings(body)
                return _json_reply({"ok": True, "pending": self._faults.pending})
            if route == ("POST", "/_sim/config"):
                return _json_reply(self.configure(**body))
            if route == ("POST", "/_sim/batch_failures"):
                custom_ids = body.pop("custom_ids", [])
                self.fail_batch_requests(*custom_ids, **body)
                return _json_reply({"ok": True})
        except (APIError, TypeError, ValueError) as error:
            return _json_reply({"ok": False, "error": str(error)}, 400)
        return _json_reply({"ok": False, "error": f"unknown control endpoint {request.method} {request.path}"}, 404)

    def _apply_fault_settings(self, settings: dict[str, Any]) -> None:
        """``{"kind": ..., "count": ...}`` -> inject_faults; ``{"rate": ...}`` -> fault_rate."""
        settings = dict(settings)
        if "rate" in settings:
            self.fault_rate(settings.pop("rate"), **settings)
        elif "kind" in settings:
            self.inject_faults(settings.pop("kind"), **settings)
        else:
            raise ValueError('expected {"kind": ..., "count": ...} or {"rate": ..., "kinds": [...]}')

    def _batches_snapshot(self, base_url: str) -> dict[str, Any]:
        with self._lock:
            batches = list(self.batches.values())
        return {
            batch.id: {
                **batch.to_wire(base_url),
                "polls": batch.polls,
                "requests": batch.requests,
                "results": batch.results,
            }
            for batch in batches
        }

    # ------------------------------------------------------------------- helpers

    def _log_request(self, request: IncomingRequest, body: Any, request_id: str) -> SimRequest:
        headers = {name: value for name, value in request.headers.items() if name not in _UNLOGGED_HEADERS}
        with self._lock:
            entry = SimRequest(
                index=len(self.requests),
                method=request.method,
                path=request.path,
                query=request.query,
                body=body if self.keep_request_bodies else None,
                headers=headers,
                ts=clock.now(),
                request_id=request_id,
            )
            self.requests.append(entry)
        return entry

    def _record_bill(self, line: BillLine) -> None:
        with self._lock:
            self.bill.append(line)

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return prefix + "01" + "".join(self._ids.choices(_ID_ALPHABET, k=22))

    def _output_seconds(self, output_tokens: int) -> float:
        return output_tokens / self.output_tokens_per_s if self.output_tokens_per_s else 0.0

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _parse_json(raw: bytes) -> Any:
    try:
        return fastjson.loads(raw)  # strict, as the API is: no NaN or Infinity
    except ValueError:
        raise invalid_request("The request body is not valid JSON.") from None


def _json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(payload).encode())


def _event(event_type: str, **fields: Any) -> bytes:
    """One server-sent event; the ``event:`` line repeats the payload's type, as the API does."""
    data = json.dumps({"type": event_type, **fields})
    return f"event: {event_type}\ndata: {data}\n\n".encode()


def _text_deltas(text: str) -> list[str]:
    words = _STREAM_WORD.findall(text)
    return ["".join(words[i : i + _STREAM_WORDS_PER_DELTA]) for i in range(0, len(words), _STREAM_WORDS_PER_DELTA)]


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
