"""Prompt caching as the real API reports it in ``usage``.

An entry is the prefix ending at a breakpoint (a hash chain over the segment
fingerprints, seeded with the model), alive while ``now - last_used < ttl``.
For one request:

1. Hit: for each breakpoint, look back up to ``lookback_blocks`` blocks for the
   longest prefix with a live entry (this is how an automatic breakpoint that
   moved forward with the conversation still finds the previous turn's entry).
   The best hit's tokens are ``cache_read_input_tokens``; a hit refreshes it.
2. Writes: every later breakpoint whose whole prefix reaches the model's
   minimum is written. The tokens between the previous boundary (the hit or
   the previous written breakpoint) and a written breakpoint are charged at
   that breakpoint's TTL (``ephemeral_5m`` / ``ephemeral_1h``).
3. Everything after the last read-or-written boundary is ``input_tokens``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from .prompt import Prompt

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
DEFAULT_LOOKBACK_BLOCKS = 20
_PURGE_EVERY_REQUESTS = 1000


@dataclass(slots=True)
class CacheEntry:
    tokens: int
    ttl: str
    last_used: float

    def alive(self, now: float) -> bool:
        return now - self.last_used < TTL_SECONDS[self.ttl]


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    input_tokens: int
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens


class PromptCache:
    """Thread-safe store of cached prefixes, shared by every model and request."""

    def __init__(self, lookback_blocks: int = DEFAULT_LOOKBACK_BLOCKS) -> None:
        self.lookback_blocks = lookback_blocks
        self._entries: dict[bytes, CacheEntry] = {}
        self._lock = threading.Lock()
        self._requests_since_purge = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def apply(self, model: str, prompt: Prompt, minimum_tokens: int, now: float) -> CacheOutcome:
        """Look up and update the cache for one request; return its token split."""
        total = prompt.total_tokens
        if not prompt.breakpoints:
            return CacheOutcome(input_tokens=total)
        prefix_keys = _prefix_keys(model, prompt)
        prefix_tokens: list[int] = []
        running = 0
        for segment in prompt.segments:
            running += segment.tokens
            prefix_tokens.append(running)
        breakpoints = sorted(prompt.breakpoints, key=lambda b: b.index)

        with self._lock:
            self._purge_now_and_then(now)
            hit = self._longest_hit(prefix_keys, breakpoints, now)
            boundary = hit
            written = {"5m": 0, "1h": 0}
            for breakpoint in breakpoints:
                if breakpoint.index <= boundary or prefix_tokens[breakpoint.index] < minimum_tokens:
                    continue
                before = prefix_tokens[boundary] if boundary >= 0 else 0
                written[breakpoint.ttl] += prefix_tokens[breakpoint.index] - before
                self._entries[prefix_keys[breakpoint.index]] = CacheEntry(
                    prefix_tokens[breakpoint.index], breakpoint.ttl, now
                )
                boundary = breakpoint.index

        read = prefix_tokens[hit] if hit >= 0 else 0
        covered = prefix_tokens[boundary] if boundary >= 0 else 0
        return CacheOutcome(
            input_tokens=total - covered,
            cache_read_input_tokens=read,
            ephemeral_5m_input_tokens=written["5m"],
            ephemeral_1h_input_tokens=written["1h"],
        )

    def _longest_hit(self, prefix_keys: list[bytes], breakpoints, now: float) -> int:
        """Index of the longest live cached prefix reachable from a breakpoint, or -1."""
        best = -1
        for breakpoint in breakpoints:
            lowest = max(best + 1, breakpoint.index - self.lookback_blocks)
            for index in range(breakpoint.index, lowest - 1, -1):
                entry = self._entries.get(prefix_keys[index])
                if entry is not None and entry.alive(now):
                    best = index
                    break
        if best >= 0:
            self._entries[prefix_keys[best]].last_used = now
            # Shorter entries of this request's own breakpoints were read too.
            for breakpoint in breakpoints:
                entry = self._entries.get(prefix_keys[breakpoint.index])
                if breakpoint.index < best and entry is not None and entry.alive(now):
                    entry.last_used = now
        return best

    def _purge_now_and_then(self, now: float) -> None:
        self._requests_since_purge += 1
        if self._requests_since_purge < _PURGE_EVERY_REQUESTS:
            return
        self._requests_since_purge = 0
        dead = [key for key, entry in self._entries.items() if not entry.alive(now)]
        for key in dead:
            del self._entries[key]


def _prefix_keys(model: str, prompt: Prompt) -> list[bytes]:
    """Hash chain: key i identifies the model plus segments 0..i, in order."""
    keys: list[bytes] = []
    previous = hashlib.blake2b(model.encode(), digest_size=16).digest()
    for segment in prompt.segments:
        previous = hashlib.blake2b(previous + segment.fingerprint, digest_size=16).digest()
        keys.append(previous)
    return keys
