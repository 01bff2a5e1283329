"""Unit tests of context pruning (mcp_tars.pruning, summarize, credentials)."""

from __future__ import annotations

import copy
import random
import re

import pytest

from mcp_tars import tokens as tok
from mcp_tars.credentials import REDACTED, redact_credentials
from mcp_tars.pruning import (
    PruningSettings,
    choose_level,
    extend_pruned,
    prune_messages,
    validate_conversation,
)

SETTINGS = PruningSettings()


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def tool_call(tool_id, name, tool_input, text=None, thinking=None):
    blocks = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": "sig-" + tool_id})
    if text:
        blocks.append({"type": "text", "text": text})
    blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
    return {"role": "assistant", "content": blocks}


def tool_result(tool_id, content, is_error=False):
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": content}
    if is_error:
        block["is_error"] = True
    return {"role": "user", "content": [block]}


def chatter(n, start=0):
    """n alternating user/assistant messages of plain talk (n even)."""
    out = []
    for i in range(start, start + n // 2):
        out.append(user(f"Step {i}: please tidy up the module number {i} and report back."))
        out.append(assistant(f"Done with step {i}. I renamed two helpers and re-ran the tests, all green."))
    return out


def text_of(messages) -> str:
    return "\n".join(tok.content_text(m["content"]) for m in messages)


def log_output(lines, seed=0, marker=None):
    rng = random.Random(seed)
    out = [
        f"2026-11-2{rng.randint(0, 9)}T14:{rng.randint(10, 59)}:{rng.randint(10, 59)}Z INFO req={rng.getrandbits(48):012x} "
        f"GET /api/v1/items status=200 dur={rng.randint(2, 900)}ms"
        for _ in range(lines)
    ]
    if marker:
        out.insert(lines // 2, marker)
    return "\n".join(out)


# ---------------------------------------------------------------- basics


def test_under_target_is_returned_unchanged():
    messages = chatter(6) + [user("What next?")]
    result = prune_messages(messages, max_tokens=100_000, settings=SETTINGS)
    assert result.level == "none"
    assert result.messages == messages
    assert result.tokens_before == result.tokens_after == tok.estimate_request_tokens(messages)
    assert result.reduction_pct == 0.0


@pytest.mark.parametrize("level, kept", [("light", 20), ("medium", 10), ("aggressive", 3)])
def test_explicit_levels_keep_the_last_messages_and_summarise_the_rest(level, kept):
    messages = chatter(60) + [user("Summarise where we are.")]
    result = prune_messages(messages, max_tokens=100, level=level, settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.level == level
    # The kept part is the input's tail (the first kept user turn also carries the
    # summary); it opens on a user turn, so an even count keeps one more.
    if messages[-kept]["role"] == "assistant":
        kept += 1
    tail = messages[-kept:]
    assert result.messages[1:] == tail[1:]
    assert result.messages[0]["content"][0]["text"].startswith("[Summary of ")
    assert result.messages[0]["content"][-1] == {"type": "text", "text": tail[0]["content"]}
    dropped = [r for r in result.removed if r["action"] == "dropped"]
    assert dropped == [{"action": "dropped", "first_index": 0, "last_index": len(messages) - kept - 1,
                        "count": len(messages) - kept, "tokens": dropped[0]["tokens"]}]
    assert result.tokens_after < result.tokens_before


def test_an_even_keep_count_opens_on_the_user_turn_before():
    messages = chatter(30) + [user("Go on.")]
    # The last 10 messages start with an assistant message: one more is kept.
    result = prune_messages(messages, max_tokens=100, level="medium", settings=SETTINGS)
    assert len(result.messages) == 11
    assert result.messages[0]["role"] == "user"


def test_input_is_never_modified():
    messages = _agent_session()
    snapshot = copy.deepcopy(messages)
    for level in ("auto", "light", "medium", "aggressive"):
        result = prune_messages(messages, max_tokens=500, level=level, settings=SETTINGS)
        # Mutating the result must not reach the input either.
        for message in result.messages[1:]:
            if isinstance(message["content"], list):
                message["content"].append({"type": "text", "text": "mutated"})
    assert messages == snapshot


def test_bad_arguments_raise_value_errors_that_say_what_to_fix():
    with pytest.raises(ValueError, match="non-empty list"):
        prune_messages([], settings=SETTINGS)
    with pytest.raises(ValueError, match="level must be one of"):
        prune_messages([user("hi")], level="extreme", settings=SETTINGS)
    with pytest.raises(ValueError, match="max_tokens"):
        prune_messages([user("hi")], max_tokens=0, settings=SETTINGS)
    with pytest.raises(ValueError, match="protected_prefix"):
        prune_messages([user("hi")], protected_prefix=5, settings=SETTINGS)


# ---------------------------------------------------------------- tool pairs, thinking, images


def _agent_session():
    messages = [user("Deploy target is prod-eu-west-3; the admin port is 8443. Fix the flaky tests.")]
    for i in range(12):
        messages.append(tool_call(f"toolu_{i:02d}", "bash", {"command": f"pytest -q tests/test_{i}.py"}, text=f"Running batch {i}.", thinking=f"Batch {i} next."))
        messages.append(tool_result(f"toolu_{i:02d}", f"collected {i + 3} items\n{i + 3} passed in 0.{i}s"))
    messages.append(assistant("All batches pass."))
    messages.append(user("Which port was the admin one?"))
    return messages


def test_a_cut_inside_a_tool_loop_turns_orphaned_results_into_text():
    messages = [user("Start.")]
    for i in range(8):
        messages.append(tool_call(f"t{i}", "bash", {"command": f"step {i}"}))
        messages.append(tool_result(f"t{i}", f"output of step {i}"))
    result = prune_messages(messages, max_tokens=50, level="aggressive", settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    first = result.messages[0]
    assert first["role"] == "user"
    assert all(b["type"] == "text" for b in first["content"])  # no tool_result without its tool_use
    assert "[result of an earlier bash call]\noutput of step 6" in first["content"][1]["text"]
    # The final pair stays intact.
    assert result.messages[-2:] == messages[-2:]
    assert any(r["action"] == "tool_results_inlined" for r in result.removed)


def test_thinking_of_the_final_tool_loop_stays_and_older_thinking_goes():
    messages = [user("Investigate.")]
    for i in range(5):
        messages.append(tool_call(f"t{i}", "bash", {"command": f"probe {i}"}, thinking=f"I should probe {i}."))
        messages.append(tool_result(f"t{i}", f"probe {i} ok"))
    result = prune_messages(messages, max_tokens=10, level="light", settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.messages[-2] == messages[-2]  # untouched, signature and all
    kinds = [b["type"] for m in result.messages[:-2] if m["role"] == "assistant" for b in m["content"]]
    assert "thinking" not in kinds
    assert sum(r["action"] == "thinking_removed" for r in result.removed) == 4


def test_old_images_become_markers_and_recent_ones_stay():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "Here is the old screenshot."}]}]
    messages += chatter(10)
    messages.append({"role": "user", "content": [image, {"type": "text", "text": "And the new one: what changed?"}]})
    result = prune_messages(messages, max_tokens=10, level="light", settings=SETTINGS)
    assert result.messages[0]["content"][0] == {"type": "text", "text": "[image removed by context pruning: image/png]"}
    assert result.messages[-1] == messages[-1]
    assert [r["action"] for r in result.removed].count("image_removed") == 1


# ---------------------------------------------------------------- waste removal


def test_repeated_tool_output_keeps_only_the_latest_copy():
    output = log_output(40, seed=1)
    messages = [user("Check the service.")]
    for i in range(3):
        messages.append(tool_call(f"t{i}", "bash", {"command": "kubectl logs deploy/api"}))
        messages.append(tool_result(f"t{i}", output))
    messages += [assistant("Same logs each time."), user("ok")]
    result = prune_messages(messages, max_tokens=10, level="light", settings=SETTINGS)
    results = [b for m in result.messages for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert results[2]["content"] == output
    for block in results[:2]:
        assert block["content"] == "[Duplicate output removed by context pruning: identical to the later result of bash (t2).]"
    dedup = [r for r in result.removed if r["action"] == "deduplicated"]
    assert [r["tool_use_id"] for r in dedup] == ["t0", "t1"]
    assert all(r["tokens_removed"] > 100 for r in dedup)


def test_oversized_tool_result_keeps_head_and_tail_with_a_marker_that_counts_the_cut():
    lines = [f"line {i:04d}: value={i * 7}" for i in range(2000)]
    output = "\n".join(lines)
    messages = [user("Dump the table."), tool_call("t0", "bash", {"command": "dump"}), tool_result("t0", output), assistant("Dumped."), user("Thanks.")]
    result = prune_messages(messages, max_tokens=10, level="light", settings=SETTINGS)
    shortened = result.messages[2]["content"][0]["content"]
    assert shortened.startswith("line 0000: value=0\nline 0001")
    assert shortened.endswith("line 1999: value=13993")
    marker = re.search(r"\[\.\.\. ([\d,]+) characters \(~([\d,]+) tokens, ([\d,]+) lines\) cut from the middle of this tool result by context pruning \.\.\.\]", shortened)
    assert marker, shortened[:3000]
    cut_chars = int(marker.group(1).replace(",", ""))
    kept_chars = len(shortened) - len(marker.group(0)) - 2  # the marker's own line breaks
    assert cut_chars + kept_chars == len(output)
    assert int(marker.group(3).replace(",", "")) > 1000
    assert tok.estimate_text_tokens(shortened) < SETTINGS.head_tokens + SETTINGS.tail_tokens + 100
    truncated = [r for r in result.removed if r["action"] == "truncated"]
    assert truncated and truncated[0]["index"] == 2 and truncated[0]["tokens_removed"] > 10_000


def test_older_full_versions_of_a_file_are_superseded_but_partial_reads_are_not():
    v1 = "\n".join(f"def handler_{i}():\n    return {i}" for i in range(60))
    v2 = v1 + "\n\ndef added():\n    return 'new'"
    messages = [
        user("Refactor src/app.py."),
        tool_call("r1", "read_file", {"path": "src/app.py"}), tool_result("r1", v1),
        tool_call("p1", "read_file", {"path": "src/app.py", "offset": 10, "limit": 5}), tool_result("p1", "\n".join(v1.splitlines()[10:15]) * 20),
        tool_call("w1", "write_file", {"path": "src/app.py", "content": v2}), tool_result("w1", "written"),
        tool_call("r2", "read_file", {"path": "./src/app.py"}), tool_result("r2", v2 + "\n# formatted"),
        assistant("Refactored."), user("Good."),
    ]
    result = prune_messages(messages, max_tokens=10, level="light", settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    superseded = {(r["index"], r.get("field")) for r in result.removed if r["action"] == "superseded"}
    assert superseded == {(2, None), (5, "content")}
    assert result.messages[2]["content"][0]["content"] == "[Older version of src/app.py removed by context pruning: a newer version appears later.]"
    assert result.messages[5]["content"][-1]["input"]["content"].startswith("[Older version of src/app.py")
    assert result.messages[4] == messages[4]  # a partial read is no version of the file
    assert result.messages[8] == messages[8]  # the latest version stays


def test_waste_removal_alone_is_used_when_it_reaches_the_target():
    output = log_output(300, seed=2)
    messages = [user("Look at the logs.")] + [m for i in range(2) for m in (tool_call(f"t{i}", "bash", {"command": "logs"}), tool_result(f"t{i}", output))]
    messages += [assistant("Looked."), user("And?")]
    target = tok.estimate_request_tokens(messages) // 2 + 200
    result = prune_messages(messages, max_tokens=target, level="auto", settings=SETTINGS)
    assert result.level == "light"
    assert "waste removal alone reached the target; no message was dropped" in result.notes
    assert len(result.messages) == len(messages)
    assert result.tokens_after <= target


# ---------------------------------------------------------------- summaries and credentials


def test_summary_keeps_the_facts_an_agent_needs_later():
    messages = [
        user("We're releasing billing v2. Deploy target is prod-eu-west-3 and the admin port is 8443."),
        assistant("Noted. I'll ask Priya Raman for the approval, she owns billing."),
        user("Decision: we use Redis Streams instead of Kafka. Runbook: https://wiki.acme.io/page/k7/billing-rollout"),
        tool_call("t1", "read_file", {"path": "config/billing.yaml"}),
        tool_result("t1", "replicas: 3\nmemory_limit: 24 GiB\ndb_host: billing-db-07.acme-corp.internal\nlog_level: info"),
        assistant("The override file is /etc/acme/billing/limits.yaml; I pinned the SDK to 2.14.3 (OPS-4821)."),
        user("Open question: should the cut-over on 2027-03-14 wait for the audit?"),
    ] + chatter(40) + [user("Remind me of everything we settled before the release.")]
    result = prune_messages(messages, max_tokens=100, level="aggressive", settings=SETTINGS)
    summary = result.summary or ""
    for fact in ("prod-eu-west-3", "8443", "Priya Raman", "Redis Streams", "https://wiki.acme.io/page/k7/billing-rollout",
                 "24 GiB", "billing-db-07.acme-corp.internal", "/etc/acme/billing/limits.yaml", "2.14.3", "OPS-4821", "2027-03-14"):
        assert fact in summary, fact
    assert summary in text_of(result.messages)


def test_credential_values_never_reach_the_output_but_their_names_do():
    secrets = {
        "sk_live_51HxQ2eKp9Zr8TuVw3YbN7mAc": "export STRIPE_SECRET_KEY=sk_live_51HxQ2eKp9Zr8TuVw3YbN7mAc",
        "hunter2-Tr0ub4dor": "DB_PASSWORD=hunter2-Tr0ub4dor",
        "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5": "GITHUB_TOKEN: ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5",
        "AKIAIOSFODNN7EXAMPLE": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "s3cr3tpw": "postgres://app:s3cr3tpw@db.internal:5432/app",
        "zaWbVwvrQ7f2bD": "The client reads SENTRY_AUTH_TOKEN (currently zaWbVwvrQ7f2bD).",
    }
    messages = [user("Here is the env:\n" + "\n".join(secrets.values()))]
    messages += [tool_call("t0", "bash", {"command": "cat .env"}), tool_result("t0", "\n".join(secrets.values())), assistant("Read it.")]
    messages += chatter(12)
    messages += [tool_call("t1", "bash", {"command": "env | grep KEY"}), tool_result("t1", secrets["sk_live_51HxQ2eKp9Zr8TuVw3YbN7mAc"]), assistant("Checked.")]
    messages += [user("Which variables hold credentials?")]
    for level in ("light", "medium", "aggressive"):
        result = prune_messages(messages, max_tokens=100, level=level, settings=SETTINGS)
        out = str(result.messages)
        for value in secrets:
            assert value not in out, (level, value)
        assert "STRIPE_SECRET_KEY" in out and "DB_PASSWORD" in out and "GITHUB_TOKEN" in out
        assert "db.internal:5432" in out  # the host in a URL survives its password
    # The kept (light) window had the credential redacted in place, and says so.
    light = prune_messages(messages, max_tokens=100, level="light", settings=SETTINGS)
    assert any(r["action"] == "credentials_redacted" and r["names"] == ["STRIPE_SECRET_KEY"] for r in light.removed)


@pytest.mark.parametrize("text, names", [
    ("DB_PASSWORD=hunter22 PORT=5432", ["DB_PASSWORD"]),
    ('"api_key": "abc123def456ghi789"', ["api_key"]),
    ("--token=abc123xyz", ["token"]),
    ("the password is Tr0ub4dor&3", ["password"]),
    ("Authorization: Bearer abcdefghijklmnop1234567890", ["Bearer token"]),
    ("key sk-ant-api03-abcdefghijklmnopqrstuv", ["Anthropic API key"]),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", ["private key"]),
])
def test_credential_detection(text, names):
    redacted, found = redact_credentials(text)
    assert found == names
    assert REDACTED in redacted


@pytest.mark.parametrize("text", [
    "max_tokens: 1024", "input_tokens=523 output_tokens=12", "SORT_KEY=created_at", "ssh_key_path=/home/u/.ssh/id_rsa",
    "    token = parser.get('metric', 258)", "password: ${DB_PASSWORD}", "the token budget is 4000 tokens",
    "commit 9f3c2ab1 deployed", "getUserAccountBalanceForId2 is slow", "prod-eu-west-3-canary-cluster-2",
    "pip install auth-sdk==7.12.19-hotfix1", "The token parser uses JetStream2 and getUserById",
])
def test_ordinary_text_is_not_mistaken_for_credentials(text):
    assert redact_credentials(text) == (text, [])


def test_summarizer_hook_gets_redacted_history_and_falls_back_when_it_fails():
    messages = [user("STRIPE_SECRET_KEY=sk_live_51HxQ2eKp9Zr8TuVw3YbN7mAc and deploy to prod-eu-west-3.")] + chatter(30) + [user("Go.")]
    seen = []

    def summarizer(history):
        seen.append(history)
        return "The user shared a Stripe key and wants a deploy to prod-eu-west-3."

    result = prune_messages(messages, max_tokens=100, level="medium", settings=SETTINGS, summarizer=summarizer)
    assert len(seen) == 1 and "sk_live_" not in str(seen[0]) and "STRIPE_SECRET_KEY" in str(seen[0])
    assert "wants a deploy to prod-eu-west-3" in result.summary
    assert "summary: abstractive, completed with extracted facts" in result.notes

    def broken(history):
        raise RuntimeError("API down")

    result = prune_messages(messages, max_tokens=100, level="medium", settings=SETTINGS, summarizer=broken)
    assert "prod-eu-west-3" in result.summary
    assert any(n.startswith("abstractive summary failed (RuntimeError: API down)") for n in result.notes)


# ---------------------------------------------------------------- cached prefix


def test_the_cached_prefix_is_never_modified():
    messages = chatter(20) + [tool_call("t0", "bash", {"command": "logs"}), tool_result("t0", log_output(600)), assistant("Done.")]
    messages += chatter(30, start=100) + [user("Next?")]
    prefix = 8
    result = prune_messages(messages, max_tokens=2000, level="aggressive", protected_prefix=prefix, settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.protected_prefix_messages == prefix
    assert all(a is b for a, b in zip(result.messages[:prefix], messages[:prefix]))
    assert result.messages[prefix]["content"][0]["text"].startswith("[Summary of ")
    assert any(n.startswith(f"kept the cached prefix of {prefix} messages") for n in result.notes)
    assert result.tokens_after < result.tokens_before


def test_the_breakpoint_moves_when_pruning_inside_the_prefix_is_cheaper():
    big = log_output(3000, seed=5)
    messages = [user("Analyse."), tool_call("t0", "bash", {"command": "logs"}), tool_result("t0", big), assistant("Analysed.")]
    messages += chatter(6) + [user("Now what?")]
    result = prune_messages(messages, max_tokens=3000, level="auto", protected_prefix=4, settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.protected_prefix_messages == 0
    note = next(n for n in result.notes if n.startswith("moved the cache breakpoint"))
    assert "cached prefix of 4 messages" in note
    assert result.tokens_after <= 3000
    # With moving disabled, the prefix stays and the target is reported unreachable.
    pinned = prune_messages(messages, max_tokens=3000, level="auto", protected_prefix=4,
                            settings=PruningSettings(allow_cache_breakpoint_move=False))
    assert pinned.messages[:4] == messages[:4]
    assert any("not reachable" in n for n in pinned.notes)


# ---------------------------------------------------------------- levels and size


def test_choose_level_by_size_and_budget():
    assert choose_level(900, 1000, None) == "none"
    assert choose_level(1400, 1000, None) == "light"
    assert choose_level(2500, 1000, None) == "medium"
    assert choose_level(50_000, 1000, None) == "aggressive"
    assert choose_level(1400, 1000, 0.85) == "medium"
    assert choose_level(2500, 1000, 0.85) == "aggressive"
    assert choose_level(1400, 1000, 0.97) == "aggressive"


def test_auto_escalates_until_the_target_is_met():
    messages = chatter(80) + [user("Continue.")]
    size = tok.estimate_request_tokens(messages)
    result = prune_messages(messages, max_tokens=int(size / 1.3), level="auto", settings=SETTINGS)
    assert result.level == "light" and result.tokens_after <= size / 1.3
    result = prune_messages(messages, max_tokens=300, level="auto", settings=SETTINGS)
    assert result.tokens_after <= 300
    assert validate_conversation(result.messages) == []


def test_a_500k_token_conversation_is_pruned_to_10k_with_its_facts():
    rng = random.Random(11)
    messages = [user("Project kickoff. Deploy target is prod-ap-south-1-b2, the queue is acme-prod-ledger-events-v7, Lars Eriksen approves.")]
    while tok.estimate_request_tokens(messages) < 510_000:
        i = len(messages)
        messages.append(tool_call(f"t{i}", "bash", {"command": f"kubectl logs deploy/ledger-{i % 7}"}, text="Checking the logs."))
        messages.append(tool_result(f"t{i}", log_output(rng.randint(2, 30), seed=i)))
        messages.append(assistant(f"Batch {i} looks healthy; p99 latency {rng.randint(100, 900)} ms."))
        messages.append(user(rng.choice(["continue", "next one", "ok, keep going"])))
    assert len(messages) > 2000
    result = prune_messages(messages, max_tokens=10_000, level="auto", settings=SETTINGS)
    assert result.tokens_before >= 500_000
    assert result.tokens_after <= 10_000
    assert result.reduction_pct >= 95.0
    assert validate_conversation(result.messages) == []
    out = text_of(result.messages)
    for fact in ("prod-ap-south-1-b2", "acme-prod-ledger-events-v7", "Lars Eriksen"):
        assert fact in out


# ---------------------------------------------------------------- validator


@pytest.mark.parametrize("messages, problem", [
    ([], "non-empty list"),
    ([assistant("hi")], "first message must come from the user"),
    ([user("a"), user("b")], "roles must alternate"),
    ([user("   ")], "content is empty"),
    ([{"role": "user", "content": []}], "empty list"),
    ([user("a"), tool_call("t1", "bash", {}), user("no result")], "not answered by a tool_result"),
    ([user("a"), tool_call("t1", "bash", {}), tool_result("t2", "x")], "does not answer a tool_use"),
    ([user("a"), tool_call("t1", "bash", {}), {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}], "must come before any other block"),
    ([user("a"), tool_call("t1", "bash", {}), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}] * 2}], "answered twice"),
    ([{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "n", "input": {}}]}], "belong to assistant messages"),
    ([{"role": "system", "content": "x"}], "role must be"),
])
def test_validator_reports_what_the_api_would_reject(messages, problem):
    problems = validate_conversation(messages)
    assert any(problem in p for p in problems), problems


