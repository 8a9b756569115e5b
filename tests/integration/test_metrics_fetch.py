"""metrics fetch through real ccxt against the loopback Binance USD-M simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.exchange.ccxt_broker import open_broker
from stagectl.exchange.credentials import (
    KEY_ENV,
    KEY_FILE_ENV,
    READONLY_KEY_ENV,
    READONLY_KEY_FILE_ENV,
    READONLY_SECRET_ENV,
    SECRET_ENV,
    Credentials,
)
from stagectl.exchange.retry import RetryPolicy
from stagectl.state.db import open_state
from stagectl.state.ledger import fills
from tests.conftest import Run, home_state
from tests.exchange_sim import (
    API_KEY,
    API_SECRET,
    READ_KEY,
    READ_SECRET,
    ExchangeSim,
    running_sim,
)
from tests.orders import new_order

pytestmark = pytest.mark.usefixtures("home_on_both")

START = datetime(2024, 1, 3, tzinfo=UTC)
ENV: dict[str, str | None] = {
    READONLY_KEY_ENV: READ_KEY,
    READONLY_SECRET_ENV: READ_SECRET,
    READONLY_KEY_FILE_ENV: None,
    KEY_ENV: None,
    SECRET_ENV: None,
    KEY_FILE_ENV: None,
}


@pytest.fixture(scope="module")
def sim() -> Iterator[ExchangeSim]:
    with running_sim() as simulator:
        yield simulator


@pytest.fixture
def traded(sim: ExchangeSim) -> list[object]:
    """A fresh account with three trades: buy 0.3, sell 0.1 an hour later, buy 0.05."""
    sim.reset(now=START)
    broker = open_broker(
        "binanceusdm",
        credentials=Credentials(API_KEY, API_SECRET, "test"),
        base_url=sim.base_url,
        policy=RetryPolicy(
            max_attempts=2, base_backoff_s=0.01, max_backoff_s=0.02, in_flight_s=0.02
        ),
        rate_limit=False,
    )
    broker.place(new_order("ETHUSDT", "buy", "market", Decimal("0.3"), "mf-1"))
    sim.advance(bars=1)
    broker.place(new_order("ETHUSDT", "sell", "market", Decimal("0.1"), "mf-2"))
    broker.place(new_order("ETHUSDT", "buy", "market", Decimal("0.05"), "mf-3"))
    return list(broker.fills_since("ETHUSDT", START))


def fetch_args(sim: ExchangeSim, *extra: str) -> list[str]:
    return [
        "metrics",
        "fetch",
        "--exchange",
        "binanceusdm",
        "--symbol",
        "ETHUSDT",
        "--since",
        "2024-01-02",
        "--base-url",
        sim.base_url,
        *extra,
    ]


def test_fetch_records_the_trades_exactly_and_a_second_fetch_adds_nothing(
    run: Run, home: Path, sim: ExchangeSim, traded: list[object]
) -> None:
    assert len(traded) == 3
    first = run(fetch_args(sim, "--json"), env=ENV)
    assert first.exit_code == 0, first.stderr
    document = first.json()
    assert (document["fetched"], document["inserted"], document["already_recorded"]) == (3, 3, 0)
    assert document["account"] == "binanceusdm"
    second = run(fetch_args(sim), env=ENV)
    assert second.exit_code == 0, second.stderr
    assert "3 trades fetched, 0 fills recorded, 3 already recorded" in second.stdout
    with open_state(home_state(home), migrate=False) as db:
        recorded = fills(db, symbol="ETHUSDT")
    by_key = {f"ETHUSDT:{t.trade_id}": t for t in traded}  # type: ignore[attr-defined]
    assert sorted(f.trade_id for f in recorded) == sorted(by_key)
    for fill in recorded:
        trade = by_key[fill.trade_id]
        assert (fill.side, fill.qty, fill.price, fill.fee) == (
            trade.side,
            trade.qty,
            trade.price,
            trade.fee,
        )
        assert (fill.account, fill.source, fill.liquidity) == ("binanceusdm", "fetch", "taker")
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert API_KEY not in output and API_SECRET not in output


def test_fetched_fills_feed_the_window_metrics(
    run: Run, sim: ExchangeSim, traded: list[object]
) -> None:
    assert run(fetch_args(sim, "--source", "acct"), env=ENV).exit_code == 0
    window = run(["metrics", "window", "--hours", "3", "--until", "2024-01-03T02:00Z", "--json"])
    eth = window.json()["symbols"]["ETHUSDT"]
    assert (eth["fills"], eth["buys"], eth["sells"]) == (3, 2, 1)
    assert Decimal(eth["inventory_end"]) == Decimal("0.25")


def test_fetch_without_credentials_is_exit_2(run: Run, sim: ExchangeSim) -> None:
    result = run(fetch_args(sim), env={**ENV, READONLY_KEY_ENV: None, READONLY_SECRET_ENV: None})
    assert result.exit_code == 2
    assert READONLY_KEY_ENV in result.stderr


def test_fetch_never_uses_the_trading_key(run: Run, sim: ExchangeSim) -> None:
    trading_only = {**ENV, READONLY_KEY_ENV: None, READONLY_SECRET_ENV: None}
    before = len(sim.requests())
    result = run(fetch_args(sim), env={**trading_only, KEY_ENV: API_KEY, SECRET_ENV: API_SECRET})
    assert result.exit_code == 2
    assert "live box only" in result.stderr
    assert len(sim.requests()) == before, "no call may be made with the trading key"


@pytest.mark.parametrize(
    ("key", "secret", "restrictions", "shown"),
    [
        (API_KEY, API_SECRET, {}, "trading on"),
        (READ_KEY, READ_SECRET, {"enableWithdrawals": True}, "withdrawals on"),
    ],
)
def test_a_read_only_key_that_can_trade_or_withdraw_is_refused(
    run: Run,
    home: Path,
    sim: ExchangeSim,
    traded: list[object],
    key: str,
    secret: str,
    restrictions: dict[str, bool],
    shown: str,
) -> None:
    sim.set_key_restrictions(key, **restrictions)
    trades_before = len(sim.requests(path="/fapi/v1/userTrades"))
    try:
        env = {**ENV, READONLY_KEY_ENV: key, READONLY_SECRET_ENV: secret}
        result = run(fetch_args(sim), env=env)
    finally:
        sim.set_key_restrictions(key, enableWithdrawals=False)
    assert result.exit_code == 2
    assert "needs a read-only key" in result.stderr and shown in result.stderr
    assert key not in result.stderr and secret not in result.stderr
    assert len(sim.requests(path="/fapi/v1/userTrades")) == trades_before


def test_an_unreachable_exchange_is_exit_3_and_prints_no_secret(run: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["metrics", "fetch", "--exchange", "binanceusdm", "--symbol", "ETHUSDT"]
    result = run(
        [*args, "--since", "2024-01-02", "--base-url", f"http://127.0.0.1:{port}", "--json"],
        env=ENV,
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert API_KEY not in result.stderr and API_SECRET not in result.stderr


def test_a_bad_since_is_exit_2_before_any_exchange_call(run: Run) -> None:
    args = ["metrics", "fetch", "--exchange", "binanceusdm", "--symbol", "ETHUSDT"]
    result = run([*args, "--since", "yesterday", "--base-url", "http://127.0.0.1:9"], env=ENV)
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --since: ")
