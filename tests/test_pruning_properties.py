"""Property tests: whatever the conversation and the parameters, pruning
returns a valid Messages API conversation that is never larger than its input,
never touches the input, the cached prefix or the final user turn (kept
verbatim, nothing added), never mixes its summary into the user's current
request, and keeps tool_use/tool_result pairs together.

Conversations are generated with tool loops, parallel tool calls, thinking and
redacted_thinking blocks, images (in user turns and inside tool results),
repeated tool outputs, re-read files, oversized outputs, credentials, string
or block content, is_error results and text after tool results.
"""

from __future__ import annotations

import copy
import itertools
import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mcp_tars import tokens as tok
from mcp_tars.pruning import PruningSettings, prune_messages, validate_conversation

WORDS = (
    "deploy cache retry worker port host config review ledger invoice schema queue token budget migration "
    "rollback cluster region latency error timeout replica shard index service gateway owner decision"
).split()
FACTS = [
    "Deploy to prod-eu-west-3 on port 8443.",
    "Priya Raman approves the release.",
    "We decided to use Redis Streams instead of Kafka.",
    "The runbook is https://wiki.acme.io/page/x7/runbook and the config is /etc/acme/limits.yaml.",
    "Pin the SDK to 2.14.3; memory limit is 24 GiB.",
    "export STRIPE_SECRET_KEY=sk_live_9fK2mQ7xR4tY8uP1aZ3cV6bN",
    "DB_PASSWORD=Tr0ub4dor&3xyzzy",
]
FILES = ["src/app.py", "src/db.py", "config/prod.yaml"]
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
SMALL = PruningSettings(
    oversized_tool_result_tokens=120, oversized_text_tokens=200, head_tokens=30, tail_tokens=20,
    duplicate_min_tokens=10, superseded_min_tokens=10, keep_images_last_messages=2,
)


class _Conversation:
    """Builds one conversation from a seeded random generator. Hypothesis draws
    the seed and the sizes (so failures shrink to small conversations); the
    content comes from the seed, which keeps generation fast."""

    def __init__(self, rng: random.Random, turns: int, max_steps: int, big: bool):
        self.rng = rng
        self.ids = itertools.count()
        self.big = big
        self.outputs = [self.text(big=True) for _ in range(3)]  # a small pool: outputs repeat
        self.messages: list[dict] = []
        for _ in range(turns):
            self.messages.append(self.user_text())
            steps = rng.randint(0, max_steps)
            for _ in range(steps):
                self.messages += self.tool_step()
            if steps and rng.random() < 0.2:
                break  # the conversation ends inside a tool loop: the last user turn is tool results
            body = self.text()
            self.messages.append({"role": "assistant", "content": body if rng.random() < 0.5 else [{"type": "text", "text": body}]})
        if self.messages[-1]["role"] == "assistant":
            self.messages.append(self.user_text())

    def sentence(self) -> str:
        if self.rng.random() < 0.2:
            return self.rng.choice(FACTS)
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(2, 12))).capitalize() + "."

    def text(self, big: bool = False) -> str:
        parts = [self.sentence() for _ in range(self.rng.randint(1, 3))]
        if big and self.big and self.rng.random() < 0.5:
            parts *= self.rng.randint(10, 60)  # an oversized output
        return "\n".join(parts)

    def user_text(self) -> dict:
        body = self.text()
        if self.rng.random() < 0.5:
            return {"role": "user", "content": body}
        blocks = [{"type": "text", "text": body}]
        if self.rng.random() < 0.2:
            blocks.insert(0, dict(IMAGE))
        return {"role": "user", "content": blocks}

    def tool_step(self) -> list[dict]:
        rng = self.rng
        blocks = []
        if rng.random() < 0.25:
            blocks.append({"type": "thinking", "thinking": self.text(), "signature": f"sig{next(self.ids)}"})
        if rng.random() < 0.1:
            blocks.append({"type": "redacted_thinking", "data": f"opaque{next(self.ids)}"})
        if rng.random() < 0.5:
            blocks.append({"type": "text", "text": self.text()})
        results = []
        for _ in range(rng.randint(1, 3)):
            tool_id = f"toolu_{next(self.ids)}"
            kind = rng.choice(["read_file", "bash", "write_file", "search"])
            if kind == "read_file":
                tool_input = {"path": rng.choice(FILES)}
            elif kind == "write_file":
                tool_input = {"path": rng.choice(FILES), "content": rng.choice(self.outputs)}
            else:
                tool_input = {"command": self.sentence()}
            blocks.append({"type": "tool_use", "id": tool_id, "name": kind, "input": tool_input})
            output = rng.choice(self.outputs) if rng.random() < 0.5 else self.text(big=True)
            content = rng.choice([output, [{"type": "text", "text": output}], [{"type": "text", "text": output}, dict(IMAGE)], [dict(IMAGE)]])
            result = {"type": "tool_result", "tool_use_id": tool_id, "content": content}
            if rng.random() < 0.15:
                result["is_error"] = True
            results.append(result)
        if rng.random() < 0.15:
            results.append({"type": "text", "text": self.text()})  # text after the results is allowed
        return [{"role": "assistant", "content": blocks}, {"role": "user", "content": results}]


