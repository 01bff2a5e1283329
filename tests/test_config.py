"""performance-config.json: documented, validated, with errors that say what to fix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_tars.config import Config, ConfigError, config_reference_markdown, load_config, packaged_config_path

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_file_is_the_documented_default():
    top_level = json.loads((ROOT / "performance-config.json").read_text())
    assert top_level == json.loads(packaged_config_path().read_text())
    assert load_config(ROOT / "performance-config.json") == Config()


def test_the_readme_documents_every_field():
    readme = (ROOT / "README.md").read_text()
    assert config_reference_markdown() in readme, "run `mcp-tars config reference` and paste it into the README"


def test_the_brief_knobs_are_there():
    c = Config()
    assert c.cache.ttl_seconds["fact_lookup"] == 7200 and c.cache.ttl_seconds["research"] == 3600
    assert c.batch.off_peak_start_hour_utc == 0 and c.batch.off_peak_end_hour_utc == 6
    assert c.routing.tier_models["simple"] == "claude-haiku-5-5"
    assert c.routing.tier_models["expert"] is None  # the default model: nothing dearer unless routing.allow_upgrade


@pytest.mark.parametrize("change, field, allowed", [
    ({"batch": {"batch_size": 0}}, "batch.batch_size", "greater than or equal to 1"),
    ({"budget": {"policy": "shout"}}, "budget.policy", "'block', 'downgrade' or 'defer'"),
    ({"cache": {"no_such_knob": 1}}, "cache.no_such_knob", "Extra inputs are not permitted"),
    ({"api": {"max_retries": "lots"}}, "api.max_retries", "valid integer"),
    ({"price_overrides": {"claude-x": {"inptu": 1}}}, "price_overrides", "allowed"),
    ({"price_overrides": {"claude-new-1": {"input": 1}}}, "price_overrides", "needs every price field"),
])
def test_a_wrong_value_names_the_file_the_field_and_what_is_allowed(tmp_path, change, field, allowed):
    path = tmp_path / "performance-config.json"
    path.write_text(json.dumps(change))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert str(path) in message and field.split(".")[0] in message and allowed in message


def test_broken_json_says_where(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"cache": {"enabled": true,}}')
    with pytest.raises(ConfigError, match=r"line 1, column \d+"):
        load_config(path)


def test_the_server_refuses_to_start_on_a_wrong_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"routing": {"tier_models": "haiku"}}))
    out = subprocess.run([sys.executable, "-m", "mcp_tars", "--config", str(path), "serve"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert str(path) in out.stderr and "routing.tier_models" in out.stderr
