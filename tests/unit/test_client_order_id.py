"""Deterministic client order ids: stable, venue-safe, distinct per decision."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain.orders import client_order_id

BINANCE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
BAR = datetime(2024, 6, 7, 8, 0, tzinfo=UTC)


def test_the_same_decision_gives_the_same_id() -> None:
    first = client_order_id("live-20240607", "ETHUSDT", BAR, "entry")
    assert first == client_order_id("live-20240607", "ETHUSDT", BAR, "entry")
    assert first.startswith("sc-") and len(first) == 35


def test_the_same_instant_in_another_zone_gives_the_same_id() -> None:
    warsaw = BAR.astimezone(timezone(timedelta(hours=2)))
    assert client_order_id("r", "ETHUSDT", warsaw, "entry") == client_order_id(
        "r", "ETHUSDT", BAR, "entry"
    )


def test_fields_cannot_be_shifted_into_each_other() -> None:
    assert client_order_id("r|E", "THUSDT", BAR, "x") != client_order_id("r", "E|THUSDT", BAR, "x")


def test_naive_times_and_empty_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        client_order_id("r", "ETHUSDT", datetime(2024, 6, 7), "entry")
    with pytest.raises(ValueError, match="intent"):
        client_order_id("r", "ETHUSDT", BAR, "")


@given(
    run_id=st.text(min_size=1),
    symbol=st.text(min_size=1),
    minutes=st.integers(min_value=0, max_value=10**7),
    intents=st.lists(st.text(min_size=1), min_size=2, max_size=2, unique=True),
)
def test_ids_are_venue_safe_and_differ_per_intent(
    run_id: str, symbol: str, minutes: int, intents: list[str]
) -> None:
    bar = BAR + timedelta(minutes=minutes)
    ids = [client_order_id(run_id, symbol, bar, intent) for intent in intents]
    assert all(BINANCE_CLIENT_ID.match(value) for value in ids)
    assert ids[0] != ids[1]
