"""``performance-config.json`` -> validated pydantic models.

Every knob lives in the JSON file; each lever owns the model of its own
section (``CacheSettings`` in cache.py, ``RoutingSettings`` in routing.py...)
and this module composes them. A wrong value stops the server with a message
naming the file, the field and what is allowed.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .cache import CacheSettings
from .pricing import PriceTable
from .heartbeat import HeartbeatSettings
from .prompt_cache import PromptCacheSettings
from .pruning import PruningSettings
from .reports import ReportSettings
from .routing import RoutingSettings

class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSettings(_Section):
    max_retries: int = Field(4, ge=0, le=20, description="Retries of a call on 429, 529, 5xx, timeouts and connection errors, before the fallback chain.")
    backoff_initial_seconds: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles per attempt, with full jitter.")
    backoff_max_seconds: float = Field(8.0, ge=0, le=600, description="Upper bound of one retry delay.")
    max_retry_after_seconds: float = Field(60.0, ge=0, le=3600, description="Longest retry-after from the API that is obeyed; a longer one goes to the fallback model instead.")
    timeout_seconds: float = Field(600.0, gt=0, le=3600, description="Timeout of one API request.")
    stream_threshold_max_tokens: int = Field(16000, ge=1, description="Calls with max_tokens above this are streamed (the SDK refuses long non-streaming calls).")


class BudgetSettings(_Section):
    daily_usd: float | None = Field(None, gt=0, description="Daily spending limit in USD (UTC days); null for none.")
    monthly_usd: float | None = Field(None, gt=0, description="Monthly spending limit in USD (calendar month, UTC); null for none.")
    warn_share: float = Field(0.8, gt=0, le=1, description="Share of a budget at which results and reports carry a warning.")
    policy: Literal["block", "downgrade", "defer"] = Field("downgrade", description="What happens to a call that would exceed a budget: block it with an error, route it one tier down (expert work never below routing.expert_floor_model), or queue it for the Batches API.")


class BatchSettings(_Section):
    batch_size: int = Field(20, ge=1, le=100_000, description="A category's queued tasks are submitted as one batch once this many are waiting.")
    batch_timeout_seconds: int = Field(300, ge=0, description="A queued task is submitted at the latest this long after it was queued.")
    off_peak_start_hour_utc: int = Field(0, ge=0, le=23, description="Start of the off-peak window (UTC hour) in which low-priority work goes out.")
    off_peak_end_hour_utc: int = Field(6, ge=0, le=24, description="End of the off-peak window (UTC hour, exclusive).")
    low_priority_waits_for_off_peak: bool = Field(True, description="Hold low-priority tasks for the off-peak window when their deadline allows.")
    expected_batch_seconds: int = Field(3600, ge=1, description="How long a batch is expected to take; a task whose deadline is nearer than this runs immediately.")
    max_attempts: int = Field(3, ge=1, le=20, description="Tries per task (errored and expired results are retried) before it is marked failed.")
    poll_interval_seconds: float = Field(30.0, gt=0, description="How often the background worker polls submitted batches.")
    worker_enabled: bool = Field(True, description="Run the background batch worker inside the server.")
    prefix_cache_ttl: Literal["5m", "1h"] = Field("1h", description="Prompt-cache TTL on the prefix shared by tasks of one batch.")
    immediate_concurrency: int = Field(4, ge=1, le=64, description="Queued tasks whose deadline is nearer than a batch takes run at once, at the standard rate, this many at a time. Raise it to drain a large overdue backlog faster; lower it when the API's rate limits (429s) are tight.")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Bind address of the HTTP transport.")
    port: int = Field(8765, ge=0, le=65535, description="Port of the HTTP transport.")
    bearer_token_env: str = Field("MCP_TARS_TOKEN", description="Environment variable holding the bearer token the HTTP transport requires when bound to a non-loopback address.")
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted.")
    max_prompt_chars: int = Field(12_000_000, ge=1000, description="Largest prompt (all text of a request) accepted, in characters.")
    max_messages: int = Field(20_000, ge=1, description="Most messages accepted in one request.")


class MonitoringSettings(_Section):
    metrics_log: str | None = Field("monitoring_logs/optimization-metrics.log", description="JSON-lines metrics log, one line per call (relative paths are under the data directory); null to disable.")
    retention_days: int | None = Field(None, ge=1, description="Delete cached prompts and answers older than this many days; null keeps them until their TTL.")
    store_prompts_in_cache: bool = Field(True, description="Keep prompts and answers in the response cache; false disables the response cache entirely.")


class Config(_Section):
    default_model: str = Field("claude-sonnet-5-5", description="The model every call would use without mcp-tars: the baseline of every saving, and the model of unrouted calls.")
    tenant_namespace: str | None = Field(None, description="Cache and report namespace; null derives it from a hash of the API key.")
    api: ApiSettings = Field(default_factory=ApiSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    prompt_cache: PromptCacheSettings = Field(default_factory=PromptCacheSettings)
    pruning: PruningSettings = Field(default_factory=PruningSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    price_overrides: dict[str, dict[str, float]] = Field(default_factory=dict, description="Per-model price fields (USD per million tokens) that win over the packaged price table.")

    @model_validator(mode="after")
    def _one_default_model(self) -> "Config":
        # routing falls back to the same model that baselines are measured against
        if "default_model" in self.routing.model_fields_set and self.routing.default_model != self.default_model:
            raise ValueError("routing.default_model is set from the top-level default_model; remove it from the "
                             "routing section and set default_model instead")
        self.routing.default_model = self.default_model
        return self

    @model_validator(mode="after")
    def _check_price_overrides(self) -> "Config":
        for model, fields in self.price_overrides.items():
            negative = [k for k, v in fields.items() if v < 0]
            if negative:
                raise ValueError(f"price_overrides.{model}: prices cannot be negative ({negative})")
        PriceTable(overrides=self.price_overrides)  # unknown fields, or a new model without every price
        return self


def packaged_config_path() -> Path:
    return Path(str(resources.files("mcp_tars").joinpath("data/performance-config.json")))


def config_path() -> Path:
    env = os.environ.get("MCP_TARS_CONFIG")
    return Path(env).expanduser() if env else packaged_config_path()


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        shown = json.dumps(got)[:80] if not isinstance(got, dict) else "{...}"
        lines.append(f"  - {where}: {e['msg']} (got {shown})")
    lines.append("Fix the field(s) above; the README lists every field and its allowed values.")
    return "\n".join(lines)


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate the configuration; raises ConfigError with a message
    that names the file and every wrong field."""
    p = Path(path) if path is not None else config_path()
    try:
        raw = json.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found (set MCP_TARS_CONFIG to an existing file)") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a JSON object")
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # "_comment" keys are documentation
    try:
        return Config.model_validate(_strip_comments(raw))
    except ValidationError as e:
        raise ConfigError(_describe(e, str(p))) from None


def _strip_comments(value):
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("_"))}
    return value


def default_config_json() -> str:
    """The documented default configuration (what ships as performance-config.json)."""
    return json.dumps(Config().model_dump(mode="json"), indent=2)


def config_reference_rows(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, default, description) for every knob, for the README."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue  # derived from another field, not a knob
        path = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(config_reference_rows(annotation, f"{path}."))
            continue
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default.model_dump(mode="json") if isinstance(default, BaseModel) else default, default=str)
        rows.append((path, shown, (field.description or "").replace("|", "\\|")))
    return rows


def config_reference_markdown() -> str:
    lines = ["| field | default | meaning |", "|---|---|---|"]
    for path, default, description in config_reference_rows():
        if len(default) > 60:
            default = default[:57] + "..."
        lines.append(f"| `{path}` | `{default}` | {description} |")
    return "\n".join(lines)
