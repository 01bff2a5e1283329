"""The MCP server: tools, resources and prompts over the engine.

This layer only translates: arguments in, engine call, result model out.
Expected failures become ``ToolError`` with a message a person can act on.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Callable, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, WithJsonSchema

from . import __version__, pruning, reports, tool_text
from .app import AppState, open_state
from .engine import BudgetExceeded, CompletionRequest, InputError, UpstreamError
from .money import clean_floats
from .store import StoreError

log = logging.getLogger("mcp_tars.server")

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CALLS_API = ToolAnnotations(read_only_hint=False, open_world_hint=True)

INSTRUCTIONS = (
    "mcp-tars sends your Anthropic model calls through a cost optimizer: response cache, "
    "model routing, context pruning, prompt caching and the half-price Message Batches API, "
    "with every cent in a ledger. Use optimized_complete instead of calling a model directly; "
    "pass session_id to group the turns of one conversation; defer_task for work that can wait; "
    "cost_report to see spending and savings."
)


# Failures a person can act on: their message goes back to the model as a ToolError.
EXPECTED_FAILURES = (InputError, BudgetExceeded, UpstreamError, StoreError, ValueError, KeyError)


def as_tool_error(e: Exception) -> ToolError:
    # KeyError's str() adds quotes around its message
    return ToolError(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))


# -- result models (the tool contract) ---------------------------------------


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0


class CacheInfo(BaseModel):
    kind: Literal["exact", "semantic"] | None = None
    similarity: float | None = None


class RoutingInfo(BaseModel):
    level: str
    score: int
    reason: str
    pinned: bool = False
    sticky: bool = False
    downgraded: bool = False


class PruningInfo(BaseModel):
    tokens_before: int
    tokens_after: int
    level: str | None = None
    reduction_pct: float | None = None


# Nullable fields as `type: [T, "null"]` rather than pydantic's anyOf: the same
# meaning, and much cheaper for clients that validate every result.
OptionalStr = Annotated[str | None, WithJsonSchema({"type": ["string", "null"]})]
OptionalNumber = Annotated[float | None, WithJsonSchema({"type": ["number", "null"]})]
OptionalObject = Annotated[dict[str, Any] | None, WithJsonSchema({"type": ["object", "null"]})]
# Containers without a schema for their members (described in words instead):
# a validator then checks one type, not every member, on every result.
AnyObject = Annotated[dict[str, Any], WithJsonSchema({"type": "object"})]
AnyList = Annotated[list[Any], WithJsonSchema({"type": "array"})]


class CompleteResult(BaseModel):
    """The answer with its cost and savings.

    The nested objects are described in words rather than as nested schemas:
    clients validate every result against the output schema, and a flat
    schema keeps that validation cheap on the hot path (a cache hit)."""

    text: str = Field(description="The answer's text (all text blocks joined).")
    content: AnyList = Field(description="The answer's content blocks, objects as in the Messages API (text, tool_use...).")
    model: str
    source: Literal["api", "cache"]
    stop_reason: OptionalStr
    cache: AnyObject = Field(description="{kind: 'exact' | 'semantic' | null, similarity: number | null}.")
    usage: AnyObject = Field(description="Integer token counts: {input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cache_write_5m_tokens, cache_write_1h_tokens}.")
    cost_usd: OptionalNumber = Field(description="What this call cost, from the API's usage; null when the model's price is unknown.")
    baseline_cost_usd: OptionalNumber = Field(description="Estimated cost of the same request on the default model, full context, no caching, standard rate.")
    saved_usd: OptionalNumber
    savings_by_lever: AnyObject = Field(description="{cache, pruning, routing, prompt_cache, batch}: dollars (number or null); they add up to saved_usd.")
    pricing_source: str
    routing: AnyObject = Field(description="{level: simple | moderate | complex | expert, score: 0-100, reason, pinned, sticky, downgraded}.")
    pruning: OptionalObject = Field(description="{tokens_before, tokens_after, level, reduction_pct, notes, removed} when the context was pruned, else null.")
    prompt_cache: OptionalObject = Field(description="The prompt-caching decision: breakpoints, TTL and why.")
    request_id: OptionalStr
    response_id: str
    session_id: OptionalStr
    latency_ms: float
    attempts: int
    warnings: AnyList = Field(description="Strings: what the caller should know (budget, ledger, pricing).")


class DeferResult(BaseModel):
    task_id: str
    status: str
    estimated_ready_at: str | None = Field(description="ISO 8601 UTC time by which the result is expected.")
    priority: str | None = None
    result: CompleteResult | None = Field(None, description="For critical tasks, run immediately: the answer.")
    warnings: list[str] = []


class TaskStatus(BaseModel):
    task_id: str
    status: Literal["queued", "submitted", "succeeded", "failed", "expired", "canceled"]
    priority: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    batch_id: str | None = None
    attempts: int = 0
    text: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    error: str | None = None
    estimated_ready_at: str | None = None
    deadline_at: str | None = None
    note: str | None = None


class TaskList(BaseModel):
    tasks: list[TaskStatus]


class ProcessResult(BaseModel):
    submitted_batches: int
    submitted_tasks: int
    ran_immediately: int
    collected: int
    pending_batches: int
    queued: int
    details: list[str] = []


class ReportResult(BaseModel):
    period: str
    group_by: str
    since: str | None
    until: str | None
    totals: dict[str, Any]
    groups: list[dict[str, Any]]
    groups_overlap: bool = Field(False, description="True for group_by=strategy: a call that several levers touched is in each of their groups.")
    savings_by_lever: dict[str, Any]
    budget: dict[str, Any] | None = None
    warnings: list[str] = []
    report: str | None = Field(None, description="The rendered markdown report (format=markdown).")


class PruneResultOut(BaseModel):
    messages: list[dict[str, Any]]
    tokens_before: int = Field(description="Estimated tokens of the input, system prompt included.")
    tokens_after: int = Field(description="Estimated tokens of the result, system prompt included.")
    reduction_pct: float
    level: str
    summary: str | None
    removed: list[dict[str, Any]]
    protected_prefix_messages: int
    notes: list[str]
    target_met: bool = Field(description="Whether tokens_after is within max_tokens; when not, notes say what took the room.")
    breakdown: dict[str, int] = Field(description="Tokens of the result by part: system, protected_prefix, summary, recent_messages, final_turn.")


def structured_result(data: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> CallToolResult:
    """The full result as structured content, and ``render(result)`` (what an
    agent reads: see tool_text.py) as its text content.

    Built directly: the SDK's default would validate and dump the model twice
    and put the whole result, as JSON, in the text a host model reads. The SDK
    still validates the structured content against the output schema. Floats
    are rounded to 12 significant digits at this edge (money.clean_floats)."""
    data = clean_floats(data)
    return CallToolResult(content=[TextContent(type="text", text=render(data))], structured_content=data)


# -- strict arguments ------------------------------------------------------------

# Names agents carry over from other APIs, and what they mean here.
ARGUMENT_ALIASES = {
    "system_prompt": "system", "instructions": "system", "max_output_tokens": "max_tokens",
    "max_tokens_to_sample": "max_tokens", "maxTokens": "max_tokens", "stop": "stop_sequences",
    "sessionId": "session_id", "conversation_id": "session_id", "cache": "use_cache",
}


def unknown_arguments_error(tool: str, given: list[str], accepted: list[str]) -> ToolError | None:
    """A ToolError naming each argument ``tool`` does not take and the one
    probably meant, or None when every argument is known. Silently ignoring
    ``max_token`` would run the call with a default the caller did not want."""
    unknown = [name for name in given if name not in accepted]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        meant = ARGUMENT_ALIASES.get(name)
        if meant not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            meant = close[0] if close else None
        parts.append(f"{name!r}" + (f" (did you mean {meant!r}?)" if meant else ""))
    return ToolError(f"{tool} does not take the argument(s) {', '.join(parts)}; nothing was run. "
                     f"Its arguments are: {', '.join(accepted)}.")


class StrictMCPServer(MCPServer):
    """An MCPServer that refuses arguments a tool does not declare (the SDK
    drops them silently) and says so in each tool's input schema."""

    _accepted: dict[str, list[str]] | None = None

    async def list_tools(self):
        tools = await super().list_tools()
        for t in tools:
            t.input_schema = {**t.input_schema, "additionalProperties": False}
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        if self._accepted is None:
            self._accepted = {t.name: list((t.input_schema or {}).get("properties", {}))
                              for t in await super().list_tools()}
        accepted = self._accepted.get(name)
        if accepted is not None:
            error = unknown_arguments_error(name, list(arguments), accepted)
            if error is not None:
                raise error
        return await super().call_tool(name, arguments, context)


