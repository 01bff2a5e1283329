"""The one way out to the Anthropic API: clients, retries, fallback, error mapping.

Every model call of the package goes through ``Upstream.call``: immediate
calls, abstractive pruning summaries, deferred tasks run at once. The SDK's
own retries are off (``max_retries=0``) because every attempt must be seen
here: retries are bounded and exponential with full jitter, a ``retry-after``
from the API is obeyed up to ``api.max_retry_after_seconds``, and persistent
overload walks ``routing.overload_fallback_chain``. Batches use the same
clients (``client_for``) for their own endpoints.

Credentials: the server's own key by default; an edge that forwards a caller's
credential (the gateway) asks ``client_for(credential)``, which keeps one
client per credential (by hash, never in clear) so connections are reused.

Pass-through (``open_passthrough``): the gateway sends its clients' requests
as they came (their headers, credentials included, and body bytes) on pooled
keep-alive connections, and relays the response as it arrives: on the small
HTTP/1.1 client of ``http1.py`` (a fifth of the CPU of the SDK's stack, see
there), or on the SDK's HTTP stack (``httpx2``) when the environment names a
proxy for the API. No retries there, on purpose: the client (an SDK,
Claude Code) has its own retry policy, reads ``retry-after`` and
``x-should-retry`` itself, and sees every status; retrying here as well would
multiply attempts (3 x 11 for Claude Code) and hide the API's rate-limit
signals. A streamed answer is never retried once bytes went out anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import random
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import anthropic
import httpx2

from . import http1
from .pricing import PriceTable
from .routing import fallback_models
from .settings import ApiSettings, RoutingSettings

log = logging.getLogger("mcp_tars.upstream")

MAX_CLIENTS = 64  # distinct caller credentials whose client (and connection pool) is kept
STREAM_PROGRESS_EVERY = 20  # a progress notification on the first streamed chunk, then every this many
DEFAULT_BASE_URL = "https://api.anthropic.com"
PASSTHROUGH_CONNECT_TIMEOUT_SECONDS = 10.0


def api_base_url(configured: str | None = None) -> str:
    """Where requests go: the configured URL, else $ANTHROPIC_BASE_URL (as the SDK reads it), else the API."""
    return (configured or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


class UpstreamError(RuntimeError):
    """The API could not answer after every retry and fallback, or refused the
    request. ``api_error`` is the SDK's last error (status, headers, body), for
    edges that pass the API's own answer on."""

    def __init__(self, message: str, api_error: Exception | None = None):
        super().__init__(message)
        self.api_error = api_error


@dataclass(frozen=True)
class Credential:
    """What authenticates a call: an API key (``x-api-key``) or a bearer token
    (``Authorization: Bearer``, e.g. a subscription OAuth token)."""

    api_key: str | None = None
    auth_token: str | None = None

    @property
    def secret(self) -> str:
        return self.api_key or self.auth_token or ""

    def fingerprint(self) -> str:
        kind = "key" if self.api_key else "bearer"
        return kind + ":" + hashlib.sha256(self.secret.encode()).hexdigest()[:24]


@dataclass
class Answer:
    """One message from the API and how it was obtained."""

    message: Any  # anthropic.types.Message
    attempts: int
    model: str  # the model that answered (a fallback may have)
    request_id: str | None


Progress = Callable[[float, str], Awaitable[None]]


# -- the pure core: what to do after a failed attempt ----------------------------


def retryable(e: Exception) -> bool:
    if isinstance(e, (anthropic.APIConnectionError, anthropic.APITimeoutError, anthropic.RateLimitError,
                      anthropic.InternalServerError)):
        return True
    if isinstance(e, anthropic.APIStatusError):
        # an `error` event inside a 200 stream: the SDK raises APIStatusError(200, type=overloaded_error)
        return e.status_code in (408, 409) or getattr(e, "type", None) in ("overloaded_error", "api_error", "rate_limit_error")
    return False


def is_overload(e: Exception) -> bool:
    return isinstance(e, anthropic.InternalServerError) or getattr(e, "type", None) == "overloaded_error"


