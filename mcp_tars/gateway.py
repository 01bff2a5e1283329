"""The Anthropic-compatible gateway: the Messages API on loopback, through the same engine and ledger.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 claude
    anthropic.Anthropic(base_url="http://127.0.0.1:8765")

A thin ASGI edge (no framework: every request is one small function, and the
stream relay needs exact control over when bytes go out). What it promises:

- **The body is the client's.** It is parsed to decide and to account, and
  sent upstream as the same bytes unless an enabled lever changed it
  (``engine.plan_forward``: prompt-cache TTLs by default; routing, pruning and
  the semantic cache only when ``gateway`` turns them on). Unknown fields,
  block-form system prompts, mid-conversation system messages, thinking
  blocks and their signatures, ``cache_control`` where the client put it: all
  untouched. Every request header goes upstream verbatim (``anthropic-*``,
  betas, ``x-*``, the credential) except the hop-by-hop ones.
- **Streams are relayed as they arrive**, frame by frame with no buffering;
  ``sse.StreamReader`` reads usage from ``message_start`` / ``message_delta`` on
  the side. A client that goes away mid-stream stops the upstream request, and
  the call still gets its one ledger row with the usage received.
- **Upstream errors pass through unchanged**: status, body and headers
  (``retry-after``, ``x-should-retry``, ``anthropic-ratelimit-*``, ``request-id``).
  The gateway never retries (see ``upstream.py``): the client's own policy
  applies, as it would without us. Our own errors (budget, unreachable API,
  bad request framing) use the API's error shape and statuses the SDKs
  understand (``400`` budget: not retried; ``502``/``504`` upstream: retried).
- **Credentials** (``x-api-key`` or ``Authorization: Bearer``) are forwarded as
  received, never stored or logged; the tenant is a hash of the credential,
  per request, so caches, budgets and ledger rows stay per key.
- **Attribution**: ``gateway.session_headers`` (Claude Code's
  ``x-claude-code-session-id``) give the ledger's session; agent ids go with
  the row's decisions.
- **Batches** pass through with ``results_url`` pointing at the gateway; their
  succeeded results enter the ledger, at the batch rate, while the client
  reads them through the gateway (once per result: the ledger keeps one row
  per response id). Results read directly from the API are not seen.
- ``count_tokens``, ``/v1/models`` and any other ``/v1/`` route pass through
  unaccounted (they cost nothing). ``HEAD /`` and ``/api/hello`` are answered here.

Served by uvicorn, alone (``mcp-tars gateway``: ``create_gateway``) or
beside MCP (``mount_gateway``). On the critical path only what must
happen before the first byte goes back: the plan (cache lookup, prompt-cache
shaping, budget) and, for a whole answer, its ledger row priced and journaled;
the insert and the response-cache store come just after the reply.

Loopback only: a request whose ``Host`` is not a loopback name is refused
(DNS rebinding), and ``mcp-tars gateway`` refuses other bind addresses.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from . import fastjson, sse
from .engine import BudgetExceeded, Engine, Forward, UpstreamError
from .upstream import Credential, api_base_url

log = logging.getLogger("mcp_tars.gateway")

MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's own request limit
LOOPBACK_NAMES = (b"127.0.0.1", b"localhost", b"[::1]", b"::1")
# Not forwarded in either direction: they describe one connection, not the request.
_HOP_BY_HOP = frozenset({
    b"host", b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"content-length", b"accept-encoding", b"content-encoding",
})
_IDENTITY = (b"accept-encoding", b"identity")  # relayed bytes stay readable for the ledger
_JSON = (b"content-type", b"application/json")
_BATCH_RESULTS = re.compile(r"^/v1/messages/batches/(?P<id>[^/]+)/results$")
_ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


# -- pure helpers -----------------------------------------------------------------


def error_body(error_type: str, message: str) -> bytes:
    """An error in the API's shape (the SDKs read ``error.type`` and ``error.message``)."""
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": None}).encode()


def credential_of(headers: dict[bytes, bytes]) -> Credential | None:
    """The caller's credential: ``x-api-key``, else an ``Authorization: Bearer`` token."""
    key = headers.get(b"x-api-key")
    if key:
        return Credential(api_key=key.decode("latin-1"))
    authorization = headers.get(b"authorization", b"")
    if authorization[:7].lower() == b"bearer ":
        return Credential(auth_token=authorization[7:].strip().decode("latin-1"))
    return None


def session_of(headers: dict[bytes, bytes], names: list[str]) -> str | None:
    """The ledger's session: the first of ``names`` the request carries."""
    return next((headers[n.encode()].decode("latin-1") for n in names if headers.get(n.encode())), None)