def test_validator_accepts_a_final_assistant_prefill_and_tool_loops():
    assert validate_conversation([user("a"), {"role": "assistant", "content": ""}]) == []
    assert validate_conversation(_agent_session()) == []


def test_a_previous_pruning_is_extended_so_the_pruned_prefix_stays_byte_stable():
    turn1 = _agent_session()
    first = prune_messages(turn1, max_tokens=300, level="aggressive", settings=SETTINGS)
    turn2 = turn1 + [assistant("Port 8443."), user("And the deploy target?")]
    extended = extend_pruned(first, turn2)
    assert extended == first.messages + turn2[len(turn1):]
    assert validate_conversation(extended) == []
    # Pruning the extension later keeps the already-sent part as the cached prefix.
    again = prune_messages(extended, max_tokens=200, level="aggressive", protected_prefix=len(first.messages),
                           settings=PruningSettings(allow_cache_breakpoint_move=False))
    assert again.messages[: len(first.messages)] == first.messages
    # A conversation that does not continue the pruned one is not extended.
    edited = copy.deepcopy(turn2)
    edited[0]["content"] = "A different start."
    assert extend_pruned(first, edited) is None
    assert extend_pruned(first, turn1) is None


def _tool_loop_after(request: str, steps: int = 12) -> list[dict]:
    """A user request followed by a long tool loop still working on it."""
    messages = [{"role": "user", "content": "Earlier chat about lunch."},
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": request}]
    for i in range(steps):
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"toolu_{i}", "name": "bash", "input": {"command": f"step {i}"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"output {i} " + "x" * 3000}]})
    return messages


