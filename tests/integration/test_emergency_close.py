"""emergency-close through real ccxt (binanceusdm) against the loopback exchange simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.data import load_candles
from stagectl.domain.types import TradingState
from stagectl.exchange.ccxt_broker import CcxtBroker, open_broker
from stagectl.exchange.credentials import KEY_ENV, SECRET_ENV, Credentials
from stagectl.exchange.errors import ExchangeUnavailable
from stagectl.exchange.retry import RetryPolicy
from stagectl.services.trading import emergency_close as service
from stagectl.state import flags, journal
from stagectl.state.db import open_state
from tests.exchange_sim import API_KEY, API_SECRET, ExchangeSim, running_sim
from tests.orders import new_order

ORDER = "/fapi/v1/order"
FAST = RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05, in_flight_s=0.05)
START = datetime(2024, 1, 3, tzinfo=UTC)
LONG_ETH = Decimal("0.2")
SHORT_SOL = Decimal("-5")


@pytest.fixture(scope="module")
def sim_module() -> Iterator[ExchangeSim]:
    candles = {s: load_candles(s) for s in ("ETHUSDT", "SOLUSDT")}
    with running_sim(candles=candles) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: ExchangeSim) -> Iterator[ExchangeSim]:
    sim_module.reset(now=START)
    yield sim_module


@pytest.fixture
def desk(home: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv(SECRET_ENV, API_SECRET)
    return Home.resolve(home)


def broker_for(sim: ExchangeSim) -> CcxtBroker:
    return open_broker(
        "binanceusdm",
        credentials=Credentials(API_KEY, API_SECRET, "test"),
        base_url=sim.base_url,
        timeout_ms=2_000,
        policy=FAST,
        rate_limit=False,
    )


def open_book(sim: ExchangeSim) -> None:
    """A long ETH, a short SOL and two resting limit orders."""
    broker = broker_for(sim)
    broker.place(new_order("ETHUSDT", "buy", "market", LONG_ETH, "sc-test-eth"))
    broker.place(new_order("SOLUSDT", "sell", "market", -SHORT_SOL, "sc-test-sol"))
    broker.place(
        new_order("ETHUSDT", "buy", "limit", Decimal("0.1"), "sc-rest-eth", Decimal("2000"))
    )
    broker.place(new_order("SOLUSDT", "sell", "limit", Decimal("1"), "sc-rest-sol", Decimal("150")))
    sim.advance(bars=1)


def request(sim_url: str, *, timeout_ms: int = 2_000, **options: object) -> object:
    return service.EmergencyCloseRequest(
        paper=False,
        exchange="binanceusdm",
        base_url=sim_url,
        timeout_ms=timeout_ms,
        halt_if_unreachable=True,
        **options,  # type: ignore[arg-type]
    )


def close(desk: Home, sim_url: str, **options: object) -> service.EmergencyCloseResult:
    return service.run(
        request(sim_url, **options),  # type: ignore[arg-type]
        home=desk,
        confirm=lambda plan: None,
        policy=FAST,
        rate_limit=False,
    )


def closed_volume(sim: ExchangeSim) -> dict[str, Decimal]:
    """Executed quantity of reduce-only (close) orders per symbol."""
    out: dict[str, Decimal] = {}
    for order in sim.orders:
        if order.reduce_only:
            out[order.symbol] = out.get(order.symbol, Decimal(0)) + order.executed_qty
    return out


def trading_state(desk: Home) -> TradingState:
    with open_state(desk.state_path) as db:
        return flags.get_trading_state(db, "live").state


def test_a_book_with_orders_and_long_short_positions_ends_flat_and_halted(
    sim: ExchangeSim, desk: Home
) -> None:
    open_book(sim)
    result = close(desk, sim.base_url)
    assert result.flat and not result.errors
    assert result.after is not None and result.after.flat
    assert {h.symbol: h.qty for h in result.before.positions} == {
        "ETHUSDT": LONG_ETH,
        "SOLUSDT": SHORT_SOL,
    }
    assert len(result.before.open_orders) == 2
    assert broker_for(sim).positions() == [] and broker_for(sim).open_orders() == []
    assert closed_volume(sim) == {"ETHUSDT": LONG_ETH, "SOLUSDT": -SHORT_SOL}
    assert trading_state(desk) == TradingState.HALTED
    with open_state(desk.state_path) as db:
        actions = [i.action for i in journal.incidents(db) if i.rule == service.RULE]
        history = flags.trading_state_history(db)
    assert actions[0] == "reduce_only" and actions[-1] == "verify"
    assert {"cancel_orders", "close_position", "disable_trading"} <= set(actions)
    assert [(c.from_state, c.to_state) for c in reversed(history)] == [
        (TradingState.ACTIVE, TradingState.REDUCE_ONLY),
        (TradingState.REDUCE_ONLY, TradingState.HALTED),
    ]


def test_a_second_run_on_a_flat_halted_book_does_nothing(sim: ExchangeSim, desk: Home) -> None:
    open_book(sim)
    close(desk, sim.base_url)
    creates_before = len(sim.requests(ORDER, "POST"))
    with open_state(desk.state_path) as db:
        history_before = len(flags.trading_state_history(db))
    again = close(desk, sim.base_url)
    assert again.nothing_to_do and again.flat and again.orders == []
    assert len(sim.requests(ORDER, "POST")) == creates_before
    with open_state(desk.state_path) as db:
        assert len(flags.trading_state_history(db)) == history_before


def test_a_rerun_after_a_crash_does_not_send_a_close_the_exchange_already_has(
    sim: ExchangeSim, desk: Home
) -> None:
    open_book(sim)
    broker = broker_for(sim)
    # the close an earlier, interrupted run sent for the ETH position, still resting
    cid = service.close_order_id("binanceusdm", "ETHUSDT", LONG_ETH, 0)
    broker.place(
        new_order("ETHUSDT", "sell", "limit", LONG_ETH, cid, Decimal("9000"), reduce_only=True)
    )
    result = close(desk, sim.base_url)
    assert result.flat
    assert closed_volume(sim)["ETHUSDT"] == LONG_ETH
    eth_closes = [o for o in sim.orders if o.symbol == "ETHUSDT" and o.reduce_only]
    assert [o.client_order_id for o in eth_closes] == [
        cid,
        service.close_order_id("binanceusdm", "ETHUSDT", LONG_ETH, 1),
    ]


FAULTS = {
    "429": lambda sim: sim.inject_status(429, retry_after_s=0, path=ORDER, method="POST"),
    "503": lambda sim: sim.inject_status(503, count=2, path=ORDER, method="POST"),
    "timeout after acceptance": lambda sim: sim.inject_timeout(
        0.8, after_accept=True, path=ORDER, method="POST"
    ),
    "dropped connection after acceptance": lambda sim: sim.inject_drop(
        after_accept=True, path=ORDER, method="POST"
    ),
    "partial fills": lambda sim: sim.inject_partial_fill(Decimal("0.4"), count=2),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_exchange_fault_still_ends_flat_without_a_double_close(
    sim: ExchangeSim, desk: Home, fault: str
) -> None:
    open_book(sim)
    FAULTS[fault](sim)
    result = close(desk, sim.base_url, timeout_ms=300 if "timeout" in fault else 2_000)
    assert result.flat, result.to_dict()
    assert broker_for(sim).positions() == []
    assert closed_volume(sim) == {"ETHUSDT": LONG_ETH, "SOLUSDT": -SHORT_SOL}
    assert trading_state(desk) == TradingState.HALTED


def test_a_persistent_outage_reports_exactly_the_residual_positions(
    sim: ExchangeSim, desk: Home
) -> None:
    open_book(sim)
    sim.inject_status(503, count=1000, path=ORDER, method="POST")
    result = close(desk, sim.base_url)
    assert not result.flat and result.errors == []
    assert result.after is not None
    assert {(h.symbol, h.qty) for h in result.after.positions} == {
        ("ETHUSDT", LONG_ETH),
        ("SOLUSDT", SHORT_SOL),
    }
    assert all("error" in o for o in result.orders)
    assert closed_volume(sim) == {}
    assert trading_state(desk) == TradingState.HALTED
    document = result.to_dict()
    assert {(r["symbol"], r["amount"]) for r in document["residual_positions"]} == {
        ("ETHUSDT", "0.2"),
        ("SOLUSDT", "-5"),
    }


def test_an_unreachable_exchange_is_exit_3_and_trading_is_halted_locally(desk: Home) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ExchangeUnavailable) as caught:
        close(desk, f"http://127.0.0.1:{port}")
    assert caught.value.exit_code == 3
    assert "HALTED" in str(caught.value)
    assert trading_state(desk) == TradingState.HALTED
