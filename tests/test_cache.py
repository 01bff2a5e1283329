"""Response cache: keys, analysis, guards, policy and the SQLite-backed cache."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from mcp_tars.cache import (
    CacheSettings,
    ResponseCache,
    analyse,
    canonical_request,
    decide,
    deictic,
    detect_query_type,
    guard_veto,
    packaged_model,
    request_key,
    shared_embedder,
    split_for_semantic,
)
from mcp_tars.cache.analysis import ANALYSER_STAMP, analysis_json, stored_analysis
from mcp_tars.store import open_store

TENANT = "tenant-hash-1"
ANSWER = {
    "content": [{"type": "text", "text": "Machine learning is ..."}],
    "model": "claude-haiku-4-5",
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "output_tokens": 300},
}
EMB = shared_embedder()


def req(text: str = "What is machine learning?", **extra) -> dict:
    return {"model": "tier:simple", "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **extra}


def verdict(a: str, b: str, threshold: float | None = None, *, has_history: bool = False):
    return decide(analyse(a), analyse(b), EMB.embed(a), EMB.embed(b), EMB, packaged_model(),
                  threshold=threshold, has_history=has_history)


def matches(a: str, b: str, threshold: float | None = None) -> bool:
    return verdict(a, b, threshold).matched


def veto(a: str, b: str, *, has_history: bool = False) -> str | None:
    return guard_veto(analyse(a), analyse(b), has_history=has_history, embedder=EMB)


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


def test_key_ignores_markers_on_tools_and_tool_results_but_not_a_field_of_that_name_in_data():
    def request(marked: bool, schema_field: str = "path") -> dict:
        marker = {"cache_control": {"type": "ephemeral"}} if marked else {}
        return {
            "model": "claude-sonnet-4-5", "max_tokens": 100,
            "tools": [{"name": "read", "input_schema": {"type": "object", "properties": {schema_field: {"type": "string"}}},
                       **marker}],
            "messages": [
                {"role": "user", "content": "read it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [{"type": "text", "text": "file a", **marker}]}]},
            ],
        }
    assert request_key(request(False), TENANT) == request_key(request(True), TENANT)
    for marked in (False, True):  # a schema property named cache_control is part of the question
        assert request_key(request(marked, "cache_control"), TENANT) != request_key(request(marked), TENANT)


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
    ("convert 5 km to miles", "convert 5 miles to km", "order"),
    ("convert 5 km to miles", "convert 5 km to feet", "unit"),
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
    ("What is a cat?", "What is a dog?", "content"),
    ("When I run, my knee hurts", "When my knee hurts, I run", "order"),
    ("What does this circuit do?", "What does a circuit do?", "deixis"),
    ("Explain this function", "What does a function do?", "deixis"),
    ("What about the second one?", "What about the first one?", "number"),
    ("Is it possible to not have an illness and be insane?", "Is it possible to have an illness and not be insane?", "order"),
])
def test_guards_veto_even_at_threshold_zero(a, b, reason):
    assert veto(a, b) == reason
    assert veto(b, a) == reason
    assert not verdict(a, b, 0.0).matched


@pytest.mark.parametrize("a, b", [
    ("How do I read a file line by line in Python?", "Python read file line by line"),  # "line" twice, one term moved
    ("the question given below", "the given below question"),
])
def test_one_term_moving_is_no_order_veto(a, b):
    assert veto(a, b) != "order" and veto(b, a) != "order"


@pytest.mark.parametrize("a, b", [
    ("Explain this function", "What does this function do?"),
    ("What about the second one?", "And the second one?"),
    ("Fix it", "Can you fix it?"),
])
def test_questions_pointing_outside_the_request_never_match_without_history(a, b):
    assert deictic(a) and deictic(b)
    assert veto(a, b) == "deixis" and not verdict(a, b, 0.0).matched
    assert veto(a, b, has_history=True) != "deixis"  # the same earlier turns: "this" is the same thing


@pytest.mark.parametrize("a, b", [
    ("How do I learn Python?", "How do I learn Python for free?"),
    ("What does a CPU do?", "What is a CPU?"),
    ("How do I view the logs of a Kubernetes pod?", "How do I delete a Kubernetes pod?"),
    ("What is the best laptop?", "What is the worst laptop?"),
])
def test_different_questions_do_not_match(a, b):
    assert not matches(a, b) and not matches(b, a)


@pytest.mark.parametrize("a, b", [
    ("What is machine learning?", "Tell me about machine learning"),
    ("What is machine learning?", "Can you explain what machine learning is?"),
    ("how do I reverse a list in python", "How to reverse a list in Python?"),
    ("How do you boil an egg?", "How do I boil an egg?"),
])
def test_paraphrases_match(a, b):
    assert matches(a, b) and matches(b, a)


def test_threshold_direction_higher_is_stricter():
    a, b = "What are good books on machine learning?", "Which books about machine learning are good?"
    v = verdict(a, b)
    assert v.reason in (None, "threshold") and 0.0 < v.similarity < 1.0  # decided by the model, not a rule
    assert verdict(a, b, threshold=v.similarity).matched
    assert verdict(a, b, threshold=min(1.0, v.similarity + 1e-6)).reason == "threshold"
    assert verdict("What is machine learning?", "Tell me about machine learning", threshold=1.0).matched  # same question


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_decision_is_total_and_symmetric_in_its_vetoes(a, b):
    ab, ba = verdict(a, b), verdict(b, a)
    assert (ab.reason is None or ab.reason == "threshold") == (ba.reason is None or ba.reason == "threshold")
    assert 0.0 <= ab.similarity <= 1.0


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


@pytest.mark.parametrize("text", [
    "What is machine learning?", "How do I read a file line by line in Python?", "convert 5 km to miles",
    "Why didn't `git push --force` work when I was on main?", 'Translate "bonjour" to English', "什么是机器学习？",
    "When I run, my knee hurts", "Is Python faster than Go?", "", "what is 2+2",
])
def test_a_stored_analysis_is_the_analysis(text):
    stored = analysis_json(analyse(text))
    assert stored_analysis(text, stored) == analyse(text)
    assert stored_analysis(text, stored.replace(ANALYSER_STAMP, "another-version")) == analyse(text)
    assert stored_analysis(text, "{not json") == analyse(text) == stored_analysis(text, None)


def test_lookups_read_the_candidates_stored_analysis(cache, store):
    put(cache, req())
    assert cache.lookup(req("explain machine learning"), TENANT).kind == "semantic"
    # An analysis of this analyser with another number in it: the number guard must now veto.
    forged = analysis_json(analyse("What is machine learning 2?"))
    with store.write() as conn:
        conn.execute("UPDATE response_cache SET query_analysis = ?", (forged,))
    assert cache.lookup(req("explain machine learning"), TENANT) is None
    with store.write() as conn:  # an entry from before the column: analysed on use
        conn.execute("UPDATE response_cache SET query_analysis = NULL")
    assert cache.lookup(req("explain machine learning"), TENANT).kind == "semantic"


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
                ("SELECT id, query_vector FROM response_cache WHERE context_key = ? AND id > ? "
                 "AND query_vector IS NOT NULL ORDER BY id", ("c", 0)),
                ("SELECT id FROM response_cache WHERE id IN (?, ?) AND expires_at > ?", (1, 2, 0)),
            ]
        }
    for sql, plan in plans.items():
        assert "SCAN" not in plan, (sql, plan)


def test_the_decision_ships_with_the_record_of_its_fit():
    model = packaged_model()
    assert 0.5 < model.threshold < 1.0 and model.embedding_model == EMB.name
    record = model.record
    assert record["script"] == "python -m bench.cache_fit" and record["data"]["qqp_dev_pairs"] == 20300
    assert record["cross_validated_at_threshold"]["qqp_false_hit_rate"] <= record["target_false_hit_rate"]