def retry_after_seconds(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def backoff_seconds(attempt: int, settings: ApiSettings, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
    return rng.uniform(0, min(settings.backoff_max_seconds, settings.backoff_initial_seconds * 2 ** attempt))


_SDK_CREATE_ARGS: frozenset[str] | None = None


def sdk_call_params(params: dict) -> dict:
    """Send request fields this SDK's ``messages.create`` has no argument for
    (``temperature`` and ``top_p`` in anthropic 2.x) in ``extra_body``, where the
    API still reads them, instead of failing with a TypeError."""
    global _SDK_CREATE_ARGS
    if _SDK_CREATE_ARGS is None:
        _SDK_CREATE_ARGS = frozenset(inspect.signature(anthropic.resources.messages.AsyncMessages.create).parameters)
    extra = {k: v for k, v in params.items() if k not in _SDK_CREATE_ARGS}
    if not extra:
        return params
    kept = {k: v for k, v in params.items() if k in _SDK_CREATE_ARGS}
    return {**kept, "extra_body": {**params.get("extra_body", {}), **extra}}


def refusal_error(e: Exception) -> UpstreamError | None:
    """The UpstreamError for an error no retry can fix, or None for others."""
    if isinstance(e, anthropic.APIStatusError):
        return UpstreamError(f"the API refused the request ({e.status_code} {getattr(e, 'type', '') or ''}): {e.message}", e)
    if isinstance(e, anthropic.APIError):
        return UpstreamError(f"the API's answer could not be used ({type(e).__name__}): {e}", e)
    return None


# -- the client ------------------------------------------------------------------


class Upstream:
    def __init__(self, api: ApiSettings, routing: RoutingSettings, *, api_key: str | None = None,
                 client: anthropic.AsyncAnthropic | None = None, rng: random.Random | None = None,
                 prices: PriceTable | None = None):
        self.api = api
        self.routing = routing
        self.prices = prices  # the fallback chain never climbs above the default model's price
        self.default_credential = Credential(api_key=api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY"))
        self._default_client = client
        self._clients: OrderedDict[str, anthropic.AsyncAnthropic] = OrderedDict()
        self._rng = rng or random.Random()  # our own: jitter never depends on (or disturbs) global random state
        self._passthrough: dict[str, httpx2.AsyncClient] = {}  # by base URL; credentials travel in each request
        self._http1: http1.Pool | None = None
        self._direct_bases: dict[str, bool] = {}
        self._proxies = urllib.request.getproxies()  # read once, like the SDK's client

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The client of the server's own credential."""
        if self._default_client is None:
            if not self.default_credential.secret:
                raise UpstreamError("ANTHROPIC_API_KEY is not set: give the server an API key in its environment "
                                    "(for Claude Desktop, under \"env\" in claude_desktop_config.json)")
            self._default_client = self._new_client(self.default_credential)
        return self._default_client

    def client_for(self, credential: Credential | None) -> anthropic.AsyncAnthropic:
        """The client of ``credential`` (the server's own when None or the same)."""
        if credential is None or credential == self.default_credential:
            return self.client
        key = credential.fingerprint()
        client = self._clients.get(key)
        if client is None:
            client = self._new_client(credential)
            self._clients[key] = client
            while len(self._clients) > MAX_CLIENTS:
                _, old = self._clients.popitem(last=False)
                asyncio.get_running_loop().create_task(old.close())
        else:
            self._clients.move_to_end(key)
        return client

    def _new_client(self, credential: Credential) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=credential.api_key, auth_token=credential.auth_token,
            max_retries=0,  # retries, backoff and fallback are ours: every attempt is accounted
            timeout=self.api.timeout_seconds,
            _strict_response_validation=os.environ.get("MCP_TARS_STRICT_RESPONSES") == "1",
        )

    async def aclose(self) -> None:
        clients = [c for c in [self._default_client, *self._clients.values()] if c is not None]
        self._clients.clear()
        passthrough, self._passthrough = list(self._passthrough.values()), {}
        for c in clients:
            await c.close()
        for c in passthrough:
            await c.aclose()
        if self._http1 is not None:
            await self._http1.aclose()

    def _direct(self, base: str) -> bool:
        """Whether ``base`` is reached without a proxy (then ``http1`` carries
        the pass-through). Decided once per base: the proxies were read at start."""
        direct = self._direct_bases.get(base)
        if direct is None:
            direct = self._direct_bases[base] = self._without_proxy(base)
        return direct

    def _without_proxy(self, base: str) -> bool:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https"):
            return False
        if not (self._proxies.get(parts.scheme) or self._proxies.get("all")):
            return True
        return bool(parts.hostname) and bool(urllib.request.proxy_bypass(parts.hostname))

    async def open_passthrough(self, method: str, url: str, *, headers: list[tuple[bytes, bytes]],
                               content: bytes | None) -> httpx2.Response:
        """Send one request as given and return its response with the body
        still to read (``aiter_raw``; the caller closes it). No retries (see
        the module docstring). A request that cannot reach the API raises
        ``UpstreamError`` (with the httpx2 error, and whether it timed out)."""
        base, _, _ = url.partition("/v1/")
        if self._direct(base):
            if self._http1 is None:
                self._http1 = http1.Pool(connect_timeout=PASSTHROUGH_CONNECT_TIMEOUT_SECONDS,
                                         read_timeout=self.api.timeout_seconds)
            try:
                return await self._http1.request(method, url, headers=headers, content=content)
            except http1.TimeoutError_ as e:
                raise UpstreamError(f"the API at {base} did not answer in time ({e})", e) from e
            except http1.HTTPError as e:
                raise UpstreamError(f"the API at {base} could not be reached ({e})", e) from e
        client = self._passthrough.get(base)
        if client is None:
            client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.api.timeout_seconds, connect=PASSTHROUGH_CONNECT_TIMEOUT_SECONDS),
                limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64),
                follow_redirects=False,
            )
            self._passthrough[base] = client
        request = client.build_request(method, url, headers=headers, content=content)
        try:
            return await client.send(request, stream=True)
        except httpx2.TimeoutException as e:
            raise UpstreamError(f"the API at {base} did not answer in time ({type(e).__name__})", e) from e
        except httpx2.HTTPError as e:
            raise UpstreamError(f"the API at {base} could not be reached ({type(e).__name__}: {e})", e) from e

    async def call(self, params: dict, *, stream: bool = False, progress: Progress | None = None,
                   credential: Credential | None = None) -> Answer:
        """One message, with bounded retries (exponential backoff, full jitter,
        retry-after obeyed up to a limit), then along the fallback chain on
        persistent overload."""
        api = self.api
        client = self.client_for(credential)
        chain = [params["model"]] + fallback_models(params["model"], self.routing, self.prices)
        attempts = 0
        errors: list[str] = []
        last_error: Exception | None = None
        report = _counted(progress)
        for model in chain:
            call_params = sdk_call_params(params if model == params["model"] else {**params, "model": model})
            for attempt in range(api.max_retries + 1):
                attempts += 1
                try:
                    if report is not None:
                        await report(f"calling {model}" + (f" (attempt {attempts})" if attempts > 1 else ""))
                    message, request_id = await self._attempt(client, call_params, stream=stream, report=report,
                                                              model=model)
                    if report is not None:
                        await report(f"answered by {model}")
                    return Answer(message, attempts, model, request_id)
                except Exception as e:  # noqa: BLE001 - sorted below
                    if not retryable(e):
                        refused = refusal_error(e)
                        if refused is not None:
                            raise refused from e
                        raise
                    last_error = e
                    errors.append(f"{model}: {type(e).__name__} {getattr(e, 'status_code', '')}".strip())
                    if attempt == api.max_retries:
                        break
                    delay = retry_after_seconds(e)
                    if delay is not None and delay > api.max_retry_after_seconds:
                        break  # the API asks for a long pause: try the next model instead
                    if delay is None:
                        delay = backoff_seconds(attempt, api, self._rng)
                    log.info("retrying %s after %s (attempt %d), sleeping %.3fs", model, type(e).__name__, attempts, delay)
                    await asyncio.sleep(delay)
            if last_error is not None and not is_overload(last_error):
                break  # fallback models help with overload, not with rate limits or network faults
        raise UpstreamError(f"the Anthropic API did not answer after {attempts} attempts "
                            f"({'; '.join(errors[-4:])}). Try again later, or set a fallback chain in performance-config.json.",
                            last_error)

    @staticmethod
    async def _attempt(client: anthropic.AsyncAnthropic, params: dict, *, stream: bool,
                       report: Callable[[str], Awaitable[None]] | None, model: str) -> tuple[Any, str | None]:
        if stream:
            async with client.messages.stream(**params) as s:
                if report is not None:
                    chunks = 0
                    async for event in s:
                        if event.type == "content_block_delta":
                            chunks += 1
                            if chunks == 1 or chunks % STREAM_PROGRESS_EVERY == 0:
                                await report(f"streaming from {model}: {chunks} chunk(s)")
                return await s.get_final_message(), s.response.headers.get("request-id")
        raw = await client.messages.with_raw_response.create(**params)
        return await raw.parse(), raw.headers.get("request-id")


def _counted(progress: Progress | None) -> Callable[[str], Awaitable[None]] | None:
    """Progress with a count that only rises (retries and fallbacks included), as MCP requires."""
    if progress is None:
        return None
    step = 0

    async def report(message: str) -> None:
        nonlocal step
        step += 1
        await progress(step, message)

    return report
