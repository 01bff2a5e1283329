"""``performance-config.json`` -> validated pydantic models.

Every knob lives in the JSON file; its models live in settings.py (a leaf);
this module finds, reads and validates the file. A wrong value stops the
server with a message naming the file, the field and what is allowed.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .settings import (  # noqa: F401  (re-exported: callers import the models from here too)
    ApiSettings,
    BatchSettings,
    BudgetSettings,
    Config,
    ConfigError,
    MonitoringSettings,
    ServerSettings,
)


def packaged_config_path() -> Path:
    return Path(str(resources.files("mcp_tars").joinpath("data/performance-config.json")))


def config_path() -> Path:
    env = os.environ.get("MCP_TARS_CONFIG")
    return Path(env).expanduser() if env else packaged_config_path()


def _describe(error: ValidationError, source: str) -> str:
    """One line per wrong field (one line in all for one), naming the file."""
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict) or not where else f" (got {json.dumps(got, default=str)[:80]})"
        problems.append(f"{where}: {message}{shown}" if where else message)
    hint = "`mcp-tars config reference` lists every field and its allowed values."
    if len(problems) == 1:
        return f"{source}: invalid configuration: {problems[0]}. {hint}"
    return "\n".join([f"{source}: invalid configuration:", *(f"  - {p}" for p in problems), hint])


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
