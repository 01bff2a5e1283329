"""Fault injection: errors, broken streams, slow answers and dropped connections.

Queued faults (``inject``) are used first, in order; then, if a rate is set,
each API request fails with that probability, with a kind drawn from the
rate's kinds. Only ``/v1/...`` requests are affected (never ``/_sim/...``).
A ``stream_overloaded`` fault waits for the next streaming Messages request;
the other kinds hit the next request on a matching path.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass

from .errors import APIError

FAULT_KINDS = ("429", "529", "500", "400", "stream_overloaded", "timeout", "reset", "cut_body")
DEFAULT_RANDOM_KINDS = ("429", "529", "500")
DEFAULT_TIMEOUT_SECONDS = 5.0

_STATUS_FAULTS = {
    "429": ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit (simulated)."),
    "529": ("overloaded_error", "Overloaded (simulated)"),
    "500": ("api_error", "Internal server error (simulated)"),
    "400": ("invalid_request_error", "Simulated invalid request fault."),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: float = 0.0  # seconds, sent on 429 and 529
    seconds: float = DEFAULT_TIMEOUT_SECONDS  # how long a "timeout" fault stalls
    path: str = "/v1/"  # only requests whose path starts with this
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")

    def as_api_error(self) -> APIError:
        """The error a status-code fault answers with."""
        error_type, default_message = _STATUS_FAULTS[self.kind]
        return APIError(error_type, self.message or default_message, status=int(self.kind))

    def applies_to(self, path: str, streaming: bool) -> bool:
        return path.startswith(self.path) and (self.kind != "stream_overloaded" or streaming)


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._rate = 0.0
        self._random_faults: tuple[Fault, ...] = ()
        self._rng = random.Random(0)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def inject(self, fault: Fault, count: int = 1) -> None:
        with self._lock:
            self._queue.extend([fault] * count)

    def set_rate(self, rate: float, faults: list[Fault], seed: int) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
        with self._lock:
            self._rate = rate
            self._random_faults = tuple(faults)
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate = 0.0
            self._random_faults = ()

    def take(self, path: str, streaming: bool) -> Fault | None:
        """The fault to apply to this request, if any (consumes a queued one)."""
        with self._lock:
            for fault in self._queue:
                if fault.applies_to(path, streaming):
                    self._queue.remove(fault)
                    return fault
            if self._rate and self._rng.random() < self._rate:
                candidates = [fault for fault in self._random_faults if fault.applies_to(path, streaming)]
                if candidates:
                    return self._rng.choice(candidates)
        return None