def may_carry_markers(raw: bytes) -> bool:
    """Whether a request body may hold a ``cache_control`` key; False spares
    the engine looking for one. A key spelled with escapes ("cache\\u005fcontrol")
    is the same key to a JSON parser: any ASCII escape counts as a maybe."""
    return b'"cache_control"' in raw or b"\\u00" in raw


def upstream_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's request headers as they go upstream (hop-by-hop ones dropped)."""
    return [(k, v) for k, v in raw if k.lower() not in _HOP_BY_HOP] + [_IDENTITY]


def client_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The API's response headers as they go back to the client."""
    return [(k, v) for k, v in raw if k.lower() not in _HOP_BY_HOP]


def rewrite_results_urls(payload: Any, base_url: str) -> Any:
    """A batch (or a page of batches) with each ``results_url`` pointing at the gateway."""
    batches = payload.get("data") if isinstance(payload, dict) and isinstance(payload.get("data"), list) else [payload]
    for batch in batches:
        if isinstance(batch, dict) and batch.get("results_url") and batch.get("id"):
            batch["results_url"] = f"{base_url}/v1/messages/batches/{quote(str(batch['id']), safe='')}/results"
    return payload


def replayed_message(hit) -> dict:
    """An answer from the response cache as the API's message: it cost nothing, so its usage is zero."""
    return {"id": hit.response_id, "type": "message", "role": "assistant", "model": hit.model,
            "content": hit.content, "stop_reason": "end_turn", "stop_sequence": None, "usage": dict(_ZERO_USAGE)}


class _JsonLines:
    """Splits a relayed JSON Lines body into parsed lines (batch results)."""

    def __init__(self, on_line: Callable[[dict], None]):
        self._buffer = b""
        self._on_line = on_line

    def feed(self, chunk: bytes) -> None:
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._buffer.strip():
            self._line(self._buffer)
        self._buffer = b""

    def _line(self, line: bytes) -> None:
        try:
            value = json.loads(line)
        except ValueError:
            return
        if isinstance(value, dict):
            self._on_line(value)


# -- the ASGI application -------------------------------------------------------