def test_the_current_request_survives_when_a_long_tool_loop_is_pruned():
    from mcp_tars.tokens import content_text

    request = "ok now go through the remaining things we talked about, tidy them up and tell me when done"
    messages = _tool_loop_after(request)
    for settings in (PruningSettings(),  # even with summaries off, the request is kept
                     PruningSettings.model_validate({"levels": {"aggressive": {"keep_last_messages": 3, "summarize": False}}})):
        result = prune_messages(messages, max_tokens=2000, level="aggressive", settings=settings)
        assert validate_conversation(result.messages) == []
        assert request in "\n".join(content_text(m["content"]) for m in result.messages)


def test_request_keep_chars_caps_the_quoted_current_request():
    from mcp_tars.tokens import content_text

    request = "Implement the following specification exactly. " + " ".join(f"Clause {i}: field_{i} must be checked." for i in range(400))
    messages = _tool_loop_after(request)

    def pruned_text(**knobs) -> str:
        result = prune_messages(messages, max_tokens=8000, level="aggressive", settings=PruningSettings(**knobs))
        assert validate_conversation(result.messages) == []
        return "\n".join(content_text(m["content"]) for m in result.messages)

    assert len(request) > 4000  # the default cap cuts it
    default = pruned_text()
    assert request not in default and f"[... {len(request) - 4000:,} characters cut ...]" in default
    assert request[:2000] in default and request[-2000:] in default
    short = pruned_text(request_keep_chars=1000)
    assert f"[... {len(request) - 1000:,} characters cut ...]" in short and request[:500] in short and request[:2000] not in short
    assert request in pruned_text(request_keep_chars=len(request))  # room for all of it: verbatim


