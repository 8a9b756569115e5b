"""The canonical JSON form: hand-checked bytes, refusals, and agreement with its definition."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.reports.canonical import canonical_json

# JSON values whose strings UTF-8 can encode (no lone surrogates).
json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4)
    ),
    max_leaves=20,
)


def test_object_keys_are_sorted_and_whitespace_is_dropped() -> None:
    assert canonical_json({"b": 1, "a": [True, False, None], "c": {}}) == (
        b'{"a":[true,false,null],"b":1,"c":{}}'
    )


def test_keys_sort_by_unicode_code_point() -> None:
    document = {"é": 1, "z": 2, "Z": 3, "aa": 4, "a": 5, "\U0001f600": 6, "\uffff": 7}
    assert canonical_json(document) == (
        '{"Z":3,"a":5,"aa":4,"z":2,"é":1,"\uffff":7,"\U0001f600":6}'.encode()
    )


def test_floats_use_the_shortest_round_trip_repr() -> None:
    values = [0.1, 1e-05, 1e16, -0.0, 2.0, 123456.789, 5e-324, 1.7976931348623157e308]
    assert canonical_json(values) == (
        b"[0.1,1e-05,1e+16,-0.0,2.0,123456.789,5e-324,1.7976931348623157e+308]"
    )


def test_integers_stay_integers_and_bools_stay_bools() -> None:
    assert canonical_json([1, -7, 10**20, True, False, 0]) == (
        b"[1,-7,100000000000000000000,true,false,0]"
    )


def test_int_and_float_subclasses_are_written_as_plain_numbers() -> None:
    class Side(IntEnum):
        BUY = 1

    class Price(float):
        def __repr__(self) -> str:
            return "Price(...)"

    assert canonical_json([Side.BUY, Price(2.5)]) == b"[1,2.5]"


def test_strings_escape_quotes_backslashes_and_control_characters_only() -> None:
    text = 'é "q" \\ \n\t\r\b\f \x01 \x1f \x7f \u2028 ₿'
    expected = '"é \\"q\\" \\\\ \\n\\t\\r\\b\\f \\u0001 \\u001f \x7f \u2028 ₿"'
    assert canonical_json(text) == expected.encode("utf-8")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_naming_the_path(value: float) -> None:
    with pytest.raises(ValueError, match=r"NaN and infinity: \$\.rows\[1\]\.price"):
        canonical_json({"rows": [{"price": 1.0}, {"price": value}]})


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (Decimal("1.5"), "Decimal"),
        (datetime(2024, 1, 1, tzinfo=UTC), "datetime"),
        (b"raw", "bytes"),
    ],
)
def test_non_json_types_are_refused_naming_the_path(value: Any, type_name: str) -> None:
    with pytest.raises(TypeError, match=rf"\$\.body\[\"odd key\"\]\[0\] is a {type_name}"):
        canonical_json({"body": {"odd key": [value]}})


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError, match=r"keys must be str: \$\.levels has a int key 1"):
        canonical_json({"levels": {1: "one"}})


def test_tuples_are_arrays() -> None:
    assert canonical_json({"pair": ("ETHUSDT", 3)}) == b'{"pair":["ETHUSDT",3]}'


def test_circular_references_are_refused() -> None:
    rows: list[Any] = []
    rows.append(rows)
    with pytest.raises(ValueError, match=r"circular references: \$\[0\]"):
        canonical_json(rows)


def test_shared_but_acyclic_values_are_accepted() -> None:
    leg = {"qty": 1}
    assert canonical_json([leg, leg]) == b'[{"qty":1},{"qty":1}]'


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ValueError, match="lone surrogates"):
        canonical_json({"note": "\ud800"})


@given(json_values)
def test_matches_the_stdlib_spelling_of_the_same_definition(value: Any) -> None:
    expected = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    assert canonical_json(value) == expected


@given(json_values)
def test_canonical_bytes_survive_a_parse_round_trip(value: Any) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded
