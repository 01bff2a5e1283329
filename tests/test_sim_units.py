"""Pure cores of the simulator: billing arithmetic, prompt cache rules, answers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_tars.sim.answers import compose_answer
from mcp_tars.sim.billing import PriceTable
from mcp_tars.sim.models import ModelCatalogue
from mcp_tars.sim.prompt import Breakpoint, Prompt, Segment, build_prompt
from mcp_tars.sim.prompt_cache import PromptCache

NOV_2026 = datetime(2026, 11, 26, tzinfo=timezone.utc).timestamp()
SEP_2026 = datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()


def usage(input_tokens=0, write_5m=0, write_1h=0, read=0, output=0, **extra):
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "cache_read_input_tokens": read,
        "output_tokens": output,
        **extra,
    }


@pytest.fixture(scope="module")
def prices():
    return PriceTable.load()


# ------------------------------------------------------------ billing by hand

# sonnet-5-5: input 2, 5m 2.5, 1h 4, read 0.10 (0.20 before 2026-10-07), output 10 per million.
SONNET_MIXED = usage(input_tokens=1000, write_5m=2000, write_1h=1000, read=10_000, output=500)


def test_every_token_class_has_its_own_price(prices):
    # 1000*2 + 2000*2.5 + 1000*4 + 10000*0.1 + 500*10 = 17000 per million
    assert prices.cost_usd("claude-sonnet-5-5", SONNET_MIXED, when=NOV_2026, batch=False) == pytest.approx(0.017)


def test_price_history_applies_before_its_date(prices):
    # cache reads at 0.20 before 2026-10-07: 17000 + 10000*0.1 = 18000 per million
    assert prices.cost_usd("claude-sonnet-5-5", SONNET_MIXED, when=SEP_2026, batch=False) == pytest.approx(0.018)
    day_of_cut = datetime(2026, 10, 7, tzinfo=timezone.utc).timestamp()
    assert prices.cost_usd("claude-sonnet-5-5", SONNET_MIXED, when=day_of_cut, batch=False) == pytest.approx(0.017)


def test_batches_pay_half_on_every_line(prices):
    assert prices.cost_usd("claude-sonnet-5-5", SONNET_MIXED, when=NOV_2026, batch=True) == pytest.approx(0.0085)


def test_haiku_5_5_long_context_band_counts_writes_but_not_reads(prices):
    # 90K input + 20K written = 110K > 100K: the whole request at the band's prices
    # 90000*0.5 + 20000*0.625 + 50000*0.05 + 1000*2.5 = 62500 per million
    big = usage(input_tokens=90_000, write_5m=20_000, read=50_000, output=1000)
    assert prices.cost_usd("claude-haiku-5-5", big, when=NOV_2026, batch=False) == pytest.approx(0.0625)
    # 90K input + 500K read: reads do not count, standard band
    # 90000*0.1 + 500000*0.01 + 1000*0.5 = 14500 per million
    reads = usage(input_tokens=90_000, read=500_000, output=1000)
    assert prices.cost_usd("claude-haiku-5-5", reads, when=NOV_2026, batch=False) == pytest.approx(0.0145)
    at_threshold = usage(input_tokens=100_000)
    assert prices.cost_usd("claude-haiku-5-5", at_threshold, when=NOV_2026, batch=False) == pytest.approx(0.01)


def test_us_inference_geo_multiplier(prices):
    plain = usage(input_tokens=1_000_000)
    assert prices.cost_usd("claude-opus-5-5", {**plain, "inference_geo": "us"}, when=NOV_2026, batch=False) == (
        pytest.approx(4.4)
    )
    assert prices.cost_usd("claude-opus-4-5", {**plain, "inference_geo": "us"}, when=NOV_2026, batch=False) == (
        pytest.approx(5.0)
    )


def test_model_catalogue_resolves_dated_ids_only_for_known_aliases(prices):
    catalogue = ModelCatalogue(prices.models)
    assert catalogue.resolve("claude-haiku-4-5-20251001") == "claude-haiku-4-5"
    assert catalogue.resolve("claude-sonnet-5-5") == "claude-sonnet-5-5"
    assert catalogue.resolve("claude-mythos-5-2") is None
    assert catalogue.resolve("claude-nope-20251001") is None
    assert catalogue.token_factor("claude-sonnet-5-5") > catalogue.token_factor("claude-sonnet-4-5")


# ---------------------------------------------------------------- prompt cache


def prompt_of(block_tokens: list[int], breakpoints: dict[int, str], salt: str = "") -> Prompt:
    segments = tuple(Segment(f"b{i}", tokens, f"{salt}{i}:{tokens}".encode()) for i, tokens in enumerate(block_tokens))
    return Prompt(segments, tuple(Breakpoint(index, ttl, f"b{index}") for index, ttl in sorted(breakpoints.items())))


def test_writes_are_split_by_the_ttl_of_the_breakpoint_that_holds_them():
    cache = PromptCache()
    prompt = prompt_of([600, 600, 600, 50], {0: "1h", 2: "5m"})
    outcome = cache.apply("m", prompt, minimum_tokens=1000, now=0)
    # Breakpoint 0 (600 tokens) is below the minimum, so its tokens belong to the 5m entry at block 2.
    assert (outcome.ephemeral_1h_input_tokens, outcome.ephemeral_5m_input_tokens) == (0, 1800)
    assert (outcome.input_tokens, outcome.cache_read_input_tokens) == (50, 0)


def test_lookback_reaches_twenty_blocks_back_and_no_further():
    cache = PromptCache(lookback_blocks=20)
    blocks = [100] * 30
    cache.apply("m", prompt_of(blocks, {5: "5m"}), minimum_tokens=100, now=0)
    near = cache.apply("m", prompt_of(blocks, {25: "5m"}), minimum_tokens=100, now=1)
    assert near.cache_read_input_tokens == 600
    far = cache.apply("m", prompt_of(blocks, {26: "5m"}), minimum_tokens=100, now=2)
    assert far.cache_read_input_tokens == 2600  # block 25 was written by the previous request
    cache.clear()
    cache.apply("m", prompt_of(blocks, {5: "5m"}), minimum_tokens=100, now=0)
    assert cache.apply("m", prompt_of(blocks, {26: "5m"}), minimum_tokens=100, now=1).cache_read_input_tokens == 0


def test_entries_are_per_model():
    cache = PromptCache()
    prompt = prompt_of([2000], {0: "5m"})
    cache.apply("a", prompt, minimum_tokens=1024, now=0)
    assert cache.apply("b", prompt, minimum_tokens=1024, now=0).cache_read_input_tokens == 0
    assert cache.apply("a", prompt, minimum_tokens=1024, now=0).cache_read_input_tokens == 2000


requests_strategy = st.lists(
    st.tuples(
        st.lists(st.integers(1, 800), min_size=1, max_size=12),  # block sizes
        st.dictionaries(st.integers(0, 11), st.sampled_from(["5m", "1h"]), max_size=4),  # breakpoints
        st.floats(0, 400),  # seconds since the previous request
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(requests_strategy, st.integers(0, 2))
def test_usage_always_adds_up_to_the_whole_prompt(requests, prefix_family):
    cache, now = PromptCache(), 0.0
    for block_tokens, breakpoints, pause in requests:
        now += pause
        breakpoints = {index: ttl for index, ttl in breakpoints.items() if index < len(block_tokens)}
        prompt = prompt_of(block_tokens, breakpoints, salt=str(prefix_family))
        outcome = cache.apply("m", prompt, minimum_tokens=500, now=now)
        total = sum(block_tokens)
        assert (
            outcome.input_tokens + outcome.cache_creation_input_tokens + outcome.cache_read_input_tokens == total
        )
        assert min(outcome.input_tokens, outcome.cache_read_input_tokens, outcome.cache_creation_input_tokens) >= 0
        if not breakpoints:
            assert outcome.input_tokens == total
        last = max(breakpoints, default=-1)
        assert outcome.input_tokens >= sum(block_tokens[last + 1 :])
        # What was just written or read is a hit for the same prompt a moment later.
        again = cache.apply("m", prompt, minimum_tokens=500, now=now)
        assert again.cache_creation_input_tokens == 0
        assert again.cache_read_input_tokens == outcome.cache_read_input_tokens + outcome.cache_creation_input_tokens


def test_fingerprints_ignore_cache_control_but_not_content():
    def build(system_ttl=None, text="same"):
        block = {"type": "text", "text": text}
        if system_ttl:
            block["cache_control"] = {"type": "ephemeral", "ttl": system_ttl}
        return build_prompt({"system": [block], "messages": [{"role": "user", "content": "q"}]}, 1.0)

    assert build().segments == build("1h").segments
    assert build().segments[0].fingerprint != build(text="other").segments[0].fingerprint
    as_string = build_prompt({"system": "same", "messages": [{"role": "user", "content": "q"}]}, 1.0)
    assert as_string.segments[0].fingerprint == build().segments[0].fingerprint


# --------------------------------------------------------------------- answers


def test_small_max_tokens_still_answers_and_tool_answers_respect_max_tokens():
    body = {"model": "claude-sonnet-5-5", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
    answer = compose_answer(body, token_factor=1.3, seed=0, new_tool_use_id=lambda: "toolu_x")
    assert (answer.output_tokens, answer.stop_reason) == (1, "max_tokens")
    assert answer.content[0]["text"] == "Simulated"
    tools = [{"name": "t", "input_schema": {"type": "object"}}]
    forced = {**body, "max_tokens": 500, "tools": tools, "tool_choice": {"type": "any"}}
    assert compose_answer(forced, token_factor=1.3, seed=0, new_tool_use_id=lambda: "toolu_x").stop_reason == "tool_use"
    never = {**forced, "tool_choice": {"type": "none"}, "messages": [{"role": "user", "content": "use a tool"}]}
    assert compose_answer(never, token_factor=1.3, seed=0, new_tool_use_id=lambda: "toolu_x").stop_reason == "end_turn"