@pytest.mark.parametrize("knob, value", [("request_keep_chars", 0), ("request_keep_chars", 10**6),
                                         ("summary_max_output_tokens", 0), ("summary_max_output_tokens", 10**6)])
def test_pruning_knobs_out_of_bounds_are_refused(knob, value):
    with pytest.raises(ValueError, match=knob):
        PruningSettings(**{knob: value})


# ---------------------------------------------------------------- the turn the model answers now


def _texts(message) -> list[str]:
    content = message["content"]
    return [content] if isinstance(content, str) else [b["text"] for b in content if b["type"] == "text"]


def _summary_at(messages) -> int:
    (at,) = [i for i, m in enumerate(messages) if any(t.startswith(("[Summary of", "[The user's current request"))
                                                      for t in _texts(m))]
    return at


def _tool_loop_at_the_limit():
    """The shape of a long agent session turn (bench.day, session 0): the prompt
    cache holds the start (a prefix ending on a user turn), the user said "keep
    going", and the final turn is a large log; the final turn alone is above
    the target."""
    messages = [user("Investigate why the cache tests are flaky."),
                tool_call("toolu_00", "bash", {"command": "pytest -q tests/test_cache.py"}, text="Running the tests."),
                tool_result("toolu_00", log_output(30, seed=0))]
    for i in range(1, 7):
        messages.append(tool_call(f"toolu_{i:02d}", "read_file", {"path": f"src/cache/part_{i}.py"}, text=f"Reading part {i}."))
        messages.append(tool_result(f"toolu_{i:02d}", log_output(40, seed=i)))
    messages.append(assistant("The failures come from a race between the cache warm-up and the first request."))
    messages.append(user("keep going"))
    messages.append(tool_call("toolu_99", "bash", {"command": "tail -n 300 /var/log/app.log"}, text="Let me check the recent logs."))
    messages.append(tool_result("toolu_99", log_output(300, seed=99)))
    return messages


