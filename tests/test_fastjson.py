"""fastjson: orjson's speed with the standard library's answers."""

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_tars import fastjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_same_text_as_the_standard_library_without_floats(value):
    for sort_keys in (False, True):
        expected = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False).encode()
        assert fastjson.dumps(value, sort_keys=sort_keys) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_keep_their_value(number):
    assert json.loads(fastjson.dumps({"x": number}))["x"] == number


def test_what_orjson_refuses_still_serialises_exactly():
    assert fastjson.dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'
    assert fastjson.dumps({1: "a"}, sort_keys=True) == b'{"1":"a"}'
    lone = fastjson.loads('{"t": "\\ud83d"}')  # a lone surrogate, as json.loads reads it
    assert json.loads(fastjson.dumps(lone)) == lone


def test_default_sees_datetimes_and_decimals_as_json_dumps_does():
    when = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    row = {"ts": when, "cost": Decimal("0.5")}
    assert fastjson.dumps(row, default=str) == json.dumps(row, default=str, separators=(",", ":")).encode()


@pytest.mark.parametrize("text", ['{"t": NaN}', '{"t": Infinity}', '{"t": -Infinity}', '{"t": 1e999}'])
def test_loads_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_loads_keeps_huge_integers_exact():
    assert fastjson.loads(b'{"id": 123456789012345678901234567890, "t": 0.7}') == {
        "id": 123456789012345678901234567890, "t": 0.7}
