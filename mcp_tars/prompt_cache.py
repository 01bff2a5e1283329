"""Prompt caching: add cache breakpoints so repeated prefixes are billed as cache reads.

A cache read costs a small fraction of fresh input (Sonnet 5.5: $0.10 against
$2 per million tokens); a cache write costs a little more than fresh input
(1.25x for the 5-minute TTL, 2x for the 1-hour TTL). An agent re-sends its
tools, system prompt and the whole conversation on every turn, so almost all of
every turn after the first can be a cache read, if the request carries
breakpoints in the right places and the prefix stays byte-stable.

The pure core is ``shape_request(params, model, settings, timing)``. It never
mutates the caller's dict (only the containers it changes are copied), never
moves or removes a marker the caller set nor changes a TTL the caller wrote,
never puts more than 4 breakpoints in a request counting the caller's own, and
respects the API rule that a 1-hour breakpoint may not come after a 5-minute
one. A caller marker *without* a ``ttl`` says "cache here", not "cache here
for 5 minutes": with ``adopt_caller_markers_without_ttl`` (the default) it gets
the TTL chosen for the request, like our own breakpoints (otherwise the API's
default 5 minutes would force every breakpoint after it to 5m as well). Where
slots allow, in this order of value:

1. the moving breakpoint, on the last block of the last user message
   (``strategy="explicit"``) or as the top-level automatic ``cache_control``
   (``strategy="auto"``): this request writes the whole conversation, the next
   turn reads it back and only pays for what it adds;
2. the end of the stable prefix (tools + system): reused by every call that
   shares the system prompt, including other sessions and turns whose earlier
   history was pruned;
3. an anchor on the block where the previous turn's moving breakpoint sat: the
   API only looks back about 20 blocks from a breakpoint for an earlier entry,
   and an agent turn with many parallel tool calls can add more than that. A
   breakpoint on an already-cached position costs nothing extra.

Only the block that carries a marker is rewritten (a string system prompt or a
string message becomes a one-block list, the same way every time), so the
prefix stays byte-stable across turns apart from where the markers sit; cache
keys ignore ``cache_control`` itself. Nothing time-varying is ever injected.

Which TTL: see ``choose_ttl`` for the economics. When ``SessionTiming`` shows
that the previous turn's entries are gone (another model, a pause beyond every
TTL), this call writes everything and is priced like a session's first call.

``strategy="auto_5m"`` is the baseline without us: one top-level automatic
breakpoint with the default 5-minute TTL, nothing else (benchmarks compare
against it; ``enabled=False`` is the other baseline).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


from mcp_tars import fastjson
from mcp_tars.tokens import estimate_message_tokens, estimate_text_tokens
from mcp_tars.settings import PromptCacheSettings

MAX_BREAKPOINTS = 4  # the API rejects a 5th with a 400
TTL_5M = "5m"
TTL_1H = "1h"
_UNMARKABLE_BLOCKS = ("thinking", "redacted_thinking")


@dataclass
class SessionTiming:
    """What the session has shown so far.

    ``gaps_seconds``: gaps between consecutive earlier calls, oldest first.
    Optional, when the caller knows them: ``seconds_since_previous_call`` (the
    pause that just ended, counted as one more observed gap) and
    ``previous_model`` (the model of the session's previous call). Either can
    show that nothing of the conversation is in the cache any more (another
    model, or a pause beyond every TTL): this call then writes everything,
    which changes the TTL economics."""

    gaps_seconds: list[float] = field(default_factory=list)
    seconds_since_previous_call: float | None = None
    previous_model: str | None = None

    def observed_gaps(self) -> list[float]:
        if self.seconds_since_previous_call is None:
            return list(self.gaps_seconds)
        return [*self.gaps_seconds, self.seconds_since_previous_call]


@dataclass(frozen=True)
class PromptCacheDecision:
    applied: bool
    ttl: str | None
    breakpoints: int  # in the shaped request, the caller's included
    reason: str
    cached_prefix_tokens_estimate: int
    added_breakpoints: int = 0
    long_gap_share_estimate: float | None = None
    stable_prefix_hash: str | None = None  # of tools + system: a change between calls means the cache was lost
    adopted_caller_markers: int = 0  # caller markers without a ttl that now carry the chosen (1h) TTL


# --------------------------------------------------------------------------- reading a request


@dataclass(frozen=True)
class _Marker:
    """A cache_control the caller set, in processing order (tools, system, messages, top level)."""

    position: tuple[int, int, int]  # (section, item, block); top level = (3, 0, 0)
    ttl: str
    explicit: bool = True  # False: an ephemeral marker without a ttl (the API's default 5 minutes)


def _ttl_of(cache_control: Any) -> str:
    if isinstance(cache_control, dict) and cache_control.get("ttl") == TTL_1H:
        return TTL_1H
    return TTL_5M


def _marker(position: tuple[int, int, int], cache_control: Any) -> _Marker:
    # Only a plain {"type": "ephemeral"} without a ttl is open to adoption;
    # anything else (an explicit ttl, an unknown shape) is the caller's to keep.
    open_ttl = isinstance(cache_control, dict) and cache_control.get("type") == "ephemeral" and cache_control.get("ttl") is None
    return _Marker(position, _ttl_of(cache_control), explicit=not open_ttl)


def caller_markers(params: dict) -> list[_Marker]:
    """The breakpoints the caller set, in processing order. Read once per
    call and handed to ``cache_prefix_end`` and ``shape_request`` (a Claude
    Code request has 24 tools and hundreds of blocks to look through)."""
    markers: list[_Marker] = []
    for i, tool in enumerate(params.get("tools") or ()):
        if isinstance(tool, dict) and tool.get("cache_control") is not None:
            markers.append(_marker((0, i, 0), tool["cache_control"]))
    system = params.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            if isinstance(block, dict) and block.get("cache_control") is not None:
                markers.append(_marker((1, i, 0), block["cache_control"]))
    for i, message in enumerate(params.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for j, block in enumerate(content):
                if isinstance(block, dict) and block.get("cache_control") is not None:
                    markers.append(_marker((2, i, j), block["cache_control"]))
    if params.get("cache_control") is not None:
        markers.append(_marker((3, 0, 0), params["cache_control"]))
    return markers


def _last_markable_block(content: Any) -> int | None:
    """Index of the last block that can carry cache_control (-1 for a string content)."""
    if isinstance(content, str):
        return -1 if content else None
    if isinstance(content, list):
        for j in range(len(content) - 1, -1, -1):
            block = content[j]
            if not isinstance(block, dict) or block.get("type") in _UNMARKABLE_BLOCKS:
                continue
            if block.get("type") == "text" and not block.get("text"):
                continue  # the API rejects cache_control on an empty text block
            return j
    return None


def _user_indexes(messages: list) -> list[int]:
    return [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]


def cache_prefix_end(params: dict, markers: list[_Marker] | None = None) -> int:
    """Index of the first message after the last cache breakpoint in ``params``
    (0 when no message carries one; all messages for a top-level
    ``cache_control``). Pruning may only change messages from there on.
    ``markers``: ``caller_markers(params)`` when the caller has them already."""
    messages = params.get("messages") or []
    if params.get("cache_control") is not None:
        return len(messages)
    end = 0
    for marker in caller_markers(params) if markers is None else markers:
        if marker.position[0] == 2:
            end = max(end, marker.position[1] + 1)
    return end


def conversation_prefix_end(messages: list) -> int:
    """Number of leading messages the previous turn's moving breakpoint cached:
    everything up to the user message before the latest assistant reply. With
    prompt caching on, pruning inside this range throws the cache away."""
    users = _user_indexes(messages)
    if len(users) < 2:
        return 0
    return users[-2] + 1


def _tools_key(params: dict) -> bytes:
    # Agents send the same tools on every call (Claude Code: 64 KB of them):
    # their compact JSON keys the memos below, in the order the client wrote
    # it (a client that reorders keys costs a memo entry, not a wrong value).
    return fastjson.dumps(params["tools"]) if params.get("tools") else b""


# Distinct tool sets and system prompts per process are few (one per agent);
# keys can be large (Claude Code's tools: 64 KB), so the memos stay small.
_PREFIX_MEMO_SIZE = 256
_tools_tokens: dict[tuple[bytes, str], int] = {}  # (tools key, model) -> estimated tokens
_prefix_hashes: dict[tuple[bytes, Any], str | None] = {}  # (tools key, system) -> hash


def _remember(memo: dict, key: Any, value: Any) -> Any:
    if len(memo) >= _PREFIX_MEMO_SIZE:
        memo.clear()  # bounded; refilling costs one computation per distinct prefix
    memo[key] = value
    return value


def _stable_prefix_tokens(params: dict, model: str, tools_key: bytes) -> int:
    tokens = 0
    if tools_key:
        tokens = _tools_tokens.get((tools_key, model))
        if tokens is None:  # counted on the tools' spaced JSON, as it always was
            tokens = _remember(_tools_tokens, (tools_key, model),
                               estimate_text_tokens(json.dumps(params["tools"], sort_keys=True), model))
    system = params.get("system")
    if isinstance(system, str):
        tokens += estimate_text_tokens(system, model)
    elif isinstance(system, list):
        tokens += sum(estimate_text_tokens(str(b.get("text", "")) if isinstance(b, dict) else str(b), model) for b in system)
    return tokens


def _stable_prefix_hash(params: dict, tools_key: bytes) -> str | None:
    # The hash of the prefix without its markers, memoised on its JSON.
    system = params.get("system")
    key = (tools_key, system if isinstance(system, str) else fastjson.dumps(system))
    if key in _prefix_hashes:
        return _prefix_hashes[key]

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    if isinstance(system, str):
        system = [{"type": "text", "text": system}] if system else None
    if not system and not params.get("tools"):
        digest = None
    else:
        payload = json.dumps({"tools": strip(params.get("tools") or []), "system": strip(system or [])},
                             sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return _remember(_prefix_hashes, key, digest)


# --------------------------------------------------------------------------- TTL economics


def long_gap_share(timing: SessionTiming | None, settings: PromptCacheSettings, *, agent: bool) -> float:
    """Estimated chance that the next gap outlives a 5-minute entry but not a
    1-hour one: the prior, updated with the gaps this session has shown."""
    prior = settings.long_gap_prior_agent if agent else settings.long_gap_prior_chat
    gaps = timing.observed_gaps() if timing else []
    if not gaps:
        return prior
    long_gaps = sum(1 for g in gaps if settings.ttl_1h_min_gap_seconds < g <= settings.ttl_1h_max_gap_seconds)
    weight = settings.prior_weight_calls
    return (prior * weight + long_gaps) / (weight + len(gaps))


def choose_ttl(new_tokens: int, total_tokens: int, long_share: float, settings: PromptCacheSettings) -> tuple[str, str]:
    """5m or 1h for this request's breakpoints, and why.

    The economics, per input-price unit (w5 = 1.25, w1 = 2, r = 0.1):

    - This request reads what earlier turns cached and *writes* only what is
      new since then (``new_tokens``: the last reply and the new user turn; on
      a session's first call, everything). Choosing 1h costs (w1 - w5) x new
      extra, now, for certain.
    - The entry this request writes covers the whole prompt (``total_tokens``):
      a read refreshes an entry's TTL, so what matters is only the gap until the
      next call. If that gap is longer than 5 minutes but within the hour, a 5m
      entry is gone and the next call rewrites everything at w5, where a 1h
      entry would have been read at r: 1h saves (w5 - r) x total.
    - Gaps over an hour defeat both; gaps under 5 minutes need neither.

    So 1h pays when  p x (w5 - r) x total  >  (w1 - w5) x new,  with p the
    estimated share of gaps between 5 minutes and an hour. On a first call
    (new = total) that needs p > 0.75 / 1.15 = 0.65; once the conversation is
    20x longer than a turn adds, p > 3% is enough, which is why long agent
    sessions with occasional pauses end up on 1h.
    """
    w5, w1, r = settings.write_5m_multiplier, settings.write_1h_multiplier, settings.read_multiplier
    expected_saving = long_share * (w5 - r) * total_tokens
    extra_cost = (w1 - w5) * new_tokens
    if expected_saving > extra_cost:
        return TTL_1H, f"ttl 1h: P(5m-1h gap)~{long_share:.2f} x {w5 - r:.2f} x {total_tokens:,} > {w1 - w5:.2f} x {new_tokens:,} new tokens"
    return TTL_5M, f"ttl 5m: P(5m-1h gap)~{long_share:.2f} x {w5 - r:.2f} x {total_tokens:,} <= {w1 - w5:.2f} x {new_tokens:,} new tokens"


# --------------------------------------------------------------------------- shaping


def _with_marker(block: Any, ttl: str) -> dict:
    marked = dict(block) if isinstance(block, dict) else {"type": "text", "text": str(block)}
    marked["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return marked


def _with_caller_ttl(block: dict, ttl: str) -> dict:
    """A copy of a caller's block whose TTL-less marker now names ``ttl`` (its other keys kept)."""
    marked = dict(block)
    marked["cache_control"] = {**block["cache_control"], "ttl": ttl}
    return marked


def _ttl_at(position: tuple[int, int, int], wanted: str, fixed: list[_Marker]) -> str:
    """The API processes breakpoints in prefix order and rejects a 1h one after
    a 5m one: a marker whose TTL is ours to choose adapts to the markers whose
    TTL is fixed (the caller's explicit ones; also its TTL-less ones when they
    are not adopted). Every adaptable marker wanting the same TTL, the result
    stays valid: 1h before the first fixed 5m, 5m after the last fixed 1h."""
    if wanted == TTL_1H and any(m.ttl == TTL_5M and m.position < position for m in fixed):
        return TTL_5M
    if wanted == TTL_5M and any(m.ttl == TTL_1H and m.position > position for m in fixed):
        return TTL_1H
    return wanted


def shape_request(
    params: dict,
    model: str,
    settings: PromptCacheSettings,
    timing: SessionTiming | None,
    markers: list[_Marker] | None = None,
) -> tuple[dict, PromptCacheDecision]:
    """The request with cache breakpoints added, and what was decided.
    ``markers``: ``caller_markers(params)`` when the caller has them already."""
    if not isinstance(params, dict) or not isinstance(params.get("messages", []), list):
        raise ValueError("shape_request: params must be a Messages API request dict with a 'messages' list")
    tools_key = _tools_key(params)
    stable_hash = _stable_prefix_hash(params, tools_key)
    caller = caller_markers(params) if markers is None else markers
    # TTL-less caller markers get the request's TTL, unless the setting is off
    # or this is the auto_5m baseline (a client without us adopts nothing).
    adopt = settings.adopt_caller_markers_without_ttl and settings.strategy != "auto_5m"
    adoptable = [m for m in caller if adopt and not m.explicit]
    fixed = [m for m in caller if not (adopt and not m.explicit)]

    def unchanged(reason: str, cached: int = 0) -> tuple[dict, PromptCacheDecision]:
        return dict(params), PromptCacheDecision(False, None, len(caller), reason, cached, 0, None, stable_hash)

    if not settings.enabled:
        return unchanged("prompt caching disabled")
    messages: list = params.get("messages") or []
    free = MAX_BREAKPOINTS - len(caller)
    if free <= 0 and not adoptable:
        return unchanged(f"caller set {len(caller)} breakpoints: none left to add (API maximum {MAX_BREAKPOINTS})")

    minimum = settings.minimum_for(model)
    reach = minimum * (1 - settings.min_length_margin)
    stable_tokens = _stable_prefix_tokens(params, model, tools_key)
    # Cumulative tokens after each message (prefix sizes at message ends).
    cumulative: list[int] = []
    running = stable_tokens
    for message in messages:
        running += estimate_message_tokens(message, model) if isinstance(message, dict) else 0
        cumulative.append(running)
    total = running

    if settings.strategy == "auto_5m":
        # The baseline a client gets without us: one automatic breakpoint, default TTL.
        if params.get("cache_control") is not None:
            return unchanged("caller set the top-level automatic cache_control", total)
        if total < reach:
            return unchanged(f"prompt ~{total:,} tokens: below the {minimum:,}-token cacheable minimum for {model}")
        shaped = dict(params)
        shaped["cache_control"] = {"type": "ephemeral", "ttl": TTL_5M}
        return shaped, PromptCacheDecision(
            True, TTL_5M, len(caller) + 1, "auto_5m: plain 5-minute automatic cache_control (no anchors, no TTL choice)",
            total, 1, None, stable_hash,
        )

    users = _user_indexes(messages)
    conversation = timing is not None or len(messages) > 1
    agent = bool(params.get("tools")) or any(
        isinstance(m, dict) and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in m["content"])
        for m in messages
    )

    # Where markers could go, by value.
    plan: list[tuple[str, tuple[int, int, int]]] = []
    caller_positions = {m.position for m in caller}
    has_auto = params.get("cache_control") is not None
    moving_index = users[-1] if users else (len(messages) - 1 if messages else None)
    if conversation and moving_index is not None and not has_auto and total >= reach:
        block = _last_markable_block(messages[moving_index].get("content"))
        if block is not None:
            position = (2, moving_index, max(block, 0))
            covered = any(p >= position for p in caller_positions if p[0] == 2 and p[1] == moving_index)
            if not covered:
                plan.append(("moving", (3, 0, 0) if settings.strategy == "auto" else position))
    system = params.get("system")
    if stable_tokens >= reach:
        if system:
            last_system = len(system) - 1 if isinstance(system, list) else 0
            if isinstance(system, list):
                while last_system >= 0 and not (isinstance(system[last_system], dict) and system[last_system].get("type") == "text" and system[last_system].get("text")):
                    last_system -= 1
            if last_system >= 0 and (1, last_system, 0) not in caller_positions:
                plan.append(("system", (1, last_system, 0)))
        elif params.get("tools"):
            last_tool = len(params["tools"]) - 1
            if (0, last_tool, 0) not in caller_positions:
                plan.append(("tools", (0, last_tool, 0)))
    if settings.anchor_previous_turn and conversation and len(users) >= 2:
        previous = users[-2]
        block = _last_markable_block(messages[previous].get("content"))
        if block is not None and cumulative[previous] >= reach:
            position = (2, previous, max(block, 0))
            if position not in caller_positions:
                plan.append(("previous turn", position))
    if caller and not settings.add_to_marked_requests:
        plan = []  # the caller placed its own breakpoints: adopt their TTLs at most
    plan = plan[:max(free, 0)]
    if total < reach:
        # Nothing here can be cached (every plan needs a prefix this long); a
        # TTL-less caller marker is harmless as it is.
        return unchanged(f"prompt ~{total:,} tokens: below the {minimum:,}-token cacheable minimum for {model}")
    if not plan and not adoptable:
        if caller:
            return unchanged(f"caller's {len(caller)} breakpoint(s) already cover the prefix", _covered_tokens(caller, cumulative, stable_tokens, total))
        return unchanged(f"stable prefix ~{stable_tokens:,} tokens below the {minimum:,}-token minimum and no conversation to cache")

    # TTL for what this request writes: what is new since the previous turn,
    # or everything when the previous turn's entries cannot be read any more.
    lost = _conversation_cache_lost(timing, model, settings)
    new_tokens = total - (cumulative[users[-2]] if conversation and len(users) >= 2 and not lost else 0)
    # A conversation sent without a session (no session_id) still has turns
    # and pauses: it gets the prior alone. Only a lone first message has no one to time.
    timed = timing is not None or (conversation and len(users) >= 2)
    share = long_gap_share(timing, settings, agent=agent) if timed else 0.0
    if timed:
        ttl, ttl_reason = choose_ttl(new_tokens, total, share, settings)
        if timing is None:
            ttl_reason += " (no session timing: prior only)"
    else:
        ttl, ttl_reason = TTL_5M, "ttl 5m: no session to time"
    if lost:
        ttl_reason = f"{lost}: this call rewrites the cache; {ttl_reason}"

    shaped = dict(params)  # only the containers we change are copied below
    messages_copied = False

    def rewrite(position: tuple[int, int, int], change) -> None:
        """Replace the block at ``position`` by ``change(block)``, copying only its containers."""
        nonlocal messages_copied
        section, item, block = position
        if section == 0:
            tools = list(shaped["tools"])
            tools[item] = change(tools[item])
            shaped["tools"] = tools
        elif section == 1:
            if isinstance(shaped["system"], str):
                shaped["system"] = [change({"type": "text", "text": shaped["system"]})]
            else:
                blocks = list(shaped["system"])
                blocks[item] = change(blocks[item])
                shaped["system"] = blocks
        else:
            if not messages_copied:
                shaped["messages"] = list(messages)
                messages_copied = True
            message = dict(shaped["messages"][item])
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = [change({"type": "text", "text": content})]
            else:
                blocks = list(content)
                blocks[block] = change(blocks[block])
                message["content"] = blocks
            shaped["messages"][item] = message

    placed: list[str] = []
    placed_positions: list[tuple[int, int, int]] = []
    ttls: set[str] = set()
    for name, position in sorted(plan, key=lambda item: item[1]):
        marker_ttl = _ttl_at(position, ttl, fixed)
        ttls.add(marker_ttl)
        if position[0] == 3:
            shaped["cache_control"] = {"type": "ephemeral", "ttl": marker_ttl}
        else:
            rewrite(position, lambda b, t=marker_ttl: _with_marker(b, t))
        placed.append(name)
        placed_positions.append(position)

    # The caller's TTL-less markers: the request's TTL, within the same ordering
    # rule. 5m is what they already mean (the API's default): left as they are.
    adopted = 0
    for marker in adoptable:
        marker_ttl = _ttl_at(marker.position, ttl, fixed)
        ttls.add(marker_ttl)
        if marker_ttl == TTL_5M:
            continue
        if marker.position[0] == 3:
            shaped["cache_control"] = {**params["cache_control"], "ttl": marker_ttl}
        else:
            rewrite(marker.position, lambda b, t=marker_ttl: _with_caller_ttl(b, t))
        adopted += 1

    all_markers = caller + [_Marker(p, ttl) for p in placed_positions]
    cached = _covered_tokens(all_markers, cumulative, stable_tokens, total)
    adoption_note = ""
    if adoptable:
        kept = len(adoptable) - adopted
        adoption_note = "; caller markers without a ttl: " + ", ".join(
            part for part in (f"{adopted} given ttl 1h" if adopted else "", f"{kept} left at the default 5m" if kept else "") if part
        )
    if not placed and not adopted:
        # Nothing to add and the caller's TTL-less markers already mean the chosen 5m.
        why = f"caller set {len(caller)} breakpoints: none left to add" if free <= 0 else f"caller's {len(caller)} breakpoint(s) already cover the prefix"
        return unchanged(f"{why}{adoption_note}; {ttl_reason}", cached)

    effective_ttl = TTL_1H if ttls == {TTL_1H} else TTL_5M if ttls == {TTL_5M} else "mixed"
    if placed:
        reason = f"{settings.strategy} breakpoints at {', '.join(placed)}" + (f" (+{len(caller)} from caller)" if caller else "")
    else:
        reason = f"{settings.strategy}: no breakpoint added ({len(caller)} from caller)"
    reason += f"{adoption_note}; {ttl_reason}"
    if effective_ttl != ttl:
        reason += f"; ttl adjusted to the caller's markers ({effective_ttl})"
    decision = PromptCacheDecision(
        True, effective_ttl, len(caller) + len(placed), reason, cached, len(placed),
        round(share, 4) if timed else None, stable_hash, adopted,
    )
    assert decision.breakpoints <= MAX_BREAKPOINTS
    return shaped, decision


def _conversation_cache_lost(timing: SessionTiming | None, model: str, settings: PromptCacheSettings) -> str | None:
    """Why the previous turn's cache entries are certainly gone, if they are."""
    if timing is None:
        return None
    if timing.previous_model and timing.previous_model != model:
        return f"model changed from {timing.previous_model}"
    pause = timing.seconds_since_previous_call
    if pause is not None and pause > settings.ttl_1h_max_gap_seconds:
        return f"{pause / 60:.0f} min since the previous call"
    return None


def _covered_tokens(markers: list[_Marker], cumulative: list[int], stable_tokens: int, total: int) -> int:
    """Estimated tokens up to the last breakpoint (what is read or written in cache)."""
    covered = 0
    for marker in markers:
        section, item, _ = marker.position
        if section == 3:
            covered = max(covered, total)
        elif section == 2:
            covered = max(covered, cumulative[item] if item < len(cumulative) else total)
        else:
            covered = max(covered, stable_tokens)
    return covered