def test_at_its_limit_pruning_leaves_the_final_tool_results_and_the_request_as_they_were():
    from mcp_tars.sim.answers import question_text

    messages = _tool_loop_at_the_limit()
    final_turn = tok.estimate_request_tokens(messages[-2:])
    result = prune_messages(messages, max_tokens=final_turn // 2, protected_prefix=3,
                            settings=PruningSettings(allow_cache_breakpoint_move=False))
    assert validate_conversation(result.messages) == []
    # The latest tool results, and the tool call they answer, are exactly as sent:
    # not shortened, no summary or quoted request mixed into them.
    assert result.messages[-2:] == messages[-2:]
    assert result.tokens_after < result.tokens_before
    assert any("not reachable" in n for n in result.notes)
    # The request is its own message, word for word, and the summary of what
    # was dropped comes before it (in chronological order).
    request_at = result.messages.index(user("keep going"))
    assert _summary_at(result.messages) < request_at < len(result.messages) - 2
    assert question_text(result.messages) == question_text(messages) == "keep going"


def test_a_plain_final_request_is_never_merged_with_the_summary():
    from mcp_tars.sim.answers import question_text

    # bench.day, session 4: the cached prefix ends on a tool result, the final
    # turn is a plain request; the summary used to be put in front of it.
    request = "Clean up the imports in src/notifier/retry_api/server_stream.py."
    messages = [user("Make the notifier retry API stream its responses."),
                tool_call("toolu_00", "read_file", {"path": "src/notifier/retry_api/server_stream.py"}),
                tool_result("toolu_00", log_output(60, seed=1)),
                tool_call("toolu_01", "str_replace", {"path": "src/notifier/retry_api/server_stream.py", "old": "return body",
                                                      "new": "yield from body"}),
                tool_result("toolu_01", "The file has been edited."),
                tool_call("toolu_02", "bash", {"command": "pytest -q tests/notifier"}, text="Running the notifier tests."),
                tool_result("toolu_02", log_output(200, seed=2)),
                assistant("Done: the retry API streams now, and the notifier tests pass."),
                user(request)]
    result = prune_messages(messages, max_tokens=300, protected_prefix=3,
                            settings=PruningSettings(allow_cache_breakpoint_move=False))
    assert validate_conversation(result.messages) == []
    assert result.tokens_after < result.tokens_before
    assert result.messages[-1] == user(request)
    assert _summary_at(result.messages) < len(result.messages) - 1
    assert question_text(result.messages) == request