@st.composite
def conversations(draw):
    rng = random.Random(draw(st.integers(0, 2**32)))
    return _Conversation(rng, draw(st.integers(1, 9)), draw(st.integers(0, 4)), draw(st.booleans())).messages


@st.composite
def cases(draw):
    messages = draw(conversations())
    size = tok.estimate_request_tokens(messages)
    max_tokens = draw(st.one_of(st.integers(1, 400), st.integers(1, max(2, size))))
    return {
        "messages": messages,
        "system": draw(st.sampled_from([None, "You are a coding agent.", [{"type": "text", "text": "Be terse."}]])),
        "max_tokens": max_tokens,
        "level": draw(st.sampled_from(["auto", "light", "medium", "aggressive"])),
        "protected_prefix": draw(st.integers(0, len(messages))) if draw(st.booleans()) else 0,
        "budget_used_share": draw(st.sampled_from([None, 0.5, 0.85, 0.99])),
    }


def _blocks(message: dict) -> list:
    content = message["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def check(case: dict, settings_: PruningSettings) -> None:
    messages = case["messages"]
    assert validate_conversation(messages) == [], "the generator must produce valid conversations"
    original = copy.deepcopy(messages)
    result = prune_messages(settings=settings_, **case)

    assert messages == original, "the input was modified"
    event(f"level {result.level}")
    for action in sorted({r["action"] for r in result.removed}):
        event(f"action {action}")
    for note in result.notes:
        event("note " + note.split(":")[0].split(";")[0][:40])
    assert validate_conversation(result.messages) == [], (validate_conversation(result.messages), result.notes)
    assert not any("internal error" in note for note in result.notes), result.notes
    before = tok.estimate_request_tokens(messages, case["system"])
    after = tok.estimate_request_tokens(result.messages, case["system"])
    assert result.tokens_before == before
    assert result.tokens_after == after
    assert after <= before
    if result.level == "none":
        assert result.messages == messages
        return
    assert after < before

    moved = any(note.startswith("moved the cache breakpoint") for note in result.notes)
    prefix = case["protected_prefix"]
    if not moved:
        assert result.protected_prefix_messages == prefix
        assert all(a is b for a, b in zip(result.messages[:prefix], messages[:prefix])), "cached prefix modified"

    # The turn the model answers now reaches it exactly as it was sent: the
    # final user turn, every block unchanged and nothing added (no summary, no
    # shortened tool result), with the assistant turn its tool results answer.
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    assert result.messages[-1] == messages[-1], result.notes
    if any(b.get("type") == "tool_result" for b in _blocks(messages[last_user])):
        # ... and so does the assistant turn it answers, thinking blocks included.
        assert result.messages[-2] == messages[-2]
    # The user's current request (the last user message with text of its own)
    # keeps its words to itself: pruning's summary never joins it. Either it is
    # still there with exactly its text blocks, or it was dropped (and quoted
    # with the summary), or it lost waste of its own (credentials, oversized text).
    def texts(message: dict) -> list[str]:
        return [b["text"] for b in _blocks(message) if b.get("type") == "text"]

    request = max((i for i, m in enumerate(messages) if m["role"] == "user" and texts(m)), default=None)
    request_dropped = any(n.startswith("the user's current request lies before") for n in result.notes)
    request_trimmed = any(r.get("index") == request for r in result.removed)
    if request is not None and not request_dropped and not request_trimmed:
        assert texts(messages[request]) in [texts(m) for m in result.messages if m["role"] == "user"], result.notes

    # Credential values never reach a summary, nor any rewritten message; only
    # the cached prefix and the last user turn (with the turn it answers) keep theirs.
    assert "sk_live_9fK2mQ7xR4tY8uP1aZ3cV6bN" not in (result.summary or "")
    assert "Tr0ub4dor&3xyzzy" not in (result.summary or "")
    untouchable = 2 if any(b.get("type") == "tool_result" for b in _blocks(messages[-1])) else 1
    if not moved:
        middle = result.messages[prefix : len(result.messages) - untouchable]
        assert "sk_live_9fK2mQ7xR4tY8uP1aZ3cV6bN" not in str(middle)


SETTINGS = dict(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(**SETTINGS)
@given(cases())
def test_pruned_conversations_are_valid_and_smaller_default_settings(case):
    check(case, PruningSettings())


@settings(**SETTINGS)
@given(cases())
def test_pruned_conversations_are_valid_and_smaller_small_thresholds(case):
    # Tiny thresholds make every kind of waste removal fire on small inputs.
    check(case, SMALL)


@st.composite
def tool_loop_cases(draw):
    """What automatic pruning meets in a long agent session: the conversation
    ends inside a tool loop, everything but its last few messages is already in
    the prompt cache (protected), and the target is below what the final turn
    alone needs, so pruning works at its limit."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    conversation = _Conversation(rng, draw(st.integers(1, 6)), draw(st.integers(0, 6)), True)
    messages = conversation.messages
    if not any(b.get("type") == "tool_result" for b in _blocks(messages[-1])):
        messages = messages + conversation.tool_step()
    n = len(messages)
    return {
        "messages": messages,
        "system": None,
        "max_tokens": draw(st.integers(1, max(2, tok.estimate_request_tokens(messages[-2:])))),
        "level": "auto",
        "protected_prefix": draw(st.integers(max(0, n - 9), n - 1)),
        "budget_used_share": None,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tool_loop_cases(), st.booleans())
def test_pruning_at_its_limit_never_touches_the_final_turn_or_mixes_into_the_request(case, small):
    check(case, SMALL if small else PruningSettings())


@settings(**SETTINGS)
@given(conversations(), st.integers(0, 3), st.sampled_from(["first_role", "drop_result", "swap", "empty", "result_first"]))
def test_validator_catches_broken_conversations(messages, which, how):
    """Each kind of damage the API rejects is reported."""
    broken = copy.deepcopy(messages)
    if how == "first_role":
        broken.insert(0, {"role": "assistant", "content": "Hello."})
    elif how == "swap" and len(broken) > 1:
        broken[0], broken[1] = broken[1], broken[0]
    elif how == "empty":
        broken[min(which, len(broken) - 1)]["content"] = []
    elif how in ("drop_result", "result_first"):
        answers = [i for i, m in enumerate(broken) if any(b.get("type") == "tool_result" for b in _blocks(m))]
        if not answers:
            return
        message = broken[answers[which % len(answers)]]
        results = [b for b in message["content"] if b.get("type") == "tool_result"]
        if how == "drop_result":
            message["content"] = [b for b in message["content"] if b is not results[0]] or [{"type": "text", "text": "x"}]
        else:
            message["content"] = [{"type": "text", "text": "before"}] + message["content"]
    else:
        return
    assert validate_conversation(broken) != []
