"""Unit tests of the fact extractor (mcp_tars.pruning.facts, values, question): what counts as a
fact, what is code or routine output, and how the question being answered
now orders the facts."""

from __future__ import annotations

from mcp_tars.pruning.facts import Fragment, fragment_units, select_units
from mcp_tars.pruning.question import Question, stems_of
from mcp_tars.pruning.values import values_in


def units_of(text, label="user", weight=4.0, prose=True):
    return fragment_units(Fragment(text, label, weight, 0, prose)).units


def unit_with(units, needle):
    (unit,) = [u for u in units if needle in u.text]
    return unit


def density(unit):
    return (unit.base + sum(w for _, w in unit.values)) / unit.cost


def test_a_statement_in_prose_is_a_fact_and_lines_of_pasted_code_are_not():
    code = "\n".join(f"    value = session.get('key_{i}', {i * 7})\n    if value > {i}:\n        log.warning('x %s', value)"
                     for i in range(20))
    units = units_of(f"My name is Dana. Our database is PostgreSQL 16 on port 5433.\n```python\ndef f(session):\n{code}\n```")
    statement = unit_with(units, "port 5433")
    assert statement.strong
    assert "Dana" in dict(unit_with(units, "My name is Dana").values)
    code_units = [u for u in units if "value" in u.text]  # routine lines are not even scored; alerts are
    assert all(not u.strong for u in code_units)
    # a line of a function body weighs far less per character than the statement
    assert all(density(u) < density(statement) / 3 for u in code_units)


def test_unfenced_pasted_code_is_found_too():
    code = "\n".join(f"def load_{i}(conn):\n    rows = conn.execute('select {i}').fetchall()\n    return [r for r in rows]"
                     for i in range(6))
    units = units_of("We run the export on port 41234.\n" + code)
    assert unit_with(units, "port 41234").strong
    assert not any(u.strong for u in units if "execute" in u.text)


def test_settings_are_facts_in_configs_code_json_and_logs():
    config = units_of("workers: 4\nadmin_api_port: 48211\nlog_level: info", "read_file result", 1.0, False)
    assert unit_with(config, "48211").strong
    code = units_of("import os\n\nMESSAGE_BROKER_PORT = 22854\n\ndef f():\n    return os.getpid()\n", "read_file result", 1.0, False)
    assert unit_with(code, "22854").strong
    minified = '{"status": "ok", "data": {"id": 3346, "maintenance_window_time": "04:15 UTC", "updated_by": "automation"}}'
    json_units = units_of(minified, "http_get result", 1.0, False)
    assert unit_with(json_units, "04:15 UTC").text == '"maintenance_window_time": "04:15 UTC"'  # one unit per pair
    log = "\n".join(f"2026-12-02T06:00:{i % 60:02d}.002Z INFO [api] GET /v1/items status=200 dur={i}ms" for i in range(60))
    log += "\n2026-12-02T06:01:00.002Z INFO [api] startup: ci_runner_host=alpha8.eu-west-3.example-ops.net"
    line = unit_with(units_of(log, "bash result", 1.0, False), "ci_runner_host")
    assert line.strong and not line.text.startswith("2026")  # the log stamp is not the fact


def test_a_key_repeated_in_every_record_is_data_not_a_setting():
    records = "\n".join(f'  "name": "item-{i}",' for i in range(30))
    units = units_of("[\n" + records + "\n]", "http_get result", 1.0, False)
    assert units and not any(u.strong for u in units)


def test_values_of_every_kind_are_recognised():
    text = ("Cut-over is on March 14, 2027 at 17:30 UTC; the window is 14 Mar. Send notes to ops-x@acme.io, "
            "the runbook is https://wiki.acme.io/p/k7, the host is db-07.acme.internal (10.20.30.40), "
            "pin v2.14.3, keep it under 512 MiB, costs $4,200, ticket OPS-4821, commit 4ac738065b.")
    values = values_in(text)
    for expected in ("March 14, 2027", "17:30 UTC", "14 Mar", "ops-x@acme.io", "https://wiki.acme.io/p/k7",
                     "db-07.acme.internal", "10.20.30.40", "v2.14.3", "512 MiB", "$4,200", "OPS-4821", "4ac738065b"):
        assert expected in values, expected


def test_stems_split_identifiers_and_fold_synonyms():
    assert {"admin", "api", "port"} <= stems_of("admin_api_port")
    assert stems_of("Who signs off?") & stems_of("the approver")  # sign off ~ approve
    assert stems_of("which DB host") & stems_of("the database server") == stems_of("database server")


def test_the_question_finds_its_answer_among_similar_facts():
    question = Question("Which port does the message broker listen on? And what's my name?")
    units = (units_of("The metrics exporter listens on port 31337.") + units_of("The message broker runs on port 22854.")
             + units_of("I'm Dana, I run the ops team."))
    question.fit_idf(units)
    broker, exporter = unit_with(units, "22854"), unit_with(units, "31337")
    assert question.relevance(broker) > question.relevance(exporter)
    assert question.relevance(unit_with(units, "Dana")) == 1.0  # "my name" and a self-introduction
    assert not question.relevance(unit_with(units, "31337")) >= 0.6


def test_with_little_room_the_facts_asked_about_come_first():
    units = []
    for i in range(40):  # denser in values than the answer, but not what was asked
        units += units_of(f"svc-{i:02d}.acme.internal 10.0.{i}.7 v2.{i}.3")
    units += units_of("The message broker runs on port 22854.")
    question = Question("Which port does the message broker use?")
    room = 70  # characters: one fact
    chosen = select_units(units, room, set(), question)
    assert [u.text for u in chosen] == ["The message broker runs on port 22854."]
    without = select_units(units, room, set())
    assert "22854" not in " ".join(u.text for u in without)  # without the question it would not have won


def test_past_the_target_only_facts_are_kept_and_a_request_to_continue_asks_nothing():
    units = units_of("Step 12: please tidy up module 12 and report back.") + units_of("The admin API listens on port 48211.")
    asking = Question("Which port does the admin API use?")
    chosen = select_units(units, 10_000, set(), asking, strong_only=True)
    assert [u.text for u in chosen] == ["The admin API listens on port 48211."]
    assert select_units(units, 10_000, set(), Question("Continue."), strong_only=True) == []


def test_values_already_in_the_kept_conversation_take_no_room():
    units = (units_of("The admin API listens on port 48211.", "assistant", 2.5)
             + units_of("The backup lives in /var/backups/x.", "assistant", 2.5))
    chosen = select_units(units, 10_000, values_in("The admin API listens on port 48211."))
    assert [u.text for u in chosen] == ["The backup lives in /var/backups/x."]