def _giant_tool_turn(lines: int) -> list[dict]:
    log = "\n".join(f"line {i}: value {i * 7919 % 100003} status ok payload {'x' * 40}" for i in range(lines))
    return [{"role": "user", "content": "Run the build and show me the log."},
            {"role": "assistant", "content": [{"type": "text", "text": "Running."},
                                              {"type": "tool_use", "id": "t1", "name": "bash", "input": {"cmd": "make"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": log + "\nERROR: link failed"},
                                         {"type": "text", "text": "What failed?"}]}]


def test_a_final_turn_above_the_cap_has_its_tool_results_shortened_to_the_target():
    """One giant tool output (1.7M tokens) would push any request past the
    model's context window: as a last resort its tool result is cut to what the
    target leaves (start and end kept), the user's words stay, and a note says so."""
    from mcp_tars.pruning import prune_messages, validate_conversation

    messages = _giant_tool_turn(60_000)
    r = prune_messages(messages, max_tokens=12_000, level="auto")
    assert validate_conversation(r.messages) == []
    assert r.tokens_before > 1_000_000 and 6_000 < r.tokens_after <= 12_000  # the room is used, not wasted
    final = r.messages[-1]["content"]
    assert final[1] == {"type": "text", "text": "What failed?"}
    result = final[0]["content"] if isinstance(final[0]["content"], str) else str(final[0]["content"])
    assert "line 0:" in result and "ERROR: link failed" in result  # its start and its end
    assert any("final_turn_max_tokens" in n for n in r.notes)


def test_a_final_turn_below_the_cap_stays_verbatim_even_when_the_target_is_missed():
    from mcp_tars.pruning import PruningSettings, prune_messages

    messages = _giant_tool_turn(3_000)  # about 90K tokens: below the 150K cap
    r = prune_messages(messages, max_tokens=12_000, level="auto")
    assert r.messages[-1] == messages[-1] and r.tokens_after > 12_000
    assert any("not reachable" in n for n in r.notes)
    # the cap is configuration: lowered, the same turn is shortened
    lowered = prune_messages(messages, max_tokens=12_000, level="auto",
                             settings=PruningSettings(final_turn_max_tokens=50_000))
    assert lowered.messages[-1] != messages[-1] and lowered.tokens_after <= 12_000


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def _giant_turn_with_small_results() -> list[dict]:
    """A tool loop whose last step returned one giant output (1.7M tokens, a
    list of blocks with a screenshot) beside two ordinary ones (one prints a
    credential) and the user's own words and image."""
    giant = _giant_tool_turn(60_000)[2]["content"][0]["content"]
    listing = "\n".join(f"src/module_{i}.py  {i * 37 % 997} lines" for i in range(300))  # ~3K tokens
    return [
        user("Build it and tell me what broke."),
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Build, list the sources, read the env.", "signature": "sig-loop"},
            {"type": "tool_use", "id": "t1", "name": "bash", "input": {"cmd": "make"}},
            {"type": "tool_use", "id": "t2", "name": "bash", "input": {"cmd": "ls -l src"}},
            {"type": "tool_use", "id": "t3", "name": "bash", "input": {"cmd": "cat .env"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": giant}, IMAGE]},
            {"type": "tool_result", "tool_use_id": "t2", "content": listing},
            {"type": "tool_result", "tool_use_id": "t3", "content": "STRIPE_SECRET_KEY=sk_live_9fK2mQ7xR4tY8uP1aZ3cV6bN"},
            {"type": "text", "text": "Here is the screen as I see it."}, IMAGE]},
    ]


def test_a_shortened_final_turn_gives_the_room_to_its_large_results():
    """The small results stay whole and the giant one gets what they leave (an
    even split among the three would waste two thirds of the room)."""
    messages = _giant_turn_with_small_results()
    r = prune_messages(messages, max_tokens=20_000, level="auto")
    assert validate_conversation(r.messages) == []
    assert any("final_turn_max_tokens" in n for n in r.notes)
    assert 0.85 * 20_000 <= tok.estimate_request_tokens(r.messages) <= 20_000
    assert r.messages[-1]["content"][1] == messages[-1]["content"][1]  # the listing, whole


def test_a_shortened_final_turn_keeps_everything_but_the_cut_verbatim():
    """Only the middle of the giant output goes: the turn the tool results
    answer (thinking included), the user's words and images, the images in the
    tool results and the other results, credentials included (the final turn
    is never redacted), reach the model as sent."""
    messages = _giant_turn_with_small_results()
    settings = PruningSettings(keep_images_last_messages=0, redact_credentials=True)
    r = prune_messages(messages, max_tokens=20_000, level="auto", settings=settings)
    assert validate_conversation(r.messages) == []
    assert r.messages[-2] == messages[-2]
    final, sent = r.messages[-1]["content"], messages[-1]["content"]
    assert final[1:] == sent[1:]
    giant = final[0]["content"]
    assert giant[1] == IMAGE and "cut from the middle" in giant[0]["text"]
    assert giant[0]["text"].startswith("line 0:") and giant[0]["text"].endswith("ERROR: link failed")


def test_the_final_turn_cap_is_checked_against_the_turn_itself_not_a_rate_from_older_messages():
    """A final turn longer than exact_count_max_chars was once estimated at
    the characters-per-token rate of a sample of older messages: after dense
    hex dumps, 130K tokens of prose read as about 480K, past the 150K cap, and
    were cut although the cap says they go whole."""
    rng = random.Random(7)
    history = []
    for i in range(10):
        history += [user(f"dump {i}: " + "".join(rng.choice("0123456789abcdef") for _ in range(3000))),
                    assistant("".join(rng.choice("0123456789abcdef") for _ in range(3000)))]
    prose = " ".join(rng.choice(["the", "deploy", "service", "returned", "status", "and", "cache", "worker"])
                     for _ in range(100_000))
    messages = history + [user("Run the report."), tool_call("t1", "bash", {"cmd": "report"}),
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": prose}]}]
    assert len(prose) > SETTINGS.exact_count_max_chars and tok.estimate_text_tokens(prose) < SETTINGS.final_turn_max_tokens
    r = prune_messages(messages, max_tokens=100_000, level="auto")
    assert r.messages[-1] == messages[-1], r.notes  # below the cap: whole, and the result says the target is missed
    assert any("not reachable" in n for n in r.notes)


# ---------------------------------------------------------------- what the next turn needs


BIG_SYSTEM = "\n".join(f"- Rule {i}: be helpful, careful and concise; explain your reasoning when asked, and prefer small steps."
                       for i in range(150))  # about 4.5K tokens


def _python(functions: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "\n".join(
        f"def load_{i}(conn, batch_size={rng.randint(10, 500)}):\n"
        f"    rows = conn.execute('select * from events where id > %s', ({rng.randint(0, 500)},)).fetchall()\n"
        f"    for row in rows:\n        if row.size > {rng.randint(1, 99)}:\n            log.warning('too big %s', row.id)\n"
        f"    return [transform(r, timeout={rng.randint(1, 60)}) for r in rows]\n" for i in range(functions))


def _dana(final: str = "Which port does my database use?") -> list[dict]:
    """A new user's first session: who they are and their database, then pasted code and long answers."""
    return [
        user("Hi! My name is Dana and I run a small analytics shop. Our database is PostgreSQL 16 on port 5433."),
        assistant("Nice to meet you, Dana! How can I help?"),
        user("Here's my ETL script, can you make it faster?\n```python\n" + _python(60) + "\n```"),
        assistant("Here is a faster version:\n```python\n" + _python(60, seed=1) + "\n```\nI batched the queries."),
        user("Thanks. And this one?\n" + _python(40, seed=2)),
        assistant("## Summary\n" + "This change batches the inserts and reuses one connection per worker. " * 60),
        user(final),
    ]


@pytest.mark.parametrize("target", [12_000, 8_000, 4_000])
def test_a_fact_stated_before_pasted_code_survives_any_target(target):
    """The reported case: "My name is Dana ... PostgreSQL 16 on port 5433", pasted
    Python, then "Which port does my database use?" lost the port."""
    messages = _dana()
    result = prune_messages(messages, system=BIG_SYSTEM, max_tokens=target, settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.messages[-1] == messages[-1]
    assert "5433" in text_of(result.messages)
    assert result.tokens_after < result.tokens_before
    assert result.tokens_before == tok.estimate_request_tokens(messages, BIG_SYSTEM)  # the system prompt counts
    assert result.breakdown["system"] == tok.estimate_text_tokens(BIG_SYSTEM)
    assert result.target_met == (result.tokens_after <= target)


def test_when_the_system_prompt_fills_the_target_the_facts_asked_about_stay_and_the_result_says_so():
    messages = _dana()
    result = prune_messages(messages, system=BIG_SYSTEM, max_tokens=4_000, settings=SETTINGS)
    assert not result.target_met and result.tokens_after > 4_000
    (note,) = [n for n in result.notes if "not reachable" in n]
    assert f"the system prompt ({result.breakdown['system']:,})" in note and "kept anyway" in note
    assert "5433" in (result.summary or "")
    assert sum(result.breakdown.values()) == pytest.approx(result.tokens_after, abs=40)
    # Past the target only what the question needs goes in: not the pasted code.
    assert "def load_" not in result.summary and "conn.execute" not in result.summary
    # Strictly within the target when asked to: no facts past it.
    strict = prune_messages(messages, system=BIG_SYSTEM, max_tokens=4_000, settings=PruningSettings(facts_floor_tokens=0))
    assert strict.tokens_after < result.tokens_after


def test_a_long_older_assistant_message_yields_to_facts():
    """A 1K-token PR description right before the question used to be kept
    verbatim while the summary shrank to "[Summary of 27 earlier messages ...]"."""
    system = BIG_SYSTEM[: len(BIG_SYSTEM) * 4 // 5]  # about 3.7K tokens
    early = [
        user("We deploy billing to prod-eu-west-3; the admin API listens on port 48211."),
        assistant("Noted. Priya Raman approves billing changes; I'll ask her."),
        tool_call("t1", "read_file", {"path": "config/billing.yaml"}),
        tool_result("t1", "replicas: 3\nmemory_limit: 24 GiB\ndb_host: billing-db-07.acme-corp.internal\nlog_level: info"),
        assistant("The override file is /etc/acme/billing/limits.yaml; the SDK is pinned to 2.14.3 (OPS-4821)."),
    ]
    pr_description = "## Summary\n" + "\n".join(f"- Step {i}: moved the retry policy into one module and updated its callers."
                                                for i in range(80))
    messages = early + chatter(40) + [user("Write the PR description."), assistant(pr_description),
                                      user("Before I merge: which port, which host, who approves, and which ticket?")]
    assert tok.estimate_text_tokens(pr_description) > 1000
    result = prune_messages(messages, system=system, max_tokens=4_000, settings=SETTINGS)
    assert validate_conversation(result.messages) == []
    assert result.messages[-1] == messages[-1]
    summary = result.summary or ""
    assert "; facts kept from them" in summary  # never only the "[Summary of N earlier messages]" header
    for fact in ("48211", "billing-db-07.acme-corp.internal", "Priya Raman", "OPS-4821"):
        assert fact in text_of(result.messages), fact
    assert pr_description not in text_of(result.messages)  # shortened, not kept whole


def test_with_room_in_the_target_the_summary_holds_facts_and_the_target_is_met():
    system = BIG_SYSTEM[: len(BIG_SYSTEM) // 2]  # about 2.3K tokens
    messages = _dana("Remind me: what's my name, and which database do we run?")
    result = prune_messages(messages, system=system, max_tokens=4_000, settings=SETTINGS)
    assert result.target_met and result.tokens_after <= 4_000
    out = text_of(result.messages)
    assert "Dana" in out and "PostgreSQL 16" in out and "5433" in out


def test_past_the_target_facts_go_in_only_for_a_turn_that_asks_for_them():
    """"ok, continue" asks nothing: nothing goes past the target for it."""
    strict = PruningSettings(facts_floor_tokens=0)
    for final, past in (("ok, continue", False), ("Which port does my database use?", True)):
        messages = _dana(final)
        result = prune_messages(messages, system=BIG_SYSTEM, max_tokens=4_000, settings=SETTINGS)
        within = prune_messages(messages, system=BIG_SYSTEM, max_tokens=4_000, settings=strict)
        assert (result.tokens_after > within.tokens_after) == past, final
        assert ("kept anyway" in " ".join(result.notes)) == past


def test_our_generated_conversations_keep_their_facts_at_4k():
    """Ours (bench/fact_conversations.py, dev pool): facts in every kind of turn,
    system prompts of 3-4K, the final turn asking about them."""
    from bench.fact_conversations import SHAPES, facts_kept, generate

    kept = total = 0
    for i, shape in enumerate(SHAPES):
        convo = generate(seed=100 + i, pool="dev", shape=shape, total_tokens=12_000, system_tokens=3_500)
        result = prune_messages(convo.messages, system=convo.system, max_tokens=4_000, settings=SETTINGS)
        assert validate_conversation(result.messages) == []
        assert result.messages[-1] == convo.messages[-1]
        assert result.reduction_pct >= 50
        report = facts_kept(convo, result.messages)
        assert report["leaked"] == []
        kept, total = kept + report["kept"], total + report["facts"]
    assert kept / total >= 0.95, (kept, total)