class Gateway:
    """The gateway's routes. ``engine`` gives the engine once the app runs;
    ``fallback`` (the MCP app, when mounted beside it) gets every other path
    and the lifespan."""

    def __init__(self, engine: Callable[[], Engine], *, fallback=None, on_startup=None, on_shutdown=None):
        self._engine = engine
        self._fallback = fallback
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._fallback is None:
            return await self._lifespan(receive, send)
        if scope["type"] != "http" or not self._is_ours(scope["path"], scope["method"]):
            if self._fallback is not None:
                return await self._fallback(scope, receive, send)
            if scope["type"] != "http":
                return
            return await _reply(send, 404, error_body("not_found_error", f"Not found: {scope['method']} {scope['path']}"))
        headers = dict(scope["headers"])
        if not _loopback_host(headers.get(b"host", b"")):
            return await _reply(send, 403, error_body(
                "permission_error", "mcp-tars gateway: requests must name a loopback host (127.0.0.1 or localhost)"))
        path, method = scope["path"], scope["method"]
        if path in ("/", "/api/hello"):
            body = b"" if method == "HEAD" else b'{"ok":true,"service":"mcp-tars gateway"}'
            return await _reply(send, 200, body)
        try:
            if method == "POST" and path == "/v1/messages":
                return await self._messages(scope, receive, send, headers)
            return await self._passthrough(scope, receive, send, headers)
        except _TooLarge:
            return await _reply(send, 413, error_body("request_too_large", f"mcp-tars gateway: the request body is larger than {MAX_BODY_BYTES} bytes"))

    def _is_ours(self, path: str, method: str) -> bool:
        return path.startswith("/v1/") or path == "/api/hello" or (path == "/" and method in ("HEAD", "GET"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_startup is not None:
                        self._on_startup()
                except Exception as e:  # noqa: BLE001 - reported to the server, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- POST /v1/messages --------------------------------------------------------

    async def _messages(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        raw = await _read_body(receive)
        engine = self._engine()
        try:
            body = fastjson.loads(raw)
        except ValueError:  # not JSON (NaN, Infinity and 1e999 included: the API refuses them)
            body = None
        if not isinstance(body, dict):  # not ours to judge: the API answers it
            return await self._relay_plain(scope, send, engine, raw)
        settings = engine.config.gateway
        caller = engine.caller_for(credential_of(headers) or Credential())
        session_id = session_of(headers, settings.session_headers)
        agents = {h: headers[h.encode()].decode("latin-1") for h in settings.agent_headers if headers.get(h.encode())}
        beta = headers.get(b"anthropic-beta")
        try:
            fwd = await engine.plan_forward(body, caller=caller, session_id=session_id, decisions=agents,
                                            cache_key_extra={"anthropic_beta": beta.decode("latin-1")} if beta else None,
                                            markers=may_carry_markers(raw))
        except BudgetExceeded as e:  # 400, like the API's own "credit balance too low": never retried
            return await _reply(send, 400, error_body("invalid_request_error", f"mcp-tars budget: {e}"))
        stream = body.get("stream") is True
        if fwd.hit is not None:
            return await self._replay(send, replayed_message(fwd.hit), stream)
        content = raw if not fwd.changed else fastjson.dumps(fwd.body)
        response = await _send_upstream(engine, scope, send, content)
        if response is None:
            return
        try:
            if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
                return await self._relay_stream(receive, send, engine, fwd, response)
            data = await response.aread()
        finally:
            await response.aclose()
        try:
            await _reply(send, response.status_code, data, client_headers(response.headers.raw))
        finally:  # the answer is out (or its client gone): its row first, then the rest
            if response.status_code == 200:
                try:
                    message = json.loads(data)
                except ValueError:
                    message = None
                if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                    _record(engine, fwd, message, request_id=response.headers.get("request-id"))
            _store_answers(engine)

    async def _relay_stream(self, receive: Receive, send: Send, engine: Engine, fwd: Forward, response) -> None:
        """Relay the event stream as it arrives; account it on the side; stop
        the upstream request if the client goes away."""
        reader = sse.StreamReader(keep_content=fwd.cache_params is not None)
        await send({"type": "http.response.start", "status": 200, "headers": client_headers(response.headers.raw)})

        async def relay() -> None:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                reader.feed(chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        relaying = asyncio.ensure_future(relay())
        watching = asyncio.ensure_future(_disconnected(receive))
        note = None
        try:
            await asyncio.wait((relaying, watching), return_when=asyncio.FIRST_COMPLETED)
            if not relaying.done():
                note = "the client disconnected mid-stream"
                relaying.cancel()
            try:
                await relaying
            except asyncio.CancelledError:
                if note is None:
                    raise
            except Exception as e:  # noqa: BLE001 - the API's connection broke: the client sees the stream end
                note = f"the stream from the API broke: {type(e).__name__}"
                log.warning("gateway: %s", note)
        finally:
            watching.cancel()
            if reader.message is not None:
                if reader.error is not None and note is None:
                    note = f"the API ended the stream with an error event ({reader.error.get('type')})"
                complete = reader.complete and note is None
                message = reader.message
                if complete and message.get("stop_reason") == "end_turn":  # the response cache may keep it
                    message = {**message, "content": reader.content or []}
                _record(engine, fwd, message, request_id=response.headers.get("request-id"), complete=complete, note=note)
                _store_answers(engine)

    async def _replay(self, send: Send, message: dict, stream: bool) -> None:
        marker = (b"x-mcp-tars-cache", b"exact")
        if not stream:
            return await _reply(send, 200, fastjson.dumps(message), [_JSON, marker])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"), marker]})
        await send({"type": "http.response.body", "body": b"".join(sse.replay(message)), "more_body": False})

    # -- everything else under /v1/ ----------------------------------------------------

    async def _passthrough(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        raw = await _read_body(receive)
        engine = self._engine()
        path = scope["path"]
        if path.startswith("/v1/messages/batches"):
            return await self._batches(scope, send, engine, headers, raw)
        return await self._relay_plain(scope, send, engine, raw)

    async def _relay_plain(self, scope: Scope, send: Send, engine: Engine, raw: bytes,
                           on_chunk: Callable[[bytes], None] | None = None) -> None:
        response = await _send_upstream(engine, scope, send, raw)
        if response is None:
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": client_headers(response.headers.raw)})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if on_chunk is not None and response.status_code == 200:
                    on_chunk(chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _batches(self, scope: Scope, send: Send, engine: Engine, headers: dict[bytes, bytes], raw: bytes) -> None:
        results = _BATCH_RESULTS.match(scope["path"])
        if results and scope["method"] == "GET":
            return await self._batch_results(scope, send, engine, headers, raw, results["id"])
        response = await _send_upstream(engine, scope, send, raw)
        if response is None:
            return
        try:
            data = await response.aread()
        finally:
            await response.aclose()
        response_headers = client_headers(response.headers.raw)
        if response.status_code == 200:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                data = json.dumps(rewrite_results_urls(payload, _own_base_url(scope, headers))).encode()
        await _reply(send, response.status_code, data, response_headers)

    async def _batch_results(self, scope: Scope, send: Send, engine: Engine, headers: dict[bytes, bytes],
                             raw: bytes, batch_id: str) -> None:
        caller = engine.caller_for(credential_of(headers) or Credential())
        session_id = session_of(headers, engine.config.gateway.session_headers)

        def account(line: dict) -> None:
            result = line.get("result") or {}
            message = result.get("message")
            if result.get("type") == "succeeded" and isinstance(message, dict) and isinstance(message.get("usage"), dict):
                try:
                    engine.record_batch_result(message, caller=caller, session_id=session_id, batch_id=batch_id,
                                               custom_id=line.get("custom_id"))
                except Exception:  # noqa: BLE001 - the client still gets its results
                    log.exception("gateway: a batch result could not be recorded")

        lines = _JsonLines(account)
        await self._relay_plain(scope, send, engine, raw, on_chunk=lines.feed)
        lines.close()


def _record(engine: Engine, fwd: Forward, message: dict, **details) -> None:
    """The call's ledger row, journaled (``engine.record_forward``) as soon
    as the answer has gone to the client, before anything else runs; it goes
    into the ledger just after (``_store_answers``). A fault is logged with
    the row's usage."""
    try:
        engine.record_forward(fwd, message, **details)
    except Exception:  # noqa: BLE001 - never fail a paid answer on its bookkeeping
        log.exception("gateway: the ledger row of %s was not recorded (usage %s)", message.get("id"), message.get("usage"))


def _store_answers(engine: Engine) -> None:
    """The answer just went out: its ledger row (journaled) goes into the
    ledger now, and the answer into the response cache, while the client
    reads it, rather than on the next request's critical path."""
    engine.finish_pending()


# -- ASGI plumbing --------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge()
        parts.append(chunk)
    return b"".join(parts)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": (headers if headers is not None else [_JSON]) + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_upstream(engine: Engine, scope: Scope, send: Send, content: bytes):
    """The API's response (body still to read) to the client's request as it
    came, with ``content`` as its body; None once our error went back instead."""
    try:
        return await engine.upstream.open_passthrough(scope["method"], _upstream_url(engine, scope),
                                                      headers=upstream_headers(scope["headers"]), content=content or None)
    except UpstreamError as e:
        await _unreachable(send, e)
        return None


async def _unreachable(send: Send, e: UpstreamError) -> None:
    timed_out = "did not answer in time" in str(e)
    await _reply(send, 504 if timed_out else 502, error_body("api_error", f"mcp-tars gateway: {e}"))


def _upstream_url(engine: Engine, scope: Scope) -> str:
    url = api_base_url(engine.config.gateway.upstream_base_url) + scope["path"]
    query = scope.get("query_string") or b""
    return url + "?" + query.decode("latin-1") if query else url


def _own_base_url(scope: Scope, headers: dict[bytes, bytes]) -> str:
    host = headers.get(b"host", b"127.0.0.1").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}"


def _loopback_host(host: bytes) -> bool:
    name = host.rsplit(b":", 1)[0] if not host.endswith(b"]") else host
    return name in LOOPBACK_NAMES


# -- composition ---------------------------------------------------------------------------


def create_gateway(state_factory) -> Gateway:
    """The standalone gateway (``mcp-tars gateway``, under uvicorn): it opens
    its own state (config, store, engine) at start-up and closes it at shutdown."""
    holder: dict = {}

    def startup() -> None:
        holder["state"] = state_factory()
        # What start-up loaded (tables, the tokenizer, the models' classes) lives
        # as long as the process: out of the garbage collector's way, so that its
        # full collections stop walking it between requests.
        gc.freeze()

    async def shutdown() -> None:
        state = holder.pop("state", None)
        if state is not None:
            try:
                await state.engine.aclose()  # journaled ledger rows in, buffered hits written
            finally:
                state.store.close()

    return Gateway(lambda: holder["state"].engine, on_startup=startup, on_shutdown=shutdown)


def mount_gateway(app, engine: Callable[[], Engine]) -> Gateway:
    """The gateway's routes in front of another ASGI app (the MCP HTTP
    transport), sharing its engine; every other path and the lifespan go to ``app``."""
    return Gateway(engine, fallback=app)
