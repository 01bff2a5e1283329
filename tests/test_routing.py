"""Model routing: features, the fitted model file, classify and the model choice (pure core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.fit_router import HYPER, Example, fit, predict
from mcp_tars.config import Config
from mcp_tars.pricing import PriceTable
from mcp_tars.routing import (
    LEVELS,
    Complexity,
    RoutingSettings,
    SessionRoute,
    choose_model,
    classify,
    fallback_models,
    is_dearer,
    load_model,
    model_ladder,
)
from mcp_tars.routing.features import extract, split_ask
from mcp_tars.routing.model import FORMAT, RouterModel, packaged_model_path
from mcp_tars.settings import HAIKU, OPUS, SONNET

DATA = Path(__file__).parent / "data"
LONG_PARAGRAPH = (
    "Our team spent the last quater reorganising the onboarding proccess for new hires. "
    "We intervewed twelve people who joined in the past year, collected there feedback, "
    "and grouped the comments into themes such as documentation, mentoring and tooling. "
) * 40  # about 1,300 words
PRICES = PriceTable()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def load(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if "_meta" not in r]


def fixed(probability: float, level: str | None = None, settings: RoutingSettings | None = None) -> Complexity:
    from mcp_tars.routing import level_for

    s = settings or RoutingSettings()
    return Complexity(round(100 * probability), level or level_for(probability, s), "test", {})


# --------------------------------------------------------------------------- classify (the shipped model)


@pytest.mark.parametrize("prompt", [
    # the held-out day's misroutes (issue 13)
    "Is 91 a prime number?",
    "What is SQL injection?",
    "Translate to Spanish: The database migration is scheduled for Friday night.",
    "What is the capital of France?",
    LONG_PARAGRAPH + "\n\nFix the typos.",
    "Fix the typos in this text: " + LONG_PARAGRAPH,
])
def test_simple_requests_go_to_the_cheap_tier(prompt):
    c = classify(user(prompt))
    assert c.level == "simple", c.reason


@pytest.mark.parametrize("prompt", [
    "Prove there are infinitely many primes p ≡ 3 (mod 4)",
    "Debug this: my Flask app returns 400 on every POST behind the load balancer, GET works.",
    "Design a multi-region active-active ledger with exactly-once transfers and audit trails.",
    "Refactor this module into smaller functions:\n```python\ndef f(a):\n    b = a + 1\n    return b\n```",
    "Why does my Rust code deadlock when I hold a MutexGuard across an await?",
])
def test_hard_requests_are_not_simple(prompt):
    c = classify(user(prompt))
    assert c.level != "simple", c.reason


def test_length_alone_does_not_decide():
    long_easy = classify(user("Fix the typos in this text: " + LONG_PARAGRAPH))
    short_hard = classify(user("Prove that sqrt(2) is irrational."))
    assert short_hard.score > long_easy.score + 30


def test_pasted_material_does_not_supply_the_task_verb():
    essay = "In this essay we design a distributed system and debug its consensus protocol under network partitions. " * 20
    parts = split_ask(essay + "\n\nPlease correct the spelling.")
    assert parts.ask == "Please correct the spelling." and parts.material_words > 200
    assert classify(user(essay + "\n\nPlease correct the spelling.")).level == "simple"


def test_the_object_of_an_editing_verb_names_the_task():
    typos = extract(user("Fix the typos in this sentence: 'Their going too the libary.'"))
    bug = extract(user("Fix the race condition in our job scheduler."))
    assert typos.values["lead_light"] == 1.0 and typos.values["lead_complex"] == 0.0
    assert bug.values["lead_complex"] == 1.0


def test_reason_names_the_features_that_decided():
    c = classify(user("Translate to Spanish: The database migration is scheduled for Friday night."))
    assert c.reason.startswith(f"simple (p={c.score / 100:.2f} < ")
    assert "leads with light word 'translate'" in c.reason  # what pulled it down
    assert "'migration'" in c.reason  # and what pushed it up, by name
    hard = classify(user("Our worker crashes with this traceback, find the root cause:\n"
                         "Traceback (most recent call last):\n  File \"w.py\", line 3, in <module>\n    x()\nValueError: boom"))
    assert hard.level != "simple" and "for the strong tier: " in hard.reason


def test_score_is_the_model_probability_in_percent():
    c = classify(user("Why is the sky blue?"))
    assert c.score == round(100 * c.signals["p"]) and 0 <= c.score <= 100


def test_agent_turns_stay_on_the_default_model_unless_the_evidence_is_strong():
    tools = [{"name": "bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}]
    question = user("What does the -r flag of cp do?")
    alone = classify(question)
    assert alone.level == "simple"
    as_agent = classify(question, tools=tools)
    assert as_agent.signals["agent"] is True and "agent turn" in as_agent.reason
    assert as_agent.level == ("simple" if alone.signals["p"] < RoutingSettings().agent_strong_threshold else "moderate")
    never = classify(question, tools=tools, settings=RoutingSettings(agent_strong_threshold=0))
    assert never.level != "simple"
    loop = [
        {"role": "user", "content": "The CI tests fail but pass locally. Find out why and fix it."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "run", "input": {"cmd": "pytest"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1 failed"}]},
    ]
    c = classify(loop)
    assert c.signals["tool_loop"] is True and c.signals["agent"] is True
    assert c.level != "simple" and "scored on the task that started it" in c.reason


def test_short_continuation_keeps_the_earlier_task():
    messages = [
        {"role": "user", "content": "Debug why our payment webhook double-charges under concurrent retries."},
        {"role": "assistant", "content": "First I'll check how the handler locks the order row..."},
        {"role": "user", "content": "continue"},
    ]
    c = classify(messages)
    assert c.signals.get("continuation") is True and c.level != "simple"
    messages[-1] = {"role": "user", "content": "Thanks! Also, what's the capital of Peru?"}
    assert classify(messages).level == "simple"


def test_extraction_is_bounded_on_huge_input():
    huge = user("x = compute(y)\n" * 400_000 + "word " * 600_000 + "\nwhy does this crash?")  # ~9 MB
    f = extract(huge)
    assert len(f.terms) < 1_000 and f.context_tokens > 1_000_000
    assert classify(huge).signals["context_tokens_estimate"] > 1_000_000


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="messages must be a list"):
        classify("not a list")  # type: ignore[arg-type]


def test_empty_conversation_is_simple():
    assert classify([]).level == "simple"
    assert classify([{"role": "assistant", "content": "hi"}]).level == "simple"


def test_the_dial_trades_strong_share_for_cost():
    prompts = [r.get("prompt") for r in load("routing_prompts.jsonl") if r.get("prompt")]
    shares = []
    for threshold in (0.1, 0.33, 0.6):
        s = RoutingSettings(strong_threshold=threshold)
        shares.append(sum(classify(user(p), settings=s).level != "simple" for p in prompts) / len(prompts))
    assert shares[0] > shares[1] > shares[2]


# --------------------------------------------------------------------------- the model file


def test_the_packaged_model_says_how_and_on_what_it_was_fitted():
    data = json.loads(packaged_model_path().read_text("utf-8"))
    assert data["format"] == FORMAT
    about = data["about"]
    assert about["fitted_by"] == "python -m bench.fit_router"
    assert about["data"]["routellm"]["prompts"] == 7464 and about["data"]["ours"]["prompts"] >= 300
    assert about["hyperparameters"] == HYPER.__dict__  # the shipped file came from the fitting knobs in the repo
    assert about["cross_validation"]["random"]["z"] >= 2
    model = load_model()
    assert 500 < len(model.weights) < 20_000
    assert {"has_expert", "lead_light", "short_ask", "has_code"} <= set(model.weights)


def test_a_model_file_replaces_the_weights(tmp_path):
    path = tmp_path / "router.json"
    path.write_text(json.dumps(RouterModel(2.0, {}, {"note": "test"}).to_dict()))
    s = RoutingSettings(model_path=str(path))
    c = classify(user("What is the capital of France?"), settings=s)
    assert c.signals["p"] == pytest.approx(0.8808, abs=1e-4) and c.level != "simple"
    assert "for the strong tier" not in c.reason  # no feature has a weight
    loud = RouterModel(-1.0, {"w:capital": 4.0}).to_dict()
    path.write_text(json.dumps(loud))
    load_model.cache_clear()
    c = classify(user("What is the capital of France?"), settings=s)
    assert c.signals["p"] == pytest.approx(0.9526, abs=1e-4) and "'capital' +4.00" in c.reason


def test_a_bad_model_file_says_what_to_fix(tmp_path):
    path = tmp_path / "router.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a router model written by bench/fit_router.py"):
        classify(user("hi"), settings=RoutingSettings(model_path=str(path)))
    with pytest.raises(ValueError, match="router model file not found"):
        classify(user("hi"), settings=RoutingSettings(model_path=str(tmp_path / "missing.json")))


def test_the_fitter_learns_a_separating_word_and_is_deterministic():
    def example(label: int, word: str) -> Example:
        return Example("ours", "x", label, [("short_ask", 1.0), ("w:" + word, 1.0)])

    train = [example(1, "refactor") for _ in range(40)] + [example(0, "capital") for _ in range(40)]
    bias, weights = fit(train, HYPER)
    assert weights["w:refactor"] > 0 > weights["w:capital"]
    assert predict(bias, weights, example(1, "refactor")) > 0.5 > predict(bias, weights, example(0, "capital"))
    assert fit(train, HYPER) == (bias, weights)


# --------------------------------------------------------------------------- choose


def test_by_default_nothing_is_dearer_than_the_default_model():
    s = RoutingSettings()
    for p in (0.0, 0.2, 0.5, 0.8, 0.99):
        model = choose_model(fixed(p), s).model
        assert not is_dearer(model, s.default_model, PRICES)
    assert [choose_model(fixed(p), s).model for p in (0.05, 0.5, 0.7, 0.95)] == [HAIKU, SONNET, SONNET, SONNET]
    assert model_ladder(s) == [HAIKU, SONNET]
    # a cheaper default model: every level stays on it, the overload chain never climbs
    cheap = Config(default_model=HAIKU).routing
    assert {choose_model(fixed(p), cheap).model for p in (0.05, 0.5, 0.95)} == {HAIKU}
    assert fallback_models(HAIKU, cheap, PRICES) == []


def test_the_upgrade_tier_is_an_explicit_opt_in():
    on = RoutingSettings(allow_upgrade=True)
    expert = choose_model(fixed(0.95), on)
    assert (expert.level, expert.model) == ("expert", OPUS)
    assert choose_model(fixed(0.7), on).model == SONNET
    assert model_ladder(on) == [HAIKU, SONNET, OPUS]
    # naming a dearer model in the tier map is not enough on its own
    mapped = RoutingSettings(tier_models={"simple": HAIKU, "moderate": None, "complex": None, "expert": OPUS})
    capped = choose_model(fixed(0.95), mapped)
    assert capped.model == SONNET and "routing.allow_upgrade is off" in capped.reason
    both = RoutingSettings(allow_upgrade=True, upgrade_model=None,
                           tier_models={"simple": HAIKU, "moderate": None, "complex": OPUS, "expert": OPUS})
    assert choose_model(fixed(0.7), both).model == OPUS


def test_levels_map_to_configured_models():
    custom = RoutingSettings(strong_threshold=0.2, complex_threshold=0.5, expert_threshold=0.8, tier_models={
        "simple": "a", "moderate": "b", "complex": "c", "expert": "d"})
    assert [fixed(p, settings=custom).level for p in (0.1, 0.3, 0.6, 0.9)] == list(LEVELS)
    # unpriced models: cannot be shown to cost no more than the default, so only with allow_upgrade
    assert [choose_model(fixed(p, settings=custom), custom).model for p in (0.1, 0.3, 0.6, 0.9)] == [SONNET] * 4
    open_ = custom.model_copy(update={"allow_upgrade": True, "upgrade_model": None})
    assert [choose_model(fixed(p, settings=open_), open_).model for p in (0.1, 0.3, 0.6, 0.9)] == ["a", "b", "c", "d"]


def test_pinned_model_wins():
    d = choose_model(fixed(0.05), RoutingSettings(), pinned_model=OPUS, session=SessionRoute("simple", HAIKU),
                     budget_used_share=0.99)
    assert (d.model, d.pinned, d.sticky, d.downgraded) == (OPUS, True, False, False)


def test_sticky_session_keeps_its_model_unless_the_level_rises():
    s = RoutingSettings()
    session = SessionRoute("complex", SONNET)
    stay = choose_model(fixed(0.05), s, session=session)
    assert (stay.model, stay.level, stay.sticky) == (SONNET, "complex", True)
    rise = choose_model(fixed(0.95), s, session=SessionRoute("simple", HAIKU))
    assert (rise.model, rise.level, rise.sticky) == (SONNET, "expert", False) and "level rose" in rise.reason
    off = choose_model(fixed(0.05), RoutingSettings(sticky_sessions=False), session=session)
    assert off.model == HAIKU


def test_a_session_on_a_dearer_model_comes_back_to_the_default():
    # the session started while allow_upgrade was on; it is off now
    d = choose_model(fixed(0.5), RoutingSettings(), session=SessionRoute("expert", OPUS))
    assert d.model == SONNET and "costs more than the default model" in d.reason


def test_budget_downgrade_one_tier_with_expert_floor():
    s = RoutingSettings(budget_downgrade_share=0.8)
    assert choose_model(fixed(0.7), s, budget_used_share=0.5).model == SONNET
    complex_ = choose_model(fixed(0.7), s, budget_used_share=0.85)
    assert (complex_.model, complex_.downgraded) == (HAIKU, True)
    expert = choose_model(fixed(0.95), s, budget_used_share=0.85)  # the floor is the default model
    assert (expert.model, expert.downgraded) == (SONNET, False)
    upgraded = RoutingSettings(allow_upgrade=True)
    step = choose_model(fixed(0.95), upgraded, budget_used_share=0.85)
    assert (step.model, step.downgraded) == (SONNET, True)
    back = choose_model(fixed(0.7), s, session=SessionRoute("complex", HAIKU), budget_used_share=0.3)
    assert (back.model, back.sticky) == (SONNET, False) and "budget pressure over" in back.reason
    still = choose_model(fixed(0.7), s, session=SessionRoute("complex", HAIKU), budget_used_share=0.9)
    assert (still.model, still.downgraded) == (HAIKU, False)
    assert choose_model(fixed(0.05), s, budget_used_share=0.95).model == HAIKU
    assert choose_model(fixed(0.7), RoutingSettings(budget_downgrade_share=None), budget_used_share=1.0).model == SONNET


def test_disabled_routing_uses_default_model():
    d = choose_model(fixed(0.05), RoutingSettings(enabled=False))
    assert d.model == SONNET and "routing disabled" in d.reason


def test_fallback_chain():
    s = RoutingSettings()
    assert fallback_models(OPUS, s) == [SONNET]
    assert fallback_models(SONNET, s) == [HAIKU]
    assert fallback_models(HAIKU, s) == [SONNET]  # the default model itself is never "above" it
    assert fallback_models("claude-opus-5-5-20261101", s) == [SONNET]
    assert fallback_models("some-other-model", s) == []
    custom = RoutingSettings(overload_fallback_chain={SONNET: [OPUS, HAIKU, HAIKU]})
    assert fallback_models(SONNET, custom) == [HAIKU]
    assert fallback_models(SONNET, custom.model_copy(update={"allow_upgrade": True})) == [OPUS, HAIKU]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"complex_threshold": 0.9, "expert_threshold": 0.8}, "thresholds must rise"),
        ({"strong_threshold": 0}, "greater than 0"),
        ({"tier_models": {"simple": HAIKU}}, "tier_models needs exactly the keys"),
        ({"overload_fallback_chain": {OPUS: [OPUS]}}, "lists itself"),
        ({"weights": {"agentic": 10}}, "routing.weights no longer exists: the router's weights are fitted"),
        ({"moderate_threshold": 25}, "routing.strong_threshold"),
        ({"nonsense": 1}, "Extra inputs"),
    ],
)
def test_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RoutingSettings(**kwargs)


# --------------------------------------------------------------------------- our labelled prompts


def _rates(rows: list[dict]) -> tuple[float, float]:
    s = RoutingSettings()
    hard = [r for r in rows if r["level"] in ("complex", "expert")]
    simple = [r for r in rows if r["level"] == "simple"]

    def cheap(r) -> bool:
        msgs = r.get("messages") or user(r["prompt"])
        return choose_model(classify(msgs, r.get("system"), r.get("tools")), s).model == HAIKU

    return sum(map(cheap, hard)) / len(hard), sum(not cheap(r) for r in simple) / len(simple)


def test_prompts_the_router_never_fitted_meet_the_targets():
    rows = load("routing_holdout.jsonl")
    assert len(rows) >= 50
    hard_to_cheap, simple_to_strong = _rates(rows)
    assert hard_to_cheap <= 0.05 and simple_to_strong <= 0.10


def test_the_fitted_prompts_meet_the_targets_in_sample():
    # in-sample (these prompts are part of the fit): the cross-validated
    # figures are in `python -m bench.routing`
    rows = load("routing_prompts.jsonl")
    hard_to_cheap, simple_to_strong = _rates(rows)
    assert hard_to_cheap <= 0.02 and simple_to_strong <= 0.06
