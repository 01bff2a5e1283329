"""Amounts as people read them: one rule everywhere, no float noise."""

from __future__ import annotations

import json

import pytest

from mcp_tars import reports
from mcp_tars.money import clean_floats, format_usd
from mcp_tars.pricing import Usage
from mcp_tars.store import ledger, open_store

from test_reports import NOW, make_row


@pytest.mark.parametrize("value, text", [
    (0.0005187000000000001, "$0.000519"), (0.000037, "$0.000037"), (0.5187, "$0.519"), (0.0123, "$0.0123"),
    (0.05, "$0.05"), (7.81, "$7.81"), (1234.567, "$1,234.57"), (0.0, "$0.00"), (-0.0012, "-$0.0012"),
    (1e-9, "$0.000000001"), (None, "n/a"),
])
def test_format_usd(value, text):
    assert format_usd(value) == text


def test_clean_floats_removes_noise_and_keeps_the_rest():
    data = {"cost": 0.0005187000000000001, "parts": [0.1 + 0.2, 3, None, "x"], "tiny": 1.234567890123456e-9}
    assert clean_floats(data) == {"cost": 0.0005187, "parts": [0.3, 3, None, "x"], "tiny": 1.23456789012e-9}


def test_small_amounts_are_not_rounded_away_in_reports(tmp_path):
    """A $0.000037 call read "$0.0000" (and an average of "$0.0000 per call")."""
    store = open_store(tmp_path / "m.db")
    ledger.insert_many(store, [make_row(i, ts=NOW - 60 * i, model="claude-haiku-5-5",
                                        usage=Usage(input_tokens=14, output_tokens=40 + i)) for i in range(3)])
    data = reports.build_report(store, period="all", now=NOW)
    assert data["totals"]["avg_cost_per_call"] < 0.0001
    md = reports.render_markdown(data)
    assert "$0.0000 " not in md and "$0.0000*" not in md
    assert format_usd(data["totals"]["avg_cost_per_call"]) in md
    assert "0000000000" not in json.dumps(clean_floats(data))
