"""Cost of a usage object, for every model and token class, exactly as Anthropic bills."""

import json
from datetime import datetime, timezone
from decimal import Decimal
from importlib import resources

import pytest

from mcp_tars.pricing import LEVERS, PriceTable, Usage, attribute_cache_hit, attribute_call

TABLE = json.loads(resources.files("mcp_tars").joinpath("data/prices.json").read_text())
MODELS = sorted(TABLE["models"])
FIELD_OF_CLASS = {
    "input_tokens": "input",
    "cache_write_5m_tokens": "cache_write_5m",
    "cache_write_1h_tokens": "cache_write_1h",
    "cache_read_tokens": "cache_read",
    "output_tokens": "output",
}
AFTER_CUT = datetime(2026, 11, 26, tzinfo=timezone.utc)


def test_every_model_of_the_api_doc_is_in_the_table_with_explicit_fields_and_a_source():
    expected = {
        "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-2", "claude-fable-5-1",
        "claude-mythos-5-1", "claude-fable-5", "claude-mythos-5", "claude-sonnet-5", "claude-opus-5",
        "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5", "claude-sonnet-4-6",
        "claude-sonnet-4-5", "claude-haiku-4-5",
    }
    assert expected <= set(MODELS)
    for model in MODELS:
        entry = TABLE["models"][model]
        for field in FIELD_OF_CLASS.values():
            assert isinstance(entry[field], (int, float)), (model, field)
        assert entry["source"] and entry["checked"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("token_class", sorted(FIELD_OF_CLASS))
@pytest.mark.parametrize("batch", [False, True])
def test_one_token_class_costs_its_own_price(model, token_class, batch):
    prices = PriceTable()
    n = 12_345
    usage = Usage(**{token_class: n})
    cost = prices.cost(usage, model, batch=batch, when=AFTER_CUT)
    per_million = Decimal(str(TABLE["models"][model][FIELD_OF_CLASS[token_class]]))
    expected = per_million * n / Decimal(1_000_000) * (Decimal("0.5") if batch else 1)
    assert cost.usd == pytest.approx(float(expected), abs=1e-12)
    assert cost.pricing_source == "table"
    assert cost.batch is batch


def test_a_mixed_usage_adds_every_line():
    prices = PriceTable()
    u = Usage(input_tokens=1000, cache_write_5m_tokens=2000, cache_write_1h_tokens=3000,
              cache_read_tokens=40_000, output_tokens=500)
    # sonnet 5.5: 2 / 2.5 / 4 / 0.10 / 10 per million
    expected = (1000 * 2 + 2000 * 2.5 + 3000 * 4 + 40_000 * 0.10 + 500 * 10) / 1e6
    assert prices.cost(u, "claude-sonnet-5-5", when=AFTER_CUT).usd == pytest.approx(expected, abs=1e-12)
    assert prices.cost(u, "claude-sonnet-5-5", batch=True, when=AFTER_CUT).usd == pytest.approx(expected / 2, abs=1e-12)


def test_batch_tier_in_usage_means_batch_price():
    prices = PriceTable()
    u = Usage(input_tokens=1_000_000, service_tier="batch")
    assert prices.cost(u, "claude-opus-5-5").usd == pytest.approx(2.0)


def test_sonnet_5_5_cache_read_price_before_the_cut():
    prices = PriceTable()
    u = Usage(cache_read_tokens=1_000_000)
    assert prices.cost(u, "claude-sonnet-5-5", when=datetime(2026, 10, 6, tzinfo=timezone.utc)).usd == pytest.approx(0.20)
    assert prices.cost(u, "claude-sonnet-5-5", when=datetime(2026, 10, 7, tzinfo=timezone.utc)).usd == pytest.approx(0.10)


def test_haiku_5_5_long_context_band_prices_the_whole_request():
    prices = PriceTable()
    under = Usage(input_tokens=100_000, output_tokens=1000)
    over = Usage(input_tokens=100_001, output_tokens=1000)
    assert prices.cost(under, "claude-haiku-5-5").usd == pytest.approx((100_000 * 0.10 + 1000 * 0.50) / 1e6)
    c = prices.cost(over, "claude-haiku-5-5")
    assert c.band == "long_context"
    assert c.usd == pytest.approx((100_001 * 0.50 + 1000 * 2.50) / 1e6)


def test_cache_reads_do_not_trigger_the_long_context_band():
    prices = PriceTable()
    u = Usage(input_tokens=10_000, cache_read_tokens=500_000)
    c = prices.cost(u, "claude-haiku-5-5")
    assert c.band == "standard"
    assert c.usd == pytest.approx((10_000 * 0.10 + 500_000 * 0.01) / 1e6)


def test_cache_writes_do_count_toward_the_long_context_band():
    u = Usage(input_tokens=10, cache_write_1h_tokens=100_000)
    assert PriceTable().cost(u, "claude-haiku-5-5").band == "long_context"


def test_dated_ids_price_as_their_alias():
    prices = PriceTable()
    u = Usage(input_tokens=1000, output_tokens=1000)
    for dated, alias in [("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
                         ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
                         ("claude-opus-4-5-20251101", "claude-opus-4-5")]:
        assert prices.cost(u, dated).usd == prices.cost(u, alias).usd
        assert prices.cost(u, dated).pricing_source == "table"


def test_unknown_model_is_never_zero_and_never_another_model():
    prices = PriceTable()
    c = prices.cost(Usage(input_tokens=1000), "claude-mythos-5-2")
    assert c.usd is None and c.pricing_source == "unknown" and not c.known
    a = attribute_call(prices, usage=Usage(input_tokens=1000), model="claude-unknown-9", default_model="claude-sonnet-5-5")
    assert a.cost_usd is None and a.pricing_source == "unknown" and a.saved_usd is None


def test_overrides_win_over_the_table_and_are_labelled():
    prices = PriceTable(overrides={"claude-sonnet-5-5": {"input": 1.0}, "claude-new-1": {
        "input": 1, "cache_write_5m": 1.25, "cache_write_1h": 2, "cache_read": 0.1, "output": 5}})
    c = prices.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "claude-sonnet-5-5")
    assert c.usd == pytest.approx(1.0 + 10.0)
    assert c.pricing_source == "override"
    assert prices.cost(Usage(input_tokens=1_000_000), "claude-new-1").usd == pytest.approx(1.0)


def test_geo_us_multiplier():
    prices = PriceTable()
    u = Usage(input_tokens=1_000_000, inference_geo="us")
    assert prices.cost(u, "claude-sonnet-5-5").usd == pytest.approx(2.2)
    assert prices.cost(u, "claude-sonnet-4-5").usd == pytest.approx(3.0)  # older than 4.6: no multiplier


def test_usage_from_api_splits_cache_writes_by_ttl():
    u = Usage.from_api({"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 300,
                        "cache_read_input_tokens": 11,
                        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}})
    assert (u.input_tokens, u.cache_write_5m_tokens, u.cache_write_1h_tokens, u.cache_read_tokens, u.output_tokens) == (5, 100, 200, 11, 7)
    legacy = Usage.from_api({"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 50})
    assert legacy.cache_write_5m_tokens == 50 and legacy.cache_write_1h_tokens == 0
    with pytest.raises(ValueError):
        Usage.from_api(None)


def test_savings_by_lever_add_up_to_baseline_minus_cost():
    prices = PriceTable()
    u = Usage(input_tokens=300, cache_write_1h_tokens=0, cache_read_tokens=6000, output_tokens=400, service_tier="batch")
    a = attribute_call(prices, usage=u, model="claude-haiku-5-5", default_model="claude-sonnet-5-5",
                       batch=True, pruned_away_tokens=5000)
    assert set(a.savings) == set(LEVERS)
    assert a.saved_usd == pytest.approx(a.baseline_cost_usd - a.cost_usd, abs=1e-12)
    assert a.savings["batch"] > 0 and a.savings["prompt_cache"] > 0 and a.savings["routing"] > 0 and a.savings["pruning"] > 0
    assert a.savings["cache"] == 0
    assert a.baseline_estimated


def test_unrouted_unpruned_call_has_a_measured_baseline():
    prices = PriceTable()
    u = Usage(input_tokens=1000, output_tokens=100)
    a = attribute_call(prices, usage=u, model="claude-sonnet-5-5", default_model="claude-sonnet-5-5")
    assert not a.baseline_estimated
    assert a.saved_usd == pytest.approx(0.0)
    assert a.baseline_cost_usd == pytest.approx(a.cost_usd)


def test_a_cache_hit_saves_the_whole_baseline_by_the_cache_lever():
    """The cache answers before any other lever acts: a hit of an answer that
    was routed to Haiku credits nothing to routing (it did once credit most)."""
    prices = PriceTable()
    original = attribute_call(prices, usage=Usage(input_tokens=1000, output_tokens=500), model="claude-haiku-5-5",
                              default_model="claude-sonnet-5-5")
    assert original.savings["routing"] > 10 * original.cost_usd  # the original call: mostly routing
    hit = attribute_cache_hit(original.cost_usd, original.baseline_cost_usd)
    assert hit.cost_usd == 0.0
    assert hit.savings["cache"] == pytest.approx(original.baseline_cost_usd)
    assert {k: v for k, v in hit.savings.items() if k != "cache"} == {"pruning": 0.0, "routing": 0.0,
                                                                      "prompt_cache": 0.0, "batch": 0.0}
    assert hit.saved_usd == pytest.approx(original.baseline_cost_usd)


def test_a_regional_premium_is_not_booked_as_a_routing_loss():
    prices = PriceTable()
    u = Usage(input_tokens=10_000, output_tokens=1000, inference_geo="us")
    a = attribute_call(prices, usage=u, model="claude-sonnet-5-5", default_model="claude-sonnet-5-5")
    assert a.savings["routing"] == pytest.approx(0.0, abs=1e-12)
    assert a.baseline_cost_usd == pytest.approx(a.cost_usd)
