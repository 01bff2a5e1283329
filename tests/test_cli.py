"""The command line as a new user meets it: version, exports, periods, the
HTML report's grouping, config init, a bad config, tenant scope, and numbers
that agree with each other (cache stats and the report)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client

from mcp_tars import __version__, cli
from mcp_tars.config import packaged_config_path
from mcp_tars.store import ledger, open_store

from conftest import TEST_API_KEY, in_process_server, make_config, write_config


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``run(*args)``: the command line in this process (fast), with this
    test's database and a test configuration, and without an API key unless
    the test sets one."""
    monkeypatch.setenv("MCP_TARS_CONFIG", str(write_config(tmp_path / "performance-config.json", make_config())))

    def run_cli(*args: str) -> Ran:
        capsys.readouterr()
        code = cli.main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run_cli


def subprocess_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """The real console entry point in a child process (what a user runs)."""
    return subprocess.run([sys.executable, "-m", "mcp_tars", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def ledger_with_calls(tmp_path, api_env, monkeypatch):
    """A few real calls through the server, made with TEST_API_KEY (then
    removed from the environment): API calls, an exact and a semantic cache
    hit, in two sessions."""
    server = in_process_server(make_config(), str(tmp_path / "tars.db"))

    async def calls():
        async with Client(server) as client:
            for prompt, session in (("What is machine learning?", "s-1"), ("What is machine learning?", "s-1"),
                                    ("Tell me about machine learning", "s-2"), ("What's the capital of France?", "s-2"),
                                    ("Explain how TLS certificates are validated.", None)):
                r = await client.call_tool("optimized_complete", {"prompt": prompt, "session_id": session})
                assert not r.is_error, r.content
            return (await client.call_tool("cost_report", {"period": "all", "format": "json"})).structured_content

    report = asyncio.run(calls())
    assert report["totals"]["cache_hits"] == 2
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    return report


def test_version():
    out = subprocess_cli(dict(os.environ), "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mcp-tars {__version__}"


def test_exports_to_stdout_and_as_csv(tmp_path, ledger_with_calls, run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run("export", "costs-json", "-o", "-")
    assert out.returncode == 0, out.stderr
    days = json.loads(out.stdout)
    assert sum(d["calls"] for d in days.values()) == 5
    assert not (tmp_path / "-").exists()  # it once wrote a file named "-"
    per_day = list(csv.DictReader(io.StringIO(run("export", "costs-csv", "-o", "-").stdout)))
    assert [int(r["calls"]) for r in per_day] == [d["calls"] for d in days.values()]
    assert float(per_day[0]["saved_cache_usd"]) == pytest.approx(days[per_day[0]["day"]]["optimizations"]["caching"]["costSaved"], abs=1e-6)
    written = run("export", "ledger-csv", "-o", str(tmp_path / "ledger.csv"))
    assert written.returncode == 0 and "5 call(s)" in written.stderr
    rows = list(csv.DictReader((tmp_path / "ledger.csv").open()))
    assert len(rows) == 5 and {r["source"] for r in rows} == {"api", "cache"}
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(ledger_with_calls["totals"]["cost_usd"], abs=1e-9)
    assert TEST_API_KEY not in (tmp_path / "ledger.csv").read_text()


def test_until_alone_is_everything_up_to_that_day(ledger_with_calls, run):
    today = ledger_with_calls["until"]
    data = json.loads(run("report", "--until", today, "--json").stdout)
    assert data["since"] <= data["until"] == today and data["totals"]["calls"] == 5
    before = json.loads(run("report", "--until", "2020-01-01", "--json").stdout)
    assert before["since"] == before["until"] == "2020-01-01" and before["totals"]["calls"] == 0  # not inverted


def test_the_html_report_honours_group_by(tmp_path, ledger_with_calls, run):
    assert run("report", "--period", "all", "--group-by", "session", "--html", str(tmp_path / "s.html")).returncode == 0
    assert run("report", "--period", "all", "--group-by", "model", "--html", str(tmp_path / "m.html")).returncode == 0
    by_session, by_model = (tmp_path / "s.html").read_text(), (tmp_path / "m.html").read_text()
    assert 'id="table-sessions"' in by_session and "s-1" in by_session and "s-2" in by_session
    assert 'id="table-sessions"' not in by_model
    assert by_session.index('id="table-sessions"') < by_session.index('id="table-levers"')
    assert by_model.index('id="table-models"') < by_model.index('id="table-levers"')


def test_cache_stats_and_the_report_agree_on_what_the_cache_saved(ledger_with_calls, run):
    """They once said $0.001472 and $0.0001: two definitions of one saving."""
    stats = json.loads(run("cache", "stats").stdout)
    lever = ledger_with_calls["savings_by_lever"]["cache"]
    assert stats["ledger"]["saved_usd"] == pytest.approx(lever["usd"], rel=1e-9)
    assert stats["ledger"]["cache_hits"] == lever["calls"] == 2
    assert "saved_usd" not in stats  # no second figure beside it


def test_a_cache_hit_saves_its_baseline_by_the_cache_lever_only(tmp_path, ledger_with_calls):
    with open_store(tmp_path / "tars.db") as store:
        hits = ledger.rows(store, source="cache")
    assert len(hits) == 2
    for hit in hits:
        assert hit["saved_cache_usd"] == pytest.approx(hit["baseline_cost_usd"])
        assert [hit[f"saved_{k}_usd"] for k in ("routing", "pruning", "prompt_cache", "batch")] == [0, 0, 0, 0]


def test_calls_and_api_calls_agree_in_the_report(ledger_with_calls, run):
    md = run("report", "--period", "all", "--markdown").stdout
    assert "├── Calls: 5 (API 3: immediate 3 · batch 0; cache hits 2)" in md
    assert "├── API Calls: 3 (40.0% fewer)" in md


def test_heartbeat_and_report_without_a_key_see_every_tenant(ledger_with_calls, run, monkeypatch):
    """Without ANTHROPIC_API_KEY the heartbeat once saw 0 calls (another tenant) and said all was well."""
    assert "ANTHROPIC_API_KEY" not in os.environ  # the calls above were made with one
    data = json.loads(run("heartbeat", "--json").stdout)
    assert data["checks_scope"] == "all"
    rates = {c["name"]: c for c in data["checks"]}
    assert "5 in 7d" in rates["cache_hit_rate"]["message"]  # counted, not "0 in 7d"
    scoped = json.loads(run("heartbeat", "--json", "--tenant", "current").stdout)
    assert "0 in 7d" in {c["name"]: c for c in scoped["checks"]}["cache_hit_rate"]["message"]
    assert json.loads(run("report", "--period", "all", "--json").stdout)["totals"]["calls"] == 5
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    assert json.loads(run("report", "--period", "all", "--json", "--tenant", "current").stdout)["totals"]["calls"] == 5
    bad = run("report", "--tenant", "bob")
    assert bad.returncode == 2 and "--tenant 'bob'" in bad.stderr


def test_config_init_writes_an_editable_copy_and_says_how_to_use_it(tmp_path, run, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    out = run("config", "init")
    target = tmp_path / "xdg" / "mcp-tars" / "performance-config.json"
    assert out.returncode == 0, out.stderr
    assert target.read_text() == packaged_config_path().read_text()
    assert f"MCP_TARS_CONFIG={target}" in out.stdout
    again = run("config", "init")
    assert again.returncode == 2 and "--force" in again.stderr
    chosen = run("config", "init", str(tmp_path / "mine.json"))
    assert chosen.returncode == 0 and (tmp_path / "mine.json").exists()
    monkeypatch.setenv("MCP_TARS_CONFIG", str(tmp_path / "mine.json"))
    checked = run("config", "check")
    assert checked.returncode == 0 and "valid" in checked.stdout


@pytest.mark.parametrize("config, field, meant", [
    ({"default_model": "claude-sonet-5-5"}, "default_model", "claude-sonnet-5-5"),
    ({"routing": {"expert_floor_model": "claude-sonnet-5-6"}}, "routing.expert_floor_model", "claude-sonnet-5-5"),
    ({"routing": {"overload_fallback_chain": {"claude-opus-5-5": ["claude-sonnett-5-5"]}}},
     "routing.overload_fallback_chain.claude-opus-5-5", "claude-sonnet-5-5"),
    ({"pruning": {"summarizer_model": "claude-haiku-5"}}, "pruning.summarizer_model", "claude-haiku-5-5"),
])
def test_a_model_without_a_price_stops_check_and_serve_with_one_line(tmp_path, config, field, meant):
    """`config check` said "valid"; `serve` then died with a 70-line traceback ("Connection closed")."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "MCP_TARS_CONFIG": str(path)}
    for args in (("config", "check"), ("serve",)):
        out = subprocess_cli(env, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert str(path) in out.stderr and f"{field}: unknown model" in out.stderr
        assert f"did you mean {meant!r}?" in out.stderr


def test_tier_models_naming_an_unknown_model_are_refused(tmp_path, run, monkeypatch):
    tiers = {"simple": "claude-haiku-5", "moderate": "claude-sonnet-5-5", "complex": "claude-sonnet-5-5",
             "expert": "claude-opus-5-5"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"routing": {"tier_models": tiers}}))
    monkeypatch.setenv("MCP_TARS_CONFIG", str(path))
    out = run("config", "check")
    assert out.returncode == 2 and "routing.tier_models.simple: unknown model 'claude-haiku-5'" in out.stderr


def test_the_demo_prints_readable_figures():
    out = subprocess_cli(dict(os.environ), "demo")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "{'" not in out.stderr and "submitted_batches" not in out.stderr  # not a raw Python dict
    assert "deferred work: 3 task(s) sent in 1 batch(es)" in out.stderr
    assert "answered by" in out.stderr and "# mcp-tars cost report" in out.stdout


def test_every_tenant_reads_on_both_backends(db_url):
    """The all-tenant reads behind the CLI (heartbeat checks, ledger.csv) on SQLite and PostgreSQL."""
    from mcp_tars import export, heartbeat
    from mcp_tars.store import tasks as task_store

    from test_reports import NOW, make_row

    rows = [make_row(i, ts=NOW - 60 * i, model="claude-haiku-5-5", tenant=("key:a" if i % 2 else "key:b"))
            for i in range(6)]
    with open_store(db_url) as store:
        ledger.insert_many(store, rows)
        assert ledger.spending_tenants(store) == ["key:a", "key:b"]
        text, count = export.ledger_csv(store)
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert count == 6 and sum(float(r["cost_usd"]) for r in parsed) == pytest.approx(sum(r["cost_usd"] for r in rows))
        assert task_store.tasks_by_status(store, None, ["queued"]) == [] and task_store.open_batches(store, None) == []
        checks = {c.name: c for c in heartbeat.run_checks(store, make_config(), None, now=NOW)}
        assert "6 in 7d" in checks["cache_hit_rate"].message
