"""Shared fixtures: the simulated API on loopback, a private data dir, and ways
to run the real server (in-process through the MCP client, or as a stdio
subprocess)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mcp_tars.config import Config

TEST_API_KEY = "sk-ant-test-DO-NOT-LEAK-7f3a9c"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Never touch the user's own ledger, config or SDK profile."""
    config_dir = tmp_path / "sdk-profile"
    config_dir.mkdir()
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("MCP_TARS_DB", str(tmp_path / "tars.db"))
    monkeypatch.setenv("MCP_TARS_STRICT_RESPONSES", "1")
    monkeypatch.delenv("MCP_TARS_CONFIG", raising=False)
    monkeypatch.delenv("MCP_TARS_CLOCK_FILE", raising=False)


@pytest.fixture
def sim():
    from mcp_tars.sim import SimulatedAnthropic

    with SimulatedAnthropic() as s:
        yield s


@pytest.fixture
def api_env(sim, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    return sim


def make_config(**sections) -> Config:
    """The default configuration with a few fields changed, e.g.
    make_config(api={"backoff_initial_seconds": 0}, batch={"worker_enabled": False})."""
    data = Config().model_dump(mode="json")
    fast = {"api": {"backoff_initial_seconds": 0.0, "backoff_max_seconds": 0.01},
            "batch": {"worker_enabled": False}, "monitoring": {"metrics_log": None}}
    for overrides in (fast, sections):
        for name, values in overrides.items():
            if isinstance(values, dict) and isinstance(data.get(name), dict):
                data[name] = {**data[name], **values}
            else:
                data[name] = values
    return Config.model_validate(data)


def write_config(path: Path, config: Config) -> Path:
    path.write_text(json.dumps(config.model_dump(mode="json")), "utf-8")
    return path


def server_env(tmp_path: Path, base_url: str, config: Config | None = None) -> dict:
    """Environment for a real `mcp-tars serve` subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "MCP_TARS_DB": str(tmp_path / "tars.db"),
        "MCP_TARS_STRICT_RESPONSES": "1",
        "MCP_TARS_CONFIG": str(write_config(tmp_path / "performance-config.json", config or make_config())),
    })
    return env


def stdio_params(env: dict):
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_tars", "serve"], env=env)


def in_process_server(config: Config | None = None, db_path: str | None = None):
    """The real server object, for `mcp.Client(server)` in-process tests."""
    from mcp_tars.server import create_server, open_state

    config = config or make_config()
    return create_server(lambda: open_state(config, db_path))
