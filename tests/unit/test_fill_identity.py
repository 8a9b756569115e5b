"""Two records of one trade are the same fill when every value is equal as stored: decimal
text as numbers, the currency of a zero fee ignored, the rest as text (domain.fill_identity)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain.fill_identity import TRADE_VALUE_FIELDS, differing_fields

STORED: dict[str, str | None] = {
    "symbol": "ETHUSDT",
    "side": "buy",
    "qty": "0.10",
    "price": "2000",
    "ts": "2025-01-01T00:00:00.000000Z",
    "fee": "0.2",
    "fee_currency": "USDT",
    "liquidity": "taker",
    "exchange_order_id": "o-1",
}


def test_a_record_is_the_same_fill_as_itself() -> None:
    assert differing_fields(STORED, dict(STORED)) == ()


def test_decimal_text_is_compared_as_a_number() -> None:
    same = {**STORED, "qty": "0.1", "price": "2E+3", "fee": "0.20000"}
    assert differing_fields(same, STORED) == ()
    assert differing_fields({**STORED, "qty": "0.11"}, STORED) == ("qty",)


def test_the_currency_of_a_zero_fee_is_not_compared() -> None:
    zero = {**STORED, "fee": "0"}
    assert differing_fields({**zero, "fee_currency": None}, {**zero, "fee": "-0.000"}) == ()
    assert differing_fields({**STORED, "fee_currency": "ETH"}, STORED) == ("fee_currency",)


def test_a_missing_value_differs_from_a_given_one_and_fields_come_in_order() -> None:
    other = {**STORED, "exchange_order_id": None, "liquidity": None, "side": "sell"}
    assert differing_fields(other, STORED) == ("side", "liquidity", "exchange_order_id")
    assert set(TRADE_VALUE_FIELDS) == set(STORED)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8), st.integers(0, 6))
def test_trailing_zeros_and_exponents_never_make_a_conflict(value: Decimal, zeros: int) -> None:
    padded = f"{value:f}" + ("" if "." in f"{value:f}" else ".") + "0" * zeros
    scientific = f"{value:E}"
    assert differing_fields({**STORED, "qty": padded}, {**STORED, "qty": scientific}) == ()
