"""CcxtBroker through real ccxt (binanceusdm) against the loopback exchange simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.domain.types import Order
from stagectl.exchange.ccxt_broker import CcxtBroker, open_broker
from stagectl.exchange.credentials import (
    KEY_FILE_ENV,
    Credentials,
    load_credentials,
    require_credentials,
)
from stagectl.exchange.errors import (
    CredentialsError,
    ExchangeAuthError,
    ExchangeUnavailable,
    OrderRejected,
    OrderStateUnknown,
)
from stagectl.exchange.retry import RetryPolicy
from tests.exchange_sim import API_KEY, API_SECRET, ExchangeSim, running_sim
from tests.orders import new_order

ORDER = "/fapi/v1/order"
FAST = RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05, in_flight_s=0.05)
START = datetime(2024, 1, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim_module() -> Iterator[ExchangeSim]:
    with running_sim() as sim:
        yield sim


@pytest.fixture
def sim(sim_module: ExchangeSim) -> Iterator[ExchangeSim]:
    """A fresh book on the shared server (loading the candles once keeps tests fast)."""
    sim_module.reset(now=START)
    yield sim_module


def broker_for(
    sim: ExchangeSim,
    *,
    secret: str = API_SECRET,
    timeout_ms: int = 2_000,
    policy: RetryPolicy = FAST,
) -> CcxtBroker:
    return open_broker(
        "binanceusdm",
        credentials=Credentials(API_KEY, secret, "test"),
        base_url=sim.base_url,
        timeout_ms=timeout_ms,
        policy=policy,
        rate_limit=False,  # ccxt's client-side throttle: nothing to test against a simulator
    )


def market_buy(client_id: str, amount: str = "0.1") -> Order:
    return new_order("ETHUSDT", "buy", "market", Decimal(amount), client_id)


def creates(sim: ExchangeSim) -> int:
    return len(sim.requests(ORDER, "POST"))


def test_markets_load_and_server_time_is_the_simulated_clock(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    assert broker.market("ETHUSDT")["symbol"] == "ETH/USDT:USDT"
    assert broker.market("ETH/USDT:USDT")["id"] == "ETHUSDT"
    assert broker.server_time() == START


def test_market_order_fills_at_the_bar_open_and_shows_in_positions_fills_balance(
    sim: ExchangeSim,
) -> None:
    broker = broker_for(sim)
    ack = broker.place(market_buy("sc-market-1"))
    open_price = Decimal("2356.92")  # ETHUSDT perp 1h open, 2024-01-03T00:00Z
    assert (ack.status, ack.filled_qty, ack.average_price) == ("filled", Decimal("0.1"), open_price)
    assert ack.client_order_id == "sc-market-1" and not ack.recovered
    [position] = broker.positions()
    assert (position.symbol, position.qty, position.entry_price) == (
        "ETHUSDT",
        Decimal("0.1"),
        open_price,
    )
    [fill] = broker.fills_since("ETHUSDT", START)
    assert (fill.price, fill.qty, fill.side, fill.liquidity == "maker") == (
        open_price,
        Decimal("0.1"),
        "buy",
        False,
    )
    taker_fee = open_price * Decimal("0.1") * Decimal("0.0005")
    assert fill.fee == taker_fee
    [usdt] = broker.balances()
    assert usdt.total == Decimal("10000") - taker_fee


def test_limit_order_rests_then_cancel_by_client_id(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    request = new_order(
        "ETHUSDT", "buy", "limit", Decimal("0.1"), "sc-limit-1", price=Decimal("2000")
    )
    ack = broker.place(request)
    assert ack.status == "open" and ack.filled_qty == 0
    assert [o.client_order_id for o in broker.open_orders("ETHUSDT")] == ["sc-limit-1"]
    assert broker.fetch_order("ETHUSDT", client_order_id="sc-limit-1") is not None
    canceled = broker.cancel("ETHUSDT", client_order_id="sc-limit-1")
    assert canceled.status == "canceled"
    assert broker.cancel("ETHUSDT", client_order_id="sc-limit-1").status == "canceled"
    assert broker.open_orders() == []


def test_limit_order_fills_when_a_later_bar_trades_through_its_price(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    broker.place(
        new_order("ETHUSDT", "buy", "limit", Decimal("0.1"), "sc-limit-2", price=Decimal("2340"))
    )
    sim.advance(bars=24)
    order = broker.fetch_order("ETHUSDT", client_order_id="sc-limit-2")
    assert order is not None and order.status == "filled"
    assert order.average_price == Decimal("2340")
    [fill] = broker.fills_since("ETHUSDT", START)
    assert fill.liquidity == "maker"


def test_cancel_all_leaves_no_open_orders(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    for n in range(3):
        broker.place(
            new_order(
                "ETHUSDT", "buy", "limit", Decimal("0.1"), f"sc-many-{n}", price=Decimal("2000")
            )
        )
    broker.cancel_all("ETHUSDT")
    assert broker.open_orders("ETHUSDT") == []


def test_dropped_connection_after_acceptance_finds_the_order_instead_of_sending_it_again(
    sim: ExchangeSim,
) -> None:
    broker = broker_for(sim)
    sim.inject_drop(after_accept=True, path=ORDER, method="POST")
    ack = broker.place(market_buy("sc-dropped-1"))
    assert ack.recovered and ack.status == "filled"
    assert [o.client_order_id for o in sim.orders] == ["sc-dropped-1"]
    assert creates(sim) == 1
    [position] = broker.positions()
    assert position.qty == Decimal("0.1")


def test_timeout_after_acceptance_finds_the_order_instead_of_sending_it_again(
    sim: ExchangeSim,
) -> None:
    broker = broker_for(sim, timeout_ms=300)
    sim.inject_timeout(0.8, after_accept=True, path=ORDER, method="POST")
    ack = broker.place(market_buy("sc-timeout-1"))
    assert ack.recovered
    assert len(sim.orders) == 1 and creates(sim) == 1


def test_a_create_that_lands_after_the_client_gave_up_is_found_not_sent_twice(
    sim: ExchangeSim,
) -> None:
    """The exchange accepts the order 0.6 s after the client timed out (0.2 s): the
    broker waits out the in-flight window before its lookup, so it finds the order."""
    patient = RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05, in_flight_s=1.0)
    broker = broker_for(sim, timeout_ms=200, policy=patient)
    sim.inject_latency(0.6, path=ORDER, method="POST")
    ack = broker.place(market_buy("sc-late-1"))
    assert ack.recovered
    assert [o.client_order_id for o in sim.orders] == ["sc-late-1"]
    assert creates(sim) == 1


def test_dropped_connection_before_acceptance_sends_the_order_once_more(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    sim.inject_drop(after_accept=False, path=ORDER, method="POST")
    ack = broker.place(market_buy("sc-lost-1"))
    assert not ack.recovered and ack.status == "filled"
    assert len(sim.orders) == 1 and creates(sim) == 2


def test_a_duplicate_open_client_id_returns_the_existing_order(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    request = new_order(
        "ETHUSDT", "sell", "limit", Decimal("0.1"), "sc-dup-1", price=Decimal("2600")
    )
    first = broker.place(request)
    second = broker.place(request)
    assert second.recovered and second.exchange_order_id == first.exchange_order_id
    assert len(sim.orders) == 1


@pytest.mark.parametrize(("status", "retry_after_s"), [(429, 0), (503, None), (502, None)])
def test_rate_limits_and_server_errors_are_retried(
    sim: ExchangeSim, status: int, retry_after_s: int | None
) -> None:
    broker = broker_for(sim)
    sim.inject_status(status, retry_after_s=retry_after_s, count=2, path="/fapi/v3/positionRisk")
    assert broker.positions() == []
    assert len(sim.requests("/fapi/v3/positionRisk")) == 3


def test_rate_limited_create_checks_by_client_id_then_places_once(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    sim.inject_status(429, retry_after_s=0, path=ORDER, method="POST")
    ack = broker.place(market_buy("sc-429-1"))
    assert ack.status == "filled"
    assert len(sim.requests(ORDER, "GET")) == 1  # looked up before sending again
    assert len(sim.orders) == 1


def test_retries_are_bounded(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    sim.inject_status(503, count=10, path="/fapi/v1/openOrders")
    with pytest.raises(ExchangeUnavailable) as caught:
        broker.open_orders("ETHUSDT")
    assert caught.value.exit_code == 3
    assert len(sim.requests("/fapi/v1/openOrders")) == FAST.max_attempts


def test_final_errors_are_not_retried(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    sell = new_order("ETHUSDT", "sell", "market", Decimal("0.1"), "sc-ro-1", reduce_only=True)
    with pytest.raises(OrderRejected, match="invalid order"):
        broker.place(sell)
    too_big = market_buy("sc-huge-1", amount="1000")
    with pytest.raises(OrderRejected, match="insufficient funds"):
        broker.place(too_big)
    assert creates(sim) == 2
    assert sim.orders == []


def test_reduce_only_order_closes_a_position(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    broker.place(market_buy("sc-open-1"))
    sim.advance(bars=1)
    close = new_order("ETHUSDT", "sell", "market", Decimal("0.1"), "sc-close-1", reduce_only=True)
    assert broker.place(close).status == "filled"
    assert broker.positions() == []


def test_a_bad_signature_is_an_authentication_error_naming_no_secret(sim: ExchangeSim) -> None:
    wrong_secret = "not-the-secret-0123456789"
    broker = broker_for(sim, secret=wrong_secret)
    with pytest.raises(ExchangeAuthError) as caught:
        broker.balances()
    message = str(caught.value)
    assert "\n" not in message
    assert wrong_secret not in message and API_KEY not in message and "signature=" not in message
    assert len(sim.requests("/fapi/v3/account")) == 1


def test_partial_fill_leaves_the_rest_open_until_the_next_bar(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    sim.inject_partial_fill(Decimal("0.4"))
    ack = broker.place(market_buy("sc-partial-1", amount="0.5"))
    assert (ack.status, ack.filled_qty) == ("partially_filled", Decimal("0.2"))
    sim.advance(bars=1)
    done = broker.fetch_order("ETHUSDT", client_order_id="sc-partial-1")
    assert done is not None and (done.status, done.filled_qty) == ("filled", Decimal("0.5"))
    assert len(broker.fills_since("ETHUSDT", START)) == 2


def test_funding_is_paid_on_an_open_long_at_each_settlement(sim: ExchangeSim) -> None:
    broker = broker_for(sim)
    broker.place(market_buy("sc-funding-1"))
    sim.advance(bars=16)  # passes 08:00 and 16:00 settlements
    payments = broker.funding_since(START, "ETHUSDT")
    assert [p.ts.hour for p in payments] == [8, 16]
    assert all(p.amount < 0 for p in payments)  # positive rates: longs pay


def test_a_create_whose_outcome_cannot_be_confirmed_is_order_state_unknown(
    sim: ExchangeSim,
) -> None:
    broker = broker_for(sim)
    sim.inject_drop(after_accept=True, path=ORDER, method="POST")
    sim.inject_status(503, count=10, path=ORDER, method="GET")
    with pytest.raises(OrderStateUnknown, match="sc-unknown-1"):
        broker.place(market_buy("sc-unknown-1"))
    assert creates(sim) == 1


def test_credentials_come_from_a_private_key_file_and_never_show_in_repr(tmp_path: Path) -> None:
    key_file = tmp_path / "exchange.key"
    key_file.write_text(f"api_key={API_KEY}\napi_secret={API_SECRET}\n")
    key_file.chmod(0o600)
    credentials = load_credentials({KEY_FILE_ENV: str(key_file)})
    assert credentials is not None and credentials.api_secret == API_SECRET
    assert API_SECRET not in repr(credentials) and API_KEY not in repr(credentials)
    key_file.chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_credentials({KEY_FILE_ENV: str(key_file)})


def test_half_a_key_pair_or_none_at_all_is_a_usage_error() -> None:
    with pytest.raises(CredentialsError) as caught:
        load_credentials({"STAGECTL_EXCHANGE_API_KEY": API_KEY})
    assert caught.value.exit_code == 2
    assert load_credentials({}) is None
    with pytest.raises(CredentialsError, match="STAGECTL_EXCHANGE_KEY_FILE"):
        require_credentials({})


def test_a_stop_limit_binance_takes_only_through_its_algo_api_is_refused_unsent(
    sim: ExchangeSim,
) -> None:
    broker = broker_for(sim)
    stop = new_order(
        "ETHUSDT",
        "sell",
        "stop_limit",
        Decimal("0.1"),
        "sc-stop-1",
        Decimal(2000),
        reduce_only=True,
        stop_price=Decimal(2001),
    )
    with pytest.raises(OrderRejected, match="algo-order API"):
        broker.place(stop)
    assert creates(sim) == 0
