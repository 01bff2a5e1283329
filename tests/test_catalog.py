"""The model catalogue (data/models.json): one place for what we know of each
model, and context windows enforced before a request is sent (and by the
simulated API, as the real one does)."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest
from mcp import Client

from mcp_tars import catalog, tokens
from mcp_tars.pricing import PriceTable
from mcp_tars.routing import fallback_models
from mcp_tars.settings import PromptCacheSettings, RoutingSettings
from mcp_tars.sim.models import ModelCatalogue

from conftest import TEST_API_KEY, in_process_server, make_config

DATA = Path(catalog.__file__).parent / "data" / "models.json"
API_DOC_CACHE_MINIMUMS = {  # shared/docs/anthropic-api.md, "Minimum cacheable prefix"
    "claude-opus-5": 512, "claude-fable-5": 512, "claude-fable-5-1": 512, "claude-opus-4-8": 1024,
    "claude-sonnet-5": 1024, "claude-sonnet-4-5": 1024, "claude-opus-4-7": 2048, "claude-sonnet-4-6": 2048,
    "claude-opus-4-5": 4096, "claude-opus-4-6": 4096, "claude-haiku-4-5": 4096,
}


def test_every_priced_model_is_in_the_catalogue_and_undocumented_values_say_so():
    data = json.loads(DATA.read_text())["models"]
    assert set(data) == set(PriceTable().models)
    for model, entry in data.items():
        info = catalog.info(model)
        assert info.listed and info.context_window_tokens >= 100_000 and info.max_output_tokens >= 8192
        assert set(entry["assumed"]) <= set(catalog.FIELDS)
        assert "context_window_tokens" in entry["assumed"]  # the API doc we work from gives no windows
        documented = model in API_DOC_CACHE_MINIMUMS
        assert ("cache_minimum_tokens" in entry["assumed"]) is not documented, model
        if documented:
            assert info.cache_minimum_tokens == API_DOC_CACHE_MINIMUMS[model]


def test_dated_ids_are_their_alias_everywhere():
    prices, sim_models = PriceTable(), ModelCatalogue(PriceTable().models)
    for dated, alias in (("claude-haiku-4-5-20251001", "claude-haiku-4-5"), ("claude-sonnet-5-5-20261201", "claude-sonnet-5-5")):
        assert catalog.info(dated).model == alias
        assert prices.canonical_model(dated) == alias
        assert sim_models.resolve(dated) == alias
        assert tokens.family_factor(dated) == catalog.info(alias).estimate_factor
    assert fallback_models("claude-opus-5-5-20261201", RoutingSettings()) == ["claude-sonnet-5-5"]
    assert catalog.info("claude-imaginary-9").listed is False


def test_cache_minimums_come_from_one_place():
    """They were written twice (settings and the simulator) and disagreed."""
    settings, sim_models = PromptCacheSettings(), ModelCatalogue(PriceTable().models)
    for model in PriceTable().models:
        assert settings.minimum_for(model) == sim_models.cache_minimum(model) == catalog.info(model).cache_minimum_tokens
    assert PromptCacheSettings(min_cacheable_tokens={"claude-sonnet-5-5": 4096}).minimum_for("claude-sonnet-5-5") == 4096


def test_the_simulator_keeps_its_own_tokenizer():
    """The sim stands for the real API: our estimate must not be exact by construction."""
    sim_models = ModelCatalogue(PriceTable().models)
    for model in PriceTable().models:
        assert sim_models.token_factor(model) != catalog.info(model).estimate_factor


def test_the_simulated_api_refuses_a_prompt_above_the_context_window(sim):
    sim.models.context_window_tokens["claude-haiku-5-5"] = 1000
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > 1000 maximum"):
        client.messages.create(model="claude-haiku-5-5", max_tokens=10,
                               messages=[{"role": "user", "content": "a few words " * 400}])
    assert sim.bill == []
    ok = client.messages.create(model="claude-haiku-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert ok.usage.input_tokens < 1000


def _long_conversation(turns: int, words: int) -> list[dict]:
    messages = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"Part {i}: " + " ".join(f"fact{i}-{j} holds" for j in range(words))})
        messages.append({"role": "assistant", "content": f"Noted part {i}."})
    messages.append({"role": "user", "content": "Which part mentions fact3-7?"})
    return messages



@pytest.mark.anyio
async def test_a_prompt_no_model_can_take_is_refused_before_anything_is_sent(tmp_path, api_env):
    """A 3.9M-token prompt once went out and was billed $7.81."""
    server = in_process_server(make_config(), str(tmp_path / "w.db"))
    huge = " ".join(f"line {i} of the log says nothing new" for i in range(40_000))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": huge, "max_tokens": 100})
    assert r.is_error
    text = r.content[0].text
    assert "context window" in text and "200,000" in text and "nothing was sent" in text
    assert api_env.requests == [] and api_env.bill == []


@pytest.mark.anyio
async def test_a_conversation_above_the_window_is_pruned_to_fit_and_says_so(tmp_path, api_env):
    # automatic pruning set above the window: only the window makes it prune
    config = make_config(pruning={"auto_threshold_tokens": 1_000_000, "auto_target_tokens": 500_000})
    server = in_process_server(config, str(tmp_path / "w.db"))
    messages = _long_conversation(turns=12, words=6000)  # ~25K tokens a turn, ~300K in all
    assert tokens.estimate_request_tokens(messages, None, None, "claude-sonnet-5-5") > 200_000
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"messages": messages, "model": "claude-sonnet-5-5",
                                                          "max_tokens": 200})
    assert not r.is_error, r.content[0].text
    s = r.structured_content
    assert s["source"] == "api" and s["pruning"]["tokens_after"] <= 200_000 < s["pruning"]["tokens_before"]
    assert any("context window" in w and "pruned" in w for w in s["warnings"])
    sent = api_env.requests[-1].body
    assert api_env.count_tokens({"model": "claude-sonnet-5-5", "messages": sent["messages"],
                                 **({"system": sent["system"]} if "system" in sent else {})}) <= 200_000


@pytest.mark.anyio
async def test_above_the_window_with_pruning_off_is_refused(tmp_path, api_env):
    server = in_process_server(make_config(pruning={"enabled": False}), str(tmp_path / "w.db"))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"messages": _long_conversation(12, 6000), "max_tokens": 200})
    assert r.is_error and "pruning.enabled" in r.content[0].text
    assert api_env.requests == []


@pytest.mark.anyio
async def test_max_tokens_above_the_models_output_limit_is_refused(tmp_path, api_env):
    server = in_process_server(make_config(), str(tmp_path / "w.db"))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "hi", "model": "claude-haiku-4-5",
                                                          "max_tokens": 100_000})
    assert r.is_error and "64,000 output tokens claude-haiku-4-5 allows" in r.content[0].text
    assert api_env.requests == []
    assert TEST_API_KEY not in r.content[0].text
