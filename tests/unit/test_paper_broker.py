"""The paper broker: fills at the next open with slippage, fees, stops, limits, funding."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from stagectl.domain.types import Order
from stagectl.exchange.errors import OrderRejected
from stagectl.exchange.paper import Bar, PaperBroker, Record
from tests.orders import new_order

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class MemoryStore:
    """A PaperStore in dicts (the state database version is tested in integration)."""

    def __init__(self) -> None:
        self.book: dict[str, Any] | None = None
        self.records: dict[tuple[str, str], tuple[str, datetime, dict[str, Any]]] = {}

    def load_book(self) -> dict[str, Any] | None:
        return None if self.book is None else dict(self.book)

    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        found = self.records.get((kind, record_id))
        return None if found is None else dict(found[2])

    def records_since(
        self, kind: str, since: datetime, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        rows = [
            (ts, rid, body)
            for (k, rid), (sym, ts, body) in self.records.items()
            if k == kind and ts >= since and (symbol is None or sym == symbol)
        ]
        return [dict(body) for _, _, body in sorted(rows, key=lambda r: (r[0], r[1]))]

    def commit(self, book: dict[str, Any], records: Iterable[Record], now: datetime) -> None:
        import json

        self.book = json.loads(json.dumps(book))
        for kind, rid, symbol, ts, body in records:
            self.records[(kind, rid)] = (symbol, ts, json.loads(json.dumps(body)))


def broker(store: MemoryStore | None = None) -> PaperBroker:
    return PaperBroker(
        store or MemoryStore(),
        initial_balance=D(10_000),
        taker_fee_bps=D(5),
        maker_fee_bps=D(2),
        slippage_bps=D(3),
        start=T0,
    )


def bar(k: int, o: str, h: str, low: str, c: str) -> Bar:
    ts = T0 + k * HOUR
    return Bar(ts, ts + HOUR, D(o), D(h), D(low), D(c))


def market(cid: str, side: str, qty: str, **kw: Any) -> Order:
    return new_order("ETHUSDT", side, "market", D(qty), cid, **kw)


def test_market_orders_fill_at_the_next_open_with_adverse_slippage_and_taker_fee() -> None:
    paper = broker()
    ack = paper.place(market("sc-a", "buy", "2"))
    assert (ack.status, ack.filled_qty) == ("open", D(0))
    (fill,) = paper.process_bar("ETHUSDT", bar(0, "100", "101", "99", "100.5"))
    # 100 * (1 + 3 bps) = 100.03; fee 2 * 100.03 * 5 bps = 0.10003
    assert (fill.price, fill.qty, fill.fee, fill.liquidity == "maker") == (
        D("100.03"),
        D(2),
        D("0.10003"),
        False,
    )
    assert fill.trade_id == "sc-a-1"
    paper.place(market("sc-b", "sell", "2"))
    (exit_fill,) = paper.process_bar("ETHUSDT", bar(1, "110", "111", "109", "110"))
    # 110 * (1 - 3 bps) = 109.967; realized 2 * (109.967 - 100.03) = 19.874; fee 0.109967
    assert exit_fill.price == D("109.967")
    assert paper.cash == D("10000") - D("0.10003") + D("19.874") - D("0.109967")
    assert paper.positions() == []
    assert paper.fetch_order("ETHUSDT", client_order_id="sc-a").status == "filled"  # type: ignore[union-attr]


def test_duplicate_client_order_id_is_rejected() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "1"))
    with pytest.raises(OrderRejected, match="duplicate"):
        paper.place(market("sc-a", "buy", "1"))


def test_reduce_only_that_would_increase_is_rejected_and_a_large_one_is_cut() -> None:
    paper = broker()
    with pytest.raises(OrderRejected, match="reduce-only"):
        paper.place(market("sc-r", "sell", "1", reduce_only=True))
    paper.place(market("sc-a", "buy", "1"))
    paper.process_bar("ETHUSDT", bar(0, "100", "100", "100", "100"))
    paper.place(market("sc-b", "sell", "5", reduce_only=True))
    (fill,) = paper.process_bar("ETHUSDT", bar(1, "100", "100", "100", "100"))
    assert fill.qty == D(1)
    assert paper.position_qty("ETHUSDT") == 0


def test_resting_limit_fills_as_maker_at_its_price_and_ioc_expires() -> None:
    paper = broker()
    paper.place(new_order("ETHUSDT", "buy", "limit", D(1), "sc-l", price=D(95)))
    paper.place(
        new_order("ETHUSDT", "buy", "limit", D(1), "sc-i", price=D(95), time_in_force="IOC")
    )
    assert paper.process_bar("ETHUSDT", bar(0, "100", "101", "96", "100")) == []
    assert paper.fetch_order("ETHUSDT", client_order_id="sc-i").status == "expired"  # type: ignore[union-attr]
    (fill,) = paper.process_bar("ETHUSDT", bar(1, "99", "100", "94", "97"))
    # fee 1 * 95 * 2 bps = 0.019
    assert (fill.price, fill.liquidity == "maker", fill.fee) == (D(95), True, D("0.019"))


def test_stop_limit_triggers_when_a_bar_trades_through_the_stop() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "1"))
    paper.process_bar("ETHUSDT", bar(0, "100", "100", "100", "100"))
    stop = new_order(
        "ETHUSDT",
        "sell",
        "stop_limit",
        D(1),
        "sc-s",
        D("97.902"),
        reduce_only=True,
        stop_price=D(98),
    )
    paper.place(stop)
    assert paper.process_bar("ETHUSDT", bar(1, "100", "101", "98.5", "99")) == []
    (fill,) = paper.process_bar("ETHUSDT", bar(2, "99", "99", "97", "97.5"))
    # triggered inside the bar at 98: max(97.902, 98 * (1 - 3 bps) = 97.9706)
    assert fill.price == D("97.9706")
    assert paper.position_qty("ETHUSDT") == 0


def test_stop_limit_gapping_below_its_limit_rests_as_a_limit() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "1"))
    paper.process_bar("ETHUSDT", bar(0, "100", "100", "100", "100"))
    paper.place(
        new_order(
            "ETHUSDT", "sell", "stop_limit", D(1), "sc-s", D(97), reduce_only=True, stop_price=D(98)
        )
    )
    assert paper.process_bar("ETHUSDT", bar(1, "95", "96", "94", "95")) == []
    (fill,) = paper.process_bar("ETHUSDT", bar(2, "95", "97.5", "95", "97"))
    assert (fill.price, fill.liquidity == "maker") == (D(97), True)


def test_funding_is_charged_once_per_settlement_on_the_position() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "2"))
    paper.process_bar("ETHUSDT", bar(0, "100", "110", "100", "110"))
    cash = paper.cash
    payment = paper.settle_funding("ETHUSDT", T0 + HOUR, D("0.0001"))
    # long 2 at mark 110, rate 1 bp: pays 0.022
    assert payment is not None and payment.amount == D("-0.022")
    assert paper.cash == cash - D("0.022")
    assert paper.settle_funding("ETHUSDT", T0 + HOUR, D("0.0001")) is None
    assert [p.amount for p in paper.funding_since(T0)] == [D("-0.022")]


def test_a_new_broker_on_the_same_store_resumes_the_book() -> None:
    store = MemoryStore()
    first = broker(store)
    first.place(market("sc-a", "buy", "2"))
    first.process_bar("ETHUSDT", bar(0, "100", "101", "99", "100"))
    second = broker(store)
    assert second.resumed
    assert (second.cash, second.position_qty("ETHUSDT")) == (first.cash, D(2))
    assert [f.trade_id for f in second.fills_since("ETHUSDT", T0)] == ["sc-a-1"]
    with pytest.raises(OrderRejected):
        second.place(market("sc-a", "buy", "2"))


def test_equity_is_cash_plus_unrealized_and_margin_used_is_the_notional() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "2"))
    paper.process_bar("ETHUSDT", bar(0, "100", "101", "99", "105"))
    (balance,) = paper.balances()
    assert balance.used == D(210)
    assert paper.equity() == paper.cash + 2 * (D(105) - D("100.03"))


def test_the_open_alone_fills_market_orders_and_limits_marketable_there() -> None:
    paper = broker()
    paper.place(market("sc-m", "buy", "1"))
    paper.place(new_order("ETHUSDT", "buy", "limit", D(1), "sc-in", price=D(100)))
    paper.place(new_order("ETHUSDT", "sell", "limit", D(1), "sc-out", price=D(101)))
    first = bar(0, "100", "102", "99", "101")
    fills = paper.process_open("ETHUSDT", first)
    # market: 100 x (1 + 3 bps); the buy limit at 100 is marketable at the open 100 and
    # fills at min(100, 100.03) as taker; the sell limit at 101 is not (open 100 < 101)
    assert [(f.client_order_id, f.price, f.liquidity == "maker") for f in fills] == [
        ("sc-m", D("100.03"), False),
        ("sc-in", D(100), False),
    ]
    assert paper.fetch_order("ETHUSDT", client_order_id="sc-out").status == "open"  # type: ignore[union-attr]
    assert paper.process_open("ETHUSDT", first) == []  # redone: nothing fills twice
    # the rest of the bar reaches 101: the sell limit fills there as maker, as before
    (rest,) = paper.process_bar("ETHUSDT", first)
    assert (rest.client_order_id, rest.price, rest.liquidity == "maker") == ("sc-out", D(101), True)


def test_the_open_alone_leaves_stops_and_resting_limits_to_the_bar() -> None:
    paper = broker()
    paper.place(market("sc-a", "buy", "1"))
    paper.process_bar("ETHUSDT", bar(0, "100", "100", "100", "100"))
    paper.place(
        new_order(
            "ETHUSDT", "sell", "stop_limit", D(1), "sc-s", D(97), reduce_only=True, stop_price=D(98)
        )
    )
    paper.place(new_order("ETHUSDT", "buy", "limit", D(1), "sc-l", price=D(90)))
    paper.process_bar("ETHUSDT", bar(1, "100", "100", "99", "100"))  # the limit now rests
    assert paper.process_open("ETHUSDT", bar(2, "95", "96", "89", "95")) == []
    assert paper.position_qty("ETHUSDT") == D(1)
