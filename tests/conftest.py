"""Shared fixtures: the simulated API on loopback, a private data dir, the
databases (SQLite, and the PostgreSQL server .ci/postgres starts), and ways to
run the real server (in-process through the MCP client, or as a stdio
subprocess)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import settings

from mcp_tars.config import Config

# Property tests draw the same examples on every run: a new random draw must
# never fail someone else's submission. MCP_TARS_HYPOTHESIS=explore draws new
# examples (and keeps failures in .hypothesis/) to look for bugs by hand.
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("MCP_TARS_HYPOTHESIS", "repeatable"))

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
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))  # a team database's spool goes there
    monkeypatch.setenv("MCP_TARS_STRICT_RESPONSES", "1")
    monkeypatch.delenv("MCP_TARS_CONFIG", raising=False)
    monkeypatch.delenv("MCP_TARS_CLOCK_FILE", raising=False)


# -- databases ----------------------------------------------------------------------------------

POSTGRES_URL_FILE = Path(__file__).resolve().parent.parent / ".ci" / "postgres-url"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@lru_cache(maxsize=1)
def _postgres_server() -> tuple[str | None, str | None]:
    """(URL of the test server, None) or (None, why there is none)."""
    url = os.environ.get("MCP_TARS_TEST_POSTGRES_URL") or (
        POSTGRES_URL_FILE.read_text().strip() if POSTGRES_URL_FILE.exists() else None)
    if not url:
        return None, ("no PostgreSQL for the tests: run .ci/postgres as root (it starts one and writes "
                      ".ci/postgres-url), or set MCP_TARS_TEST_POSTGRES_URL")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5):
            pass
    except Exception as e:  # noqa: BLE001 - any reason is a reason to say so
        return None, f"the test PostgreSQL server does not answer ({type(e).__name__}: {e}); run .ci/postgres as root"
    return url, None


def postgres_server_url() -> str:
    """The test server's URL. Without one the test fails under CI (a postgres
    test must never pass by not running) and is skipped elsewhere."""
    url, problem = _postgres_server()
    if url is None:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    return url


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url():
    """A URL of the test server whose tables live in a fresh schema of their own
    (dropped afterwards): tests, and test runs, never see each other's rows."""
    import psycopg

    server = postgres_server_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    yield _with_schema(server, schema)
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Each backend in turn: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "tars.db")
    return request.getfixturevalue("postgres_url")


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
