"""The Messages API's server-sent events, read on the side and written for replays.

A pure core for the gateway, which relays a stream byte for byte and never
waits on this module to pass a frame on:

- ``StreamReader.feed(chunk)`` reads the frames of a streamed answer as they
  go by: the message of ``message_start``, the usage that ``message_delta``
  updates (its fields are cumulative totals), the stop reason, whether
  ``message_stop`` arrived, an ``error`` event. Content frames are only kept
  (as bytes) and parsed if ``content`` is asked for, after the stream: only a
  cacheable answer needs them (text and thinking blocks).
- ``replay(message)`` writes a complete message as a well-formed event stream
  (the events the API sends, in its order), for an answer from the response cache.
"""

from __future__ import annotations

import json
from typing import Any

# Blocks a cached answer may hold (the response cache never keeps tool calls).
_REPLAYABLE_BLOCKS = ("text", "thinking", "redacted_thinking")


class StreamReader:
    """What a relayed stream has said so far. ``message`` is None until
    ``message_start``; afterwards it has the API's id, model and usage so far."""

    def __init__(self, *, keep_content: bool = True):
        self._buffer = b""
        self.message: dict[str, Any] | None = None
        self.complete = False  # message_stop seen
        self.error: dict[str, Any] | None = None  # the `error` event's error object
        self._keep_content = keep_content  # False once the answer cannot be cached (or nobody asked)
        self._content_frames: list[bytes] = []  # parsed only if the content is asked for (a cacheable answer)
        self._blocks: dict[int, dict[str, Any]] = {}

    @property
    def content(self) -> list[dict[str, Any]] | None:
        """The answer's content blocks, when they were kept (text and thinking only)."""
        frames, self._content_frames = self._content_frames, []
        for data in frames:
            if not self._keep_content:
                break
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if isinstance(payload, dict):
                self._content_event(payload.get("type"), payload)
        if not self._keep_content:
            return None
        return [self._blocks[i] for i in sorted(self._blocks)]

    def feed(self, chunk: bytes) -> None:
        data = self._buffer + chunk
        frames = data.replace(b"\r\n", b"\n").split(b"\n\n")
        self._buffer = frames.pop()  # an unfinished frame waits for the next chunk
        for frame in frames:
            if frame:
                self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        event = None
        data: list[bytes] = []
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
        if event == b"ping" or not data:
            return
        if event is not None and event.startswith(b"content_block"):
            if self._keep_content:  # the bulk of a stream: nothing in it for the ledger, read later if at all
                self._content_frames.append(b"\n".join(data))
            return
        try:
            payload = json.loads(b"\n".join(data))
        except ValueError:
            return
        if isinstance(payload, dict):
            self._event(payload)

    def _event(self, e: dict[str, Any]) -> None:
        kind = e.get("type")
        if kind == "message_start" and isinstance(e.get("message"), dict):
            self.message = dict(e["message"])
            self.message["usage"] = dict(self.message.get("usage") or {})
        elif kind == "message_delta" and self.message is not None:
            delta = e.get("delta") or {}
            for key in ("stop_reason", "stop_sequence"):
                if key in delta:
                    self.message[key] = delta[key]
            usage = e.get("usage") or {}
            # cumulative totals: the last value of a field is the right one
            self.message["usage"].update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            self.error = e.get("error") if isinstance(e.get("error"), dict) else {"type": "api_error"}
        elif self._keep_content and isinstance(kind, str) and kind.startswith("content_block"):
            self._content_event(kind, e)  # a frame without an `event:` line

    def _content_event(self, kind: str | None, e: dict[str, Any]) -> None:
        index = e.get("index")
        if kind == "content_block_start":
            block = e.get("content_block") or {}
            if block.get("type") not in _REPLAYABLE_BLOCKS:
                self._keep_content = False  # a tool call: never cached, so not kept
                self._blocks.clear()
                return
            self._blocks[index] = dict(block)
        elif kind == "content_block_delta" and index in self._blocks:
            block, delta = self._blocks[index], e.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = delta.get("signature", "")
            else:  # citations and other deltas: not replayed, so not cached
                self._keep_content = False
                self._blocks.clear()


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One server-sent event; the ``event:`` line repeats the payload's type, as the API does."""
    return b"event: " + event_type.encode() + b"\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def replay(message: dict[str, Any]) -> list[bytes]:
    """A complete message as the event stream the API would have sent for it."""
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    events = [event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            events.append(event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {**block, "text": ""}}))
            if index == 0:
                events.append(event("ping", {"type": "ping"}))
            events.append(event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "text_delta", "text": block.get("text", "")}}))
        elif kind == "thinking":
            events.append(event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {**block, "thinking": "", "signature": ""}}))
            events.append(event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "thinking_delta", "thinking": block.get("thinking", "")}}))
            events.append(event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "signature_delta", "signature": block.get("signature", "")}}))
        else:  # redacted_thinking and the like arrive whole in their start event
            events.append(event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append(event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(event("message_stop", {"type": "message_stop"}))
    return events
