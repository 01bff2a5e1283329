"""Claude Code itself (npm @anthropic-ai/claude-code, installed by .ci/setup into
.ci/node) runs headless tasks with tools through the gateway against the
simulated API: answers arrive, the tool really runs and its result goes back,
every call is one ledger row equal to the simulator's bill, and the calls are
attributed to Claude Code's session.

Deterministic: the prompt carries ``[sim:tool=Read input={...}]``, so the sim's
first answer is a Read of a file the test wrote, and its answer after the tool
result is text. Offline: a temporary HOME and config dir, nonessential traffic
and telemetry off, ANTHROPIC_BASE_URL at the gateway; bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import TEST_API_KEY
from test_gateway import bill_by_id, gateway, wait_for_rows

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"
TIMEOUT_SECONDS = 180

pytestmark = pytest.mark.slow


def _claude_env(home: Path, base_url: str) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
           "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": TEST_API_KEY,
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
           "TERM": "dumb", "NO_COLOR": "1"}
    return env


def _run_claude(prompt: str, workdir: Path, home: Path, base_url: str) -> dict:
    if not CLAUDE.exists():
        message = f"Claude Code is not installed at {CLAUDE}: run .ci/setup (npm install @anthropic-ai/claude-code)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([str(CLAUDE), "-p", prompt, "--output-format", "json"], cwd=workdir,
                          env=_claude_env(home, base_url), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def test_claude_code_runs_a_task_with_a_tool_through_the_gateway(sim, tmp_path):
    workdir, home = tmp_path / "project", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    notes = workdir / "notes.txt"
    notes.write_text("The release codename is PELICAN-42.\n")
    prompt = f'Read notes.txt and tell me the codename. [sim:tool=Read input={{"file_path": "{notes}"}}]'
    with gateway(sim) as url:
        first = _run_claude(prompt, workdir, home, url)
        second = _run_claude("Now just say hello.", workdir, home, url)  # a second task, its own session
        messages = [r for r in sim.requests if r.path == "/v1/messages"]
        rows = wait_for_rows(tmp_path, len(messages))

    assert first["is_error"] is False and second["is_error"] is False
    assert "Simulated answer" in first["result"] and first["num_turns"] >= 2
    # the tool really ran: Claude Code read the file and sent its content back as a tool_result
    results = [block for r in messages for m in r.body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
               for block in m["content"] if block.get("type") == "tool_result"]
    assert any("PELICAN-42" in json.dumps(block.get("content")) for block in results)
    # Claude Code's own fields reached the API as it sent them
    assert any(m["role"] == "system" for r in messages for m in r.body["messages"])
    assert all(r.headers.get("anthropic-beta") and r.body.get("stream") is True for r in messages)

    # every call: one ledger row, equal to the simulator's bill line
    bill = bill_by_id(sim)
    assert len(rows) == len(messages) == len(bill)
    for row in rows:
        assert row["cost_usd"] == pytest.approx(bill[row["response_id"]], abs=1e-12)
    # attributed to Claude Code's sessions (one per task), as it reports them itself
    sessions = {first["session_id"], second["session_id"]}
    assert {row["session_id"] for row in rows} == sessions and len(sessions) == 2
    assert sum(r["cost_usd"] for r in rows if r["session_id"] == first["session_id"]) == pytest.approx(
        first["total_cost_usd"], rel=1e-6)  # Claude Code's own tally of the session agrees with the ledger
