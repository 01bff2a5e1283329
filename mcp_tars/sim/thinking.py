"""Extended thinking: the thinking block the sim writes, and its signature.

With ``thinking`` of type ``enabled`` or ``adaptive`` the answer starts with a
thinking block (the sim always "decides" to think, so tests are deterministic).
Its ``signature`` is an HMAC of the thinking text under a fixed key: like the
real API's, it is opaque, and a block sent back with its text or signature
changed is rejected (``validation.py``). Signatures the sim did not issue
(tests' own fixtures) are not checked. Thinking tokens are output tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

_KEY = b"mcp-tars-sim-thinking-signature"
THINKING_TYPES_THAT_THINK = ("enabled", "adaptive")


SIGNATURE_PREFIX = "Sim"


def sign(thinking: str) -> str:
    digest = hmac.new(_KEY, thinking.encode("utf-8"), hashlib.sha256).digest()
    return SIGNATURE_PREFIX + base64.b64encode(digest).decode("ascii")


def check_signature(thinking: str, signature: str) -> bool:
    """A signature the sim issued must match its text; one it did not issue
    (a test's own fixture, "sig-...") is taken as from elsewhere and not checked."""
    if not signature.startswith(SIGNATURE_PREFIX):
        return True
    return hmac.compare_digest(sign(thinking), signature)


def wants_thinking(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in THINKING_TYPES_THAT_THINK


def thinking_block(model: str, tag: str) -> dict[str, Any]:
    text = f"Simulated thinking (model={model}, q={tag}): the question is clear; answer it directly."
    return {"type": "thinking", "thinking": text, "signature": sign(text)}