# -- server state --------------------------------------------------------------


CACHE_PURGE_INTERVAL_SECONDS = 3600


async def _purge_cache_by_policy(state: AppState, stop: asyncio.Event) -> None:
    """Delete cached prompts and answers past their TTL or older than
    monitoring.retention_days: at start-up, then hourly."""
    cache = state.engine.cache
    if cache is None:
        return
    while not stop.is_set():
        try:
            removed = cache.purge_expired(retention_days=state.config.monitoring.retention_days)
            if removed:
                log.info("response cache: removed %d expired answer(s)", removed)
        except StoreError as e:
            log.warning("response cache purge failed: %s", e)
        try:
            await asyncio.wait_for(stop.wait(), CACHE_PURGE_INTERVAL_SECONDS)
        except asyncio.TimeoutError:
            pass


def create_server(state_factory=open_state, *, run_worker: bool | None = None) -> MCPServer:
    """Build the MCP server. ``state_factory`` opens the config, store and engine
    once per process (when the server starts)."""

    # Static resources get no Context in the SDK, so they read the state from here.
    current: dict[str, AppState] = {}

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[AppState]:
        state = state_factory()
        current["state"] = state
        worker = None
        stop = asyncio.Event()
        enabled = state.config.batch.worker_enabled if run_worker is None else run_worker
        if enabled:
            worker = asyncio.create_task(state.queue.run_worker(stop))
        retention = asyncio.create_task(_purge_cache_by_policy(state, stop))
        try:
            yield state
        finally:
            stop.set()
            retention.cancel()
            if worker is not None:
                worker.cancel()
                try:
                    await worker
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass
            await state.engine.aclose()
            state.store.close()

    server = StrictMCPServer("mcp-tars", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)

    def state_of(ctx: Context) -> AppState:
        return ctx.request_context.lifespan_context

    @server.tool(annotations=CALLS_API)
    async def optimized_complete(
        ctx: Context,
        prompt: Annotated[str | None, Field(description="A single user prompt. Give this or `messages`.")] = None,
        messages: Annotated[list[dict[str, Any]] | None, Field(description="Anthropic Messages API conversation: [{role, content}], first role user, roles alternating.")] = None,
        system: Annotated[str | list[dict[str, Any]] | None, Field(description="System prompt (a string or text blocks).")] = None,
        max_tokens: Annotated[int, Field(description="Most output tokens.")] = 1024,
        model: Annotated[str | None, Field(description="Pin a model (skips routing), e.g. claude-sonnet-5-5.")] = None,
        temperature: Annotated[float | None, Field(description="Sampling temperature, 0 to 1.")] = None,
        use_cache: Annotated[bool, Field(description="Allow answers from the response cache.")] = True,
        session_id: Annotated[str | None, Field(description="Groups the turns of one conversation (sticky routing, prompt caching, reports).")] = None,
        tools: Annotated[list[dict[str, Any]] | None, Field(description="Tool definitions for the model (Messages API format).")] = None,
        tool_choice: Annotated[dict[str, Any] | None, Field(description="Messages API tool_choice.")] = None,
        stop_sequences: Annotated[list[str] | None, Field(description="Custom stop sequences.")] = None,
        top_p: Annotated[float | None, Field(description="Nucleus sampling.")] = None,
        top_k: Annotated[int | None, Field(description="Sample only from the top K tokens.")] = None,
        thinking: Annotated[dict[str, Any] | None, Field(description="Extended thinking, as in the Messages API: {type: 'enabled', budget_tokens: N (at least 1024, below max_tokens)} | {type: 'adaptive'} | {type: 'disabled'}. Thinking is billed as output.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Messages API metadata: {user_id: an opaque id}.")] = None,
        stream: Annotated[bool, Field(description="Stream from the API (progress notifications while it runs).")] = False,
    ) -> CompleteResult:
        """Complete a prompt or conversation through the cost optimizer (cache, routing, pruning, prompt caching) and return the answer with its cost and savings."""
        state = state_of(ctx)
        req = CompletionRequest(prompt=prompt, messages=messages, system=system, max_tokens=max_tokens, model=model,
                                temperature=temperature, use_cache=use_cache, session_id=session_id, tools=tools,
                                tool_choice=tool_choice, stop_sequences=stop_sequences, top_p=top_p, top_k=top_k,
                                thinking=thinking, metadata=metadata, stream=stream)

        async def progress(done: float, message: str) -> None:
            await ctx.report_progress(done, message=message)

        try:
            result = await state.engine.complete(req, progress=progress)
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        return structured_result(result.__dict__, tool_text.complete_text)

    @server.tool(annotations=CALLS_API)
    async def defer_task(
        ctx: Context,
        prompt: Annotated[str | None, Field(description="A single user prompt. Give this or `messages`.")] = None,
        messages: Annotated[list[dict[str, Any]] | None, Field(description="Messages API conversation.")] = None,
        system: Annotated[str | list[dict[str, Any]] | None, Field(description="System prompt.")] = None,
        max_tokens: Annotated[int, Field(description="Most output tokens.")] = 1024,
        model: Annotated[str | None, Field(description="Pin a model (skips routing).")] = None,
        priority: Annotated[Literal["high", "normal", "low"], Field(description="Queue priority.")] = "normal",
        max_wait_seconds: Annotated[int, Field(description="Deadline: the answer is needed within this many seconds.")] = 86400,
        critical: Annotated[bool, Field(description="Critical work runs now instead of being queued.")] = False,
    ) -> DeferResult:
        """Queue work that can wait for the Message Batches API (50% cheaper). Returns a task id for task_status."""
        state = state_of(ctx)
        req = CompletionRequest(prompt=prompt, messages=messages, system=system, max_tokens=max_tokens, model=model)
        try:
            out = await state.queue.defer(req, priority=priority, max_wait_seconds=max_wait_seconds, critical=critical)
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        data = DeferResult.model_validate(out).model_dump(mode="json")
        return structured_result(data, tool_text.defer_text)

    @server.tool(annotations=READ_ONLY)
    async def task_status(ctx: Context, task_id: Annotated[str, Field(description="The id defer_task returned.")]) -> TaskStatus:
        """Status of a deferred task; the answer text once it has succeeded."""
        try:
            data = TaskStatus.model_validate(state_of(ctx).queue.status(task_id)).model_dump(mode="json")
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        return structured_result(data, tool_text.task_text)

    @server.tool(annotations=CALLS_API)
    async def cancel_task(ctx: Context, task_id: Annotated[str, Field(description="The id defer_task returned.")]) -> TaskStatus:
        """Cancel a deferred task. A task already inside a submitted batch is marked canceled and its answer, if it still arrives, is not returned."""
        try:
            data = TaskStatus.model_validate(await state_of(ctx).queue.cancel(task_id)).model_dump(mode="json")
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        return structured_result(data, tool_text.task_text)

    @server.tool(annotations=READ_ONLY)
    async def deferred_results(
        ctx: Context,
        status: Annotated[Literal["succeeded", "failed", "expired", "canceled"] | None, Field(description="Only finished tasks in this state (task_status tells about one waiting task).")] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Most tasks to list, newest first.")] = 50,
    ) -> TaskList:
        """List deferred tasks and their answers, newest first."""
        try:
            tasks = state_of(ctx).queue.results(limit=limit, status=status)
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        data = TaskList(tasks=[TaskStatus.model_validate(t) for t in tasks]).model_dump(mode="json")
        return structured_result(data, tool_text.tasks_text)

    @server.tool(annotations=CALLS_API)
    async def process_deferred(
        ctx: Context,
        force: Annotated[bool, Field(description="Submit all queued work now, ignoring batch size, timeout and off-peak rules.")] = False,
    ) -> ProcessResult:
        """Submit due deferred work as batches, poll submitted batches and collect their results."""
        async def progress(done: float, total: float | None, message: str) -> None:
            await ctx.report_progress(done, total=total, message=message)

        try:
            out = await state_of(ctx).queue.process(force=force, progress=progress)
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        data = ProcessResult.model_validate(out).model_dump(mode="json")
        return structured_result(data, tool_text.process_text)

    @server.tool(annotations=READ_ONLY)
    async def cost_report(
        ctx: Context,
        period: Annotated[Literal["today", "yesterday", "7d", "30d", "month", "all"], Field(description="Reporting period (UTC).")] = "today",
        group_by: Annotated[Literal["model", "day", "strategy", "session"], Field(description="How rows are grouped.")] = "model",
        format: Annotated[Literal["markdown", "json"], Field(description="markdown adds a rendered report; json only the numbers.")] = "markdown",
        since: Annotated[str | None, Field(description="Start date YYYY-MM-DD (UTC), overrides period.")] = None,
        until: Annotated[str | None, Field(description="End date YYYY-MM-DD (UTC, inclusive).")] = None,
    ) -> ReportResult:
        """Spending, savings by lever, cache hit rate and model mix from the ledger."""
        state = state_of(ctx)
        try:
            data = reports.build_report(state.store, tenant=state.engine.tenant, period=period, group_by=group_by,
                                        since=since, until=until, budget=state.engine.budget_status(),
                                        settings=state.config.reports)
        except EXPECTED_FAILURES as e:
            raise as_tool_error(e) from e
        if format == "markdown":
            data["report"] = reports.render_markdown(data, settings=state.config.reports)
        data = ReportResult.model_validate(data).model_dump(mode="json")
        return structured_result(data, tool_text.report_text)

    @server.tool(annotations=READ_ONLY)
    async def prune_context(
        ctx: Context,
        messages: Annotated[list[dict[str, Any]], Field(description="Messages API conversation to shrink.")],
        system: Annotated[str | list[dict[str, Any]] | None, Field(description="System prompt (kept as is; counted).")] = None,
        max_tokens: Annotated[int, Field(description="Target size of the pruned context, in tokens.")] = 4000,
        level: Annotated[Literal["auto", "light", "medium", "aggressive"], Field(description="Pruning level: auto starts at a level chosen from the size (and budget pressure), escalates until max_tokens is reached with the summary of dropped history at full size and, past aggressive, packs the final user turn, then the facts of older messages (those it asks about first), then the recent messages that fit; when the system prompt and final turn leave no room, the facts the question needs are kept anyway (pruning.facts_floor_tokens) and target_met says so. The final turn's tool results are shortened only when that turn alone is above pruning.final_turn_max_tokens. light, medium and aggressive apply that level as configured.")] = "auto",
    ) -> PruneResultOut:
        """Shrink a conversation to about max_tokens (system prompt included) while keeping it a valid Messages API conversation. The final user turn stays verbatim; the facts of dropped history (those it asks about first) come before older messages."""
        state = state_of(ctx)
        if max_tokens < 1:
            raise ToolError(f"max_tokens must be a positive number of tokens (got {max_tokens})")
        problems = pruning.validate_conversation(messages) if isinstance(messages, list) and messages else ["`messages` must be a non-empty list"]
        if problems:
            raise ToolError("`messages` is not a valid conversation: " + "; ".join(problems[:5]))
        try:
            result = pruning.prune_messages(messages, system=system, max_tokens=max_tokens, level=level,
                                            settings=state.config.pruning, model=state.config.default_model)
        except ValueError as e:
            raise ToolError(str(e)) from e
        data = PruneResultOut.model_validate(result.__dict__).model_dump(mode="json")
        return structured_result(data, tool_text.prune_text)

    # -- resources and prompts ---------------------------------------------

    @server.resource("tars://config", mime_type="application/json", description="The effective configuration (performance-config.json, validated).")
    def config_resource() -> str:
        return json.dumps(server_state().config.model_dump(mode="json"), indent=2)

    @server.resource("tars://prices", mime_type="application/json", description="The price table in use, with the source of every price.")
    def prices_resource() -> str:
        return json.dumps(server_state().engine.prices.as_dict(), indent=2)

    @server.resource("tars://report/today", mime_type="text/markdown", description="Today's cost report.")
    def report_resource() -> str:
        state = server_state()
        data = reports.build_report(state.store, tenant=state.engine.tenant, period="today", group_by="model",
                                    budget=state.engine.budget_status(), settings=state.config.reports)
        return reports.render_markdown(data, settings=state.config.reports)

    @server.resource("tars://report/html", mime_type="text/html", description="The HTML report with charts (last 30 days).")
    def html_report_resource() -> str:
        state = server_state()
        return reports.render_html(state.store, tenant=state.engine.tenant, period="30d")

    @server.prompt(description="A weekly review of API spending and what to change.")
    def weekly_cost_review() -> str:
        return (
            "Call cost_report with period='7d' and group_by='strategy', then again with group_by='model'. "
            "Summarise: what was spent, what was saved and by which lever, the cache hit rate, the model mix, "
            "budget warnings. Then suggest up to three concrete changes (for example: pass session_id to keep "
            "prompt caching warm, defer batchable work with defer_task, pin fewer models) with the saving each "
            "could bring, and say which figures are estimates."
        )

    def server_state() -> AppState:
        return current["state"]

    return server
